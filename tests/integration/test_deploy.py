"""Django's deployment checklist is clean for the production settings; they refuse bad secrets."""
from __future__ import annotations

import os
import secrets
import subprocess
import sys

from tests.integration.stack import REPO


def _check(**env) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "ALLOWED_HOSTS")}
    full.update(env)
    return subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level",
                           "WARNING", "--settings=config.settings.production"],
                          cwd=REPO, env=full, capture_output=True, text=True, timeout=120)


def test_check_deploy_is_clean_with_a_real_secret_and_hosts():
    r = _check(SECRET_KEY=secrets.token_urlsafe(60), ALLOWED_HOSTS="music.example.org")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "no issues" in r.stdout


def test_production_refuses_the_development_secret_and_missing_hosts():
    r = _check(ALLOWED_HOSTS="music.example.org")
    assert r.returncode != 0 and "SECRET_KEY" in r.stderr
    r = _check(SECRET_KEY=secrets.token_urlsafe(60))
    assert r.returncode != 0 and "ALLOWED_HOSTS" in r.stderr
