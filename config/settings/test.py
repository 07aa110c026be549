"""Test settings: fast password hashing; database and Redis still from DATABASE_URL / REDIS_URL."""
from config.settings.base import *  # noqa: F401,F403

DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
