"""Reads of the listening tests: what researchers and participants see, results and exports."""
from __future__ import annotations

import hashlib
import logging
import uuid
from collections import defaultdict

from django.db.models import Count, Q
from django.urls import reverse

from webapp.surveys import design, stats
from webapp.surveys.errors import SurveyRefused
from webapp.surveys.models import Item, ItemClip, Participant, Response, Stimulus, Survey

log = logging.getLogger(__name__)


def survey_list(*, user):
    """Surveys a staff user manages (superusers see every survey)."""
    qs = Survey.objects.annotate(n_participants=Count("participants",
                                                      filter=Q(participants__preview=False)))
    return qs if user.is_superuser else qs.filter(owner=user)


def survey_get_for_staff(*, survey_id: uuid.UUID, user) -> Survey | None:
    if not (user.is_authenticated and user.is_staff):
        return None
    qs = Survey.objects.all() if user.is_superuser else Survey.objects.filter(owner=user)
    return qs.filter(id=survey_id).first()


def survey_get_public(*, survey_id: uuid.UUID) -> Survey | None:
    return Survey.objects.filter(id=survey_id).first()


def stimuli_for_preview(*, survey: Survey) -> list[Stimulus]:
    return list(survey.stimuli.select_related("piece__score"))


def stimulus_roles(*, survey: Survey) -> dict:
    """stimulus id -> the roles of the items that play it ("trial, attention", "practice")."""
    roles = defaultdict(set)
    for sid, role in ItemClip.objects.filter(item__survey=survey).values_list("stimulus_id",
                                                                            "item__role"):
        roles[sid].add(role)
    return {k: ", ".join(sorted(v, key=list(Item.Role.values).index)) for k, v in roles.items()}


def stimulus_counts(*, survey: Survey) -> dict:
    rows = survey.stimuli.values("state").annotate(n=Count("id"))
    out = {s: 0 for s in Stimulus.State.values}
    out.update({r["state"]: r["n"] for r in rows})
    return out


def stimulus_audio_url(stimulus: Stimulus) -> str:
    return reverse("surveys:audio", args=[stimulus.id])


def browser_hash(browser_id: str) -> str:
    """What a participant row keeps of a browser's signed id (the id itself stays secret)."""
    return hashlib.sha256(f"surveys.browser:{browser_id}".encode()).hexdigest() if browser_id else ""


def participant_for_browser(*, survey: Survey, browser: str,
                            external_id: str = "") -> Participant | None:
    """The participant this browser may resume in ``survey`` (None: it may consent anew).

    Parameters
    ----------
    browser : str
        browser_hash of the requesting browser's signed id ("" for none).
    external_id : str
        The external id the request carries ("" for none).

    Raises
    ------
    SurveyRefused
        409 when the external id has completed the survey or belongs to another browser, or
        this browser has taken part under another id (the attempt is logged).
    """
    mine = (Participant.objects.select_related("survey")
            .filter(survey=survey, preview=False, browser=browser).first() if browser else None)
    if mine is not None:
        if not external_id or mine.external_id == external_id:
            return mine
        log.warning("survey %s: a browser that took part as %r came back as %r", survey.id,
                    mine.external_id, external_id)
        raise SurveyRefused("you have already taken part in this listening test in this browser "
                            "(with another participant id)", 409)
    if not external_id:
        return None
    other = Participant.objects.filter(survey=survey, external_id=external_id).first()
    if other is None:
        return None
    if other.submitted:
        raise SurveyRefused("this participant id has already completed the survey", 409)
    log.warning("survey %s: participant id %r was opened in another browser than the one that "
                "consented; refused", survey.id, external_id)
    raise SurveyRefused("this participant id is already in use in another browser: please "
                        "continue in the browser where you started, or contact the researcher",
                        409)


def participant_by_token(*, token: str) -> Participant | None:
    return Participant.objects.select_related("survey").filter(token=token).first()


def participant_state(*, participant: Participant) -> dict:
    """What the participant's page needs now: their next item (blind: labels, audio URLs and a
    signed key, never the condition), or the questionnaire, or the completion code."""
    p, survey = participant, participant.survey
    total = len(p.order)
    out = {"kind": survey.kind, "total": total, "answered": p.n_answered,
           "n_practice": survey.items.filter(role=Item.Role.PRACTICE).count(),
           "state": survey.state, "questions": design.questions(survey.kind),
           "age_bands": design.AGE_BANDS, "training_bands": design.TRAINING_BANDS,
           "resumed": p.n_answered > 0, "item": None, "done": bool(p.submitted),
           # whether answers are taken: an open survey (a researcher's try: also a ready one)
           "accepting": survey.state == Survey.State.OPEN or (
               p.preview and survey.state == Survey.State.READY),
           "preview": p.preview}
    if p.submitted:
        out["completion_code"] = survey.completion_code
        return out
    if p.n_answered < total:
        pos = p.n_answered
        item = Item.objects.get(id=p.order[pos])
        out["item"] = {
            "position": pos, "key": p.item_key(pos),
            "practice": item.role == Item.Role.PRACTICE, "instruction": item.instruction,
            "clips": [{"label": c.label, "url": stimulus_audio_url(c.stimulus),
                       "duration": round(c.stimulus.duration_sec, 3)}
                      for c in item.item_clips.select_related("stimulus")],
        }
    return out


def volume_clip_url(*, survey: Survey) -> str | None:
    """The clip of the practice item, played for the volume check."""
    item = survey.items.filter(role=Item.Role.PRACTICE).first()
    clip = item.item_clips.select_related("stimulus").first() if item else None
    return stimulus_audio_url(clip.stimulus) if clip else None


