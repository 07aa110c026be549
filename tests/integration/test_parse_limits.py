"""The parse-time limit: a score whose parsing runs past UPLOAD_PARSE_TIMEOUT_S is refused."""
from __future__ import annotations

import os
import subprocess
import sys

from tests.data.corpus import TWO_BARS
from tests.integration.stack import REPO

CODE = """
from pathlib import Path
from webapp.errors import ScoreError
from webapp.scores.services import score_create
try:
    score_create(path=Path({path!r}), original_filename="slow.musicxml")
    print("ACCEPTED")
except ScoreError as exc:
    print("REFUSED", exc)
"""


def test_parsing_past_the_time_limit_is_refused_and_the_child_killed(tmp_path):
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="config.settings.test",
               UPLOAD_PARSE_TIMEOUT_S="0.05", DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
               MEDIA_ROOT=str(tmp_path / "media"))
    r = subprocess.run([sys.executable, "manage.py", "shell", "-c",
                        CODE.format(path=str(TWO_BARS))],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    expected = "REFUSED slow.musicxml: reading the score took longer than 0.05 s"
    assert expected in r.stdout, r.stderr[-2000:]
    assert not (tmp_path / "media").exists()
