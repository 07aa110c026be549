"""The JSON API under /api/v1/ (Django REST framework): thin views over webapp's services and
selectors."""
