"""ASGI entry point: HTTP through Django, WebSockets through Channels (auth + origin checks).

WebSockets: browsers authenticate by session and must come from an allowed Origin; scripts send an
API token and no Origin (webapp.jobs.ws_auth).
"""
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

from django.core.asgi import get_asgi_application  # noqa: E402

django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from webapp.jobs.routing import websocket_urlpatterns  # noqa: E402
from webapp.jobs.ws_auth import OriginOrTokenValidator, TokenAuthMiddleware  # noqa: E402

import threading  # noqa: E402

from webapp.jobs.lifecycle import web_process_warm_up  # noqa: E402

# The first Render click should not pay for the broker connection and lazy imports.
threading.Thread(target=web_process_warm_up, name="warm-up", daemon=True).start()

websocket_app = AuthMiddlewareStack(TokenAuthMiddleware(URLRouter(websocket_urlpatterns)))
application = ProtocolTypeRouter({
    "http": django_asgi_app,
    "websocket": OriginOrTokenValidator(AllowedHostsOriginValidator(websocket_app),
                                        scripts=websocket_app),
})