# --- results --------------------------------------------------------------------------------

def _participant_counts(survey: Survey) -> dict:
    ps = survey.participants.filter(preview=False)
    return {"started": ps.count(), "submitted": ps.filter(submitted__isnull=False).count(),
            "excluded": ps.filter(submitted__isnull=False, attention_passed=False).count(),
            "included": ps.filter(submitted__isnull=False, attention_passed=True).count(),
            "unfinished": ps.filter(submitted__isnull=True).count()}


def included_trial_responses(*, survey: Survey):
    """Trial answers of the submitted participants who passed the attention checks (not the
    researchers' preview tries): what the statistics are computed over."""
    return (Response.objects.filter(participant__survey=survey, item__role=Item.Role.TRIAL,
                                    participant__preview=False,
                                    participant__submitted__isnull=False,
                                    participant__attention_passed=True)
            .select_related("item"))


def ab_scores_by_item(responses) -> list[int]:
    """Signed confidences (paper 4.2) of A/B responses, one per answered item."""
    by = defaultdict(dict)
    for r in responses:
        by[(r.participant_id, r.item_id)][r.question] = (r.value, r.item.b_reversed)
    out = []
    for qs in by.values():
        if "relation" in qs and "confidence" in qs:
            out.append(design.ab_signed_score(qs["relation"][0], qs["confidence"][0],
                                              qs["relation"][1]))
    return out


def survey_results(*, survey: Survey, correction: str = "holm") -> dict:
    """Statistics over the submitted participants who passed every attention check.

    Returns
    -------
    dict
        participants (counts: started, submitted, excluded, included, unfinished) and, for a MOS
        test, ``questions``: {question: stats.mos_table}; for an A/B test, ``ab``: stats.ab_table.
    """
    out = {"kind": survey.kind, "participants": _participant_counts(survey),
           "correction": correction}
    responses = list(included_trial_responses(survey=survey))
    if survey.kind == "mos":
        conds = [c for c in survey.conditions
                 if c != "human" or survey.stimuli.filter(condition="human").exists()]
        out["conditions"] = conds
        out["questions"] = {}
        for q in design.MOS_QUESTIONS:
            vals = {c: [r.value for r in responses if r.question == q and r.item.condition == c]
                    for c in conds}
            out["questions"][q] = stats.mos_table(vals, correction)
    else:
        out["ab"] = stats.ab_table(ab_scores_by_item(responses))
    return out


RESPONSE_COLUMNS = ("survey", "participant", "external_id", "submitted", "attention_passed",
                    "age_band", "training_band", "position", "role", "piece", "condition",
                    "pair", "b_reversed", "question", "value", "signed_score", "answered_at")


def response_rows(*, survey: Survey):
    """Every stored answer of every participant (excluded and unfinished ones too, flagged;
    the researchers' preview tries left out)."""
    rs = (Response.objects.filter(participant__survey=survey, participant__preview=False)
          .select_related("participant", "item__piece__score")
          .order_by("participant__consented", "position", "question"))
    ab = defaultdict(dict)
    if survey.kind == "ab":
        for r in rs:
            ab[(r.participant_id, r.item_id)][r.question] = r.value
    for r in rs:
        p, it = r.participant, r.item
        signed = ""
        if survey.kind == "ab" and r.question == "confidence":
            a = ab[(p.id, it.id)]
            signed = design.ab_signed_score(a.get("relation", 0), a.get("confidence", 0),
                                            it.b_reversed)
        yield (str(survey.id), str(p.id), p.external_id,
               p.submitted.isoformat() if p.submitted else "",
               "" if p.attention_passed is None else int(p.attention_passed), p.age_band,
               p.training_band, r.position, it.role, it.piece.score.title, it.condition,
               it.pair if survey.kind == "ab" else "", int(it.b_reversed) if survey.kind == "ab"
               else "", r.question, r.value, signed, r.created.isoformat())


SUMMARY_COLUMNS = ("question", "condition", "n", "mean", "sd", "ci_low", "ci_high",
                   "test", "statistic", "df", "p", "p_adjusted")


def summary_rows(*, results: dict):
    """The results as rows: descriptive per condition, then the tests."""
    def f(x):
        return "" if x is None or x != x else round(float(x), 6)

    pc = results["participants"]
    yield ("participants", "", pc["submitted"], "", "", "", "", f"excluded {pc['excluded']}",
           "", "", "", "")
    if results["kind"] == "mos":
        for q, t in results["questions"].items():
            for c, d in t["conditions"].items():
                yield (q, c, d["n"], f(d["mean"]), f(d["sd"]), f(d["ci_low"]), f(d["ci_high"]),
                       "", "", "", "", "")
            k = t["kruskal"]
            yield (q, "all", "", "", "", "", "", "kruskal-wallis H", f(k["H"]), k["df"],
                   f(k["p"]), "")
            for r in t["pairwise"]:
                yield (q, f"{r['a']} vs {r['b']}", "", "", "", "", "", "mann-whitney U",
                       f(r["U"]), "", f(r["p"]), f(r["p_adj"]))
    else:
        a = results["ab"]
        yield ("signed_confidence", "perturb", a["n"], f(a["mean"]), f(a["sd"]),
               f(a["ci_low"]), f(a["ci_high"]), "", "", "", "", "")
        w = a["wilcoxon"]
        yield ("signed_confidence", "perturb", w["n_nonzero"], "", "", "", "",
               "wilcoxon signed-rank vs 0", f(w["W"]), "", f(w["p"]), "")
