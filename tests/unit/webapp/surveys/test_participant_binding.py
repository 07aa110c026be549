"""A listening-test participant is bound to the browser that consented: the same external id
from another browser is refused with a message (and logged), never given the other's state; one
take per browser; a survey may require an external id."""
from __future__ import annotations

import logging
import re

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from webapp.surveys.models import Participant, Survey

pytestmark = pytest.mark.django_db


@pytest.fixture
def survey(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    staff = get_user_model().objects.create_user("researcher", password="x-Long-passw0rd!",
                                                 is_staff=True)
    return Survey.objects.create(owner=staff, title="Naturalness study", kind="mos", seed=1,
                                 completion_code="C0DE", state=Survey.State.OPEN)


def _consent(c: Client, survey, pid: str = ""):
    return c.post(f"/surveys/s/{survey.id}/consent", {"consent": "on", "external_id": pid})


def _token(r) -> str:
    assert r.status_code == 302, r.content[:500]
    return re.search(r"/surveys/p/([^/]+)/", r["Location"]).group(1)


def test_an_external_id_in_another_browser_is_refused_and_logged(survey, caplog):
    a = Client()
    token = _token(_consent(a, survey, "P123"))
    b = Client()
    with caplog.at_level(logging.WARNING, logger="webapp.surveys"):
        r = b.get(f"/surveys/s/{survey.id}/?pid=P123")
    assert r.status_code == 409
    assert "already in use in another browser" in r.content.decode()
    assert token not in r.content.decode() and "Location" not in r
    assert any("P123" in rec.getMessage() for rec in caplog.records)
    r = _consent(b, survey, "P123")
    assert r.status_code == 400 and "already in use in another browser" in r.content.decode()
    assert Participant.objects.count() == 1
    # the secret link itself does not work in another browser either
    assert b.get(f"/surveys/p/{token}/state.json").status_code == 404
    assert b.get(f"/surveys/p/{token}/").status_code == 404
    r = b.post(f"/surveys/p/{token}/submit", {"age_band": "25-34"},
               content_type="application/json")
    assert r.status_code == 404
    # the browser that consented goes on, with or without the id
    assert a.get(f"/surveys/p/{token}/state.json").status_code == 200
    assert _token(a.get(f"/surveys/s/{survey.id}/?pid=P123")) == token
    assert _token(a.get(f"/surveys/s/{survey.id}/")) == token


def test_one_take_per_browser(survey):
    a = Client()
    token = _token(_consent(a, survey))
    assert _token(_consent(a, survey)) == token
    assert _token(a.get(f"/surveys/s/{survey.id}/")) == token
    r = a.get(f"/surveys/s/{survey.id}/?pid=OTHER1")
    assert r.status_code == 409 and "already taken part" in r.content.decode()
    assert _consent(a, survey, "OTHER1").status_code == 400
    assert Participant.objects.count() == 1
    assert _token(_consent(Client(), survey)) != token  # another browser: another take


def test_a_survey_may_require_an_external_id(survey):
    survey.require_external_id = True
    survey.save()
    c = Client()
    r = c.get(f"/surveys/s/{survey.id}/")
    assert r.status_code == 400 and "needs your participant id" in r.content.decode()
    r = _consent(c, survey)
    assert r.status_code == 400 and "needs your participant id" in r.content.decode()
    assert Participant.objects.count() == 0
    assert c.get(f"/surveys/s/{survey.id}/?PROLIFIC_PID=abc42").status_code == 200
    _token(_consent(c, survey, "abc42"))
    assert Participant.objects.get().external_id == "abc42"
