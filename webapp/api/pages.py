"""HTML pages of the API: the docs (operations listed from our own OpenAPI schema, no CDN) and the
token page (see, or regenerate, your API token)."""
from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods
from drf_spectacular.generators import SchemaGenerator
from rest_framework.authtoken.models import Token

from webapp.api.docs import operations_from_schema


@require_GET
def api_docs(request):
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return render(request, "api/docs.html", {"schema": schema,
                                             "operations": operations_from_schema(schema)})


@require_http_methods(["GET", "POST"])
@login_required
def api_token_page(request):
    """GET: the user's token (made on first visit); POST: a new one (the old one stops working)."""
    if request.method == "POST":
        Token.objects.filter(user=request.user).delete()
        Token.objects.create(user=request.user)
        return redirect("api-token-page")
    token, _ = Token.objects.get_or_create(user=request.user)
    return render(request, "api/token.html", {"token": token.key})


def api_not_found(request):
    """A path under /api/v1/ that names no endpoint (or a malformed id): JSON, not an HTML page."""
    return JsonResponse({"error": f"no such API endpoint: {request.path} (see /api/)"}, status=404)
