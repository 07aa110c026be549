"""Deleting a score that a listening test uses is refused with a message; nothing is deleted."""
from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from webapp.errors import ScoreInUse
from webapp.models import Score
from webapp.scores.services import score_delete
from webapp.surveys.models import Survey, SurveyPiece

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path


def _score(owner=None, **kw):
    return Score.objects.create(owner=owner, title=kw.pop("title", "Etude"), original_filename="s.mid",
                                file="scores/s.mid", parsed="parsed/s.npz", format="midi",
                                n_notes=10, duration_beat=8.0, mei="", **kw)


def _survey_using(score):
    staff = get_user_model().objects.create_user("researcher", password="x-Long-passw0rd!", is_staff=True)
    survey = Survey.objects.create(owner=staff, title="Naturalness study", kind="mos", seed=1, completion_code="C0DE")
    SurveyPiece.objects.create(survey=survey, score=score, order=0)
    return survey


def test_a_score_used_by_a_survey_is_kept_with_a_message():
    score = _score()
    _survey_using(score)
    with pytest.raises(ScoreInUse, match="Naturalness study"):
        score_delete(score=score)
    assert Score.objects.filter(id=score.id).exists()


def test_an_unused_score_is_deleted():
    score = _score()
    score_delete(score=score)
    assert not Score.objects.filter(id=score.id).exists()


def test_load_demos_refresh_keeps_a_demo_a_survey_uses(capsys):
    call_command("load_demos")
    demo = Score.objects.filter(is_demo=True).order_by("demo_key").first()
    _survey_using(demo)
    call_command("load_demos", "--refresh")
    assert Score.objects.filter(id=demo.id).exists()
    assert "kept as it is" in capsys.readouterr().err
