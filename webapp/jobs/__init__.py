"""Render jobs: controls, services and selectors, the queue's lifecycle, job events, the
worker's render session, Celery tasks, the WebSocket consumer, routing and its auth,
downloads."""
