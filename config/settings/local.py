"""Local development: debug on, everything on loopback."""
from config.settings.base import *  # noqa: F401,F403

DEBUG = True
