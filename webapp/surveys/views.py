"""HTTP views of the listening tests (thin): researchers' pages (staff) and the participants'."""
from __future__ import annotations

import csv
import io
import json
import logging
import secrets

from django.contrib import messages
from django.http import FileResponse, Http404, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.safestring import mark_safe
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from webapp.surveys import design, plots, selectors, services
from webapp.surveys.forms import ConsentForm, PieceForm, SurveyForm
from webapp.surveys.models import Stimulus, Survey
from webapp.surveys.services import SurveyRefused

log = logging.getLogger(__name__)
BROWSER_COOKIE = "survey_browser"   # a signed random id: participants are bound to it
BROWSER_SALT = "surveys.browser"
BROWSER_MAX_AGE_S = 365 * 24 * 3600
EXTERNAL_ID_PARAMS = ("pid", "PROLIFIC_PID", "participant")


def _forbidden(request):
    return render(request, "surveys/message.html", {
        "title": "Staff only", "text": "Only staff accounts can manage listening tests."},
        status=403)


def staff_required(view):
    def wrapped(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect(f"{reverse('login')}?next={request.path}")
        if not request.user.is_staff:
            return _forbidden(request)
        return view(request, *args, **kwargs)
    wrapped.__name__, wrapped.__doc__ = view.__name__, view.__doc__
    return wrapped


def _survey_or_404(request, survey_id) -> Survey:
    survey = selectors.survey_get_for_staff(survey_id=survey_id, user=request.user)
    if survey is None:
        raise Http404("no such survey")
    return survey


# --- researchers ----------------------------------------------------------------------------

@require_GET
@staff_required
def survey_list(request):
    return render(request, "surveys/list.html",
                  {"surveys": selectors.survey_list(user=request.user)})


@require_http_methods(["GET", "POST"])
@staff_required
def survey_new(request):
    form = SurveyForm(request.POST or None, user=request.user)
    if request.method == "POST" and form.is_valid():
        d = form.cleaned_data
        try:
            survey = services.survey_create(
                owner=request.user, title=d["title"], kind=d["kind"], scores=list(d["scores"]),
                segment_sec=d["segment_sec"], conditions=d["conditions"],
                pairs_per_piece=d["pairs_per_piece"], n_attention=d["n_attention"],
                instructions=d["instructions"], completion_code=d["completion_code"],
                require_external_id=d["require_external_id"])
        except SurveyRefused as exc:
            form.add_error(None, str(exc))
        else:
            return redirect("surveys:detail", survey_id=survey.id)
    return render(request, "surveys/new.html", {"form": form},
                  status=400 if request.method == "POST" else 200)


@require_GET
@staff_required
def survey_detail(request, survey_id):
    survey = _survey_or_404(request, survey_id)
    stimuli = selectors.stimuli_for_preview(survey=survey)
    roles = selectors.stimulus_roles(survey=survey)
    for s in stimuli:
        s.url = selectors.stimulus_audio_url(s) if s.state == Stimulus.State.DONE else None
        s.roles = roles.get(s.id, "")
    return render(request, "surveys/detail.html", {
        "survey": survey, "pieces": survey.pieces.select_related("score"), "stimuli": stimuli,
        "counts": selectors.stimulus_counts(survey=survey), "conditions": design.CONDITIONS,
        "participant_url": request.build_absolute_uri(reverse("surveys:take", args=[survey.id])),
        "n_participants": survey.participants.filter(preview=False).count(),
        "can_try": survey.state in (Survey.State.READY, Survey.State.OPEN),
        "aligning": survey.pieces.filter(human_state="pending").exists()})


@require_GET
@staff_required
def survey_status(request, survey_id):
    survey = _survey_or_404(request, survey_id)
    return JsonResponse({"state": survey.state, "message": survey.message,
                         "stimuli": selectors.stimulus_counts(survey=survey)})


@require_POST
@staff_required
def piece_update(request, survey_id, piece_id):
    survey = _survey_or_404(request, survey_id)
    piece = survey.pieces.select_related("score", "survey").filter(id=piece_id).first()
    if piece is None:
        raise Http404("no such piece")
    form = PieceForm(request.POST, request.FILES)
    if not form.is_valid():
        messages.error(request, "; ".join(e for errs in form.errors.values() for e in errs))
    else:
        try:
            services.survey_piece_update(piece=piece, start_beat=form.cleaned_data["start_beat"],
                                         human_file=form.cleaned_data["human_midi"],
                                         clear_human=form.cleaned_data["clear_human"])
            messages.info(request, f"Saved “{piece.score.title}”.")
        except SurveyRefused as exc:
            messages.error(request, str(exc))
    return redirect("surveys:detail", survey_id=survey.id)


@require_POST
@staff_required
def survey_try(request, survey_id):
    """The researcher takes the survey as a participant would (a preview participant: the same
    pages and rules, not counted); also before it opens."""
    survey = _survey_or_404(request, survey_id)
    browser_id = _browser_id(request)
    try:
        p = services.participant_start(survey=survey, preview=True,
                                       browser=selectors.browser_hash(browser_id))
    except SurveyRefused as exc:
        messages.error(request, str(exc))
        return redirect("surveys:detail", survey_id=survey.id)
    return _bind(redirect("surveys:run", token=p.token), browser_id)


@require_POST
@staff_required
def survey_delete(request, survey_id):
    survey = _survey_or_404(request, survey_id)
    title = survey.title
    try:
        services.survey_delete(survey=survey)
    except SurveyRefused as exc:
        messages.error(request, str(exc))
        return redirect("surveys:detail", survey_id=survey.id)
    messages.info(request, f"Deleted the listening test “{title}”.")
    return redirect("surveys:list")


ACTIONS = {"prepare": services.survey_prepare, "open": services.survey_open,
           "close": services.survey_close, "edit": services.survey_back_to_draft}


@require_POST
@staff_required
def survey_action(request, survey_id, action):
    survey = _survey_or_404(request, survey_id)
    if action not in ACTIONS:
        raise Http404("no such action")
    try:
        ACTIONS[action](survey=survey)
    except SurveyRefused as exc:
        messages.error(request, str(exc))
    return redirect("surveys:detail", survey_id=survey.id)


def _correction(request) -> str:
    c = request.GET.get("correction", "holm")
    return c if c in ("holm", "bonferroni") else "holm"


@require_GET
@staff_required
def survey_results(request, survey_id):
    survey = _survey_or_404(request, survey_id)
    res = selectors.survey_results(survey=survey, correction=_correction(request))
    charts = []
    if survey.kind == "mos":
        for q, t in res["questions"].items():
            charts.append(mark_safe(plots.mos_bars(t["conditions"], design.CONDITIONS,
                                                   title=f"{q.capitalize()} (mean, 95% CI)")))
    else:
        rs = selectors.included_trial_responses(survey=survey)
        charts.append(mark_safe(plots.ab_histogram(selectors.ab_scores_by_item(rs),
                                                   title="A/B signed confidence")))
    return render(request, "surveys/results.html", {
        "survey": survey, "res": res, "charts": charts, "labels": design.CONDITIONS})


def _cell(v):
    # A text cell starting like a formula would run in a spreadsheet (titles are user input).
    return "'" + v if isinstance(v, str) and v[:1] in ("=", "+", "-", "@", "\t", "\r") else v


def _csv_response(name: str, header, rows) -> HttpResponse:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(header)
    w.writerows([_cell(v) for v in row] for row in rows)
    resp = HttpResponse(buf.getvalue(), content_type="text/csv; charset=utf-8")
    resp["Content-Disposition"] = f'attachment; filename="{name}"'
    return resp


@require_GET
@staff_required
def responses_csv(request, survey_id):
    survey = _survey_or_404(request, survey_id)
    return _csv_response(f"survey-{survey.id.hex[:8]}-responses.csv",
                         selectors.RESPONSE_COLUMNS, selectors.response_rows(survey=survey))


@require_GET
@staff_required
def summary_csv(request, survey_id):
    survey = _survey_or_404(request, survey_id)
    res = selectors.survey_results(survey=survey, correction=_correction(request))
    return _csv_response(f"survey-{survey.id.hex[:8]}-summary.csv", selectors.SUMMARY_COLUMNS,
                         selectors.summary_rows(results=res))


@require_GET
def stimulus_audio(request, stimulus_id):
    st = Stimulus.objects.filter(id=stimulus_id, state=Stimulus.State.DONE).first()
    if st is None or not st.audio:
        raise Http404("no such clip")
    return FileResponse(st.audio.open("rb"), content_type="audio/ogg")


# --- participants ---------------------------------------------------------------------------

def _browser_id(request) -> str:
    """This browser's signed id (a new one when it has none yet; _bind stores it)."""
    bid = request.get_signed_cookie(BROWSER_COOKIE, default="", salt=BROWSER_SALT,
                                    max_age=BROWSER_MAX_AGE_S)
    return bid or secrets.token_urlsafe(18)


def _bind(response, browser_id: str):
    response.set_signed_cookie(BROWSER_COOKIE, browser_id, salt=BROWSER_SALT,
                               max_age=BROWSER_MAX_AGE_S, httponly=True, samesite="Lax")
    return response


def _refused(request, survey, exc: SurveyRefused):
    return render(request, "surveys/message.html", {"title": survey.title, "text": str(exc)},
                  status=exc.status)


def _external_id(request) -> str:
    for k in EXTERNAL_ID_PARAMS:
        if request.GET.get(k):
            return request.GET[k].strip()
    return ""


@require_GET
def take(request, survey_id):
    survey = selectors.survey_get_public(survey_id=survey_id)
    if survey is None:
        raise Http404("no such survey")
    ext = _external_id(request)
    browser_id = _browser_id(request)
    try:
        p = selectors.participant_for_browser(survey=survey, external_id=ext,
                                              browser=selectors.browser_hash(browser_id))
    except SurveyRefused as exc:
        return _refused(request, survey, exc)
    if p is not None:
        return _bind(redirect("surveys:run", token=p.token), browser_id)
    if survey.state != Survey.State.OPEN:
        return render(request, "surveys/message.html", {
            "title": survey.title, "text": "This listening test is not open."}, status=409)
    if survey.require_external_id and not ext:
        return _refused(request, survey, SurveyRefused(services.REQUIRED_ID_MESSAGE))
    return _bind(render(request, "surveys/consent.html", {
        "survey": survey, "form": ConsentForm(initial={"external_id": ext})}), browser_id)


@require_POST
def consent(request, survey_id):
    survey = selectors.survey_get_public(survey_id=survey_id)
    if survey is None:
        raise Http404("no such survey")
    form = ConsentForm(request.POST)
    browser_id = _browser_id(request)
    if form.is_valid():
        try:
            p = services.participant_start(survey=survey,
                                           external_id=form.cleaned_data["external_id"],
                                           browser=selectors.browser_hash(browser_id))
        except SurveyRefused as exc:
            form.add_error(None, str(exc))
        else:
            return _bind(redirect("surveys:run", token=p.token), browser_id)
    return _bind(render(request, "surveys/consent.html", {"survey": survey, "form": form},
                        status=400), browser_id)


def _participant_or_404(request, token):
    """The participant of ``token``, for the browser that consented only (404 for another)."""
    p = selectors.participant_by_token(token=token)
    if p is not None and p.browser and p.browser != selectors.browser_hash(
            request.get_signed_cookie(BROWSER_COOKIE, default="", salt=BROWSER_SALT,
                                      max_age=BROWSER_MAX_AGE_S)):
        log.warning("survey participant %s: its link was opened in another browser; refused",
                    p.id)
        p = None
    if p is None:
        raise Http404("no such participant")
    return p


@require_GET
@ensure_csrf_cookie
def run(request, token):
    p = _participant_or_404(request, token)
    return render(request, "surveys/run.html", {
        "survey": p.survey, "token": token,
        "config": {"state_url": reverse("surveys:state", args=[token]),
                   "answer_url": reverse("surveys:answer", args=[token]),
                   "submit_url": reverse("surveys:submit", args=[token]),
                   "volume_url": selectors.volume_clip_url(survey=p.survey),
                   "instructions": p.survey.instructions, "kind": p.survey.kind},
        "preview": p.preview})


@require_GET
def state(request, token):
    p = _participant_or_404(request, token)
    services.participant_serve(participant=p)
    return JsonResponse(selectors.participant_state(participant=p))


def _json_body(request) -> dict:
    try:
        body = json.loads(request.body or b"{}")
    except ValueError:
        raise SurveyRefused("the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise SurveyRefused("the request body must be a JSON object")
    return body


def _bound_or_404(request, token):
    """A JSON 404 unless this browser is the participant's; None when it is."""
    try:
        _participant_or_404(request, token)
    except Http404:
        return JsonResponse({"error": "unknown participant"}, status=404)
    return None


@require_POST
def answer(request, token):
    if (refused := _bound_or_404(request, token)) is not None:
        return refused
    try:
        body = _json_body(request)
        p = services.response_submit(token=token, position=body.get("position"),
                                     key=str(body.get("key", "")), answers=body.get("answers"))
    except SurveyRefused as exc:
        return JsonResponse({"error": str(exc)}, status=exc.status)
    services.participant_serve(participant=p)
    return JsonResponse(selectors.participant_state(participant=p))


@require_POST
def submit(request, token):
    if (refused := _bound_or_404(request, token)) is not None:
        return refused
    try:
        body = _json_body(request)
        p = services.participant_submit(token=token, age_band=str(body.get("age_band", "")),
                                        training_band=str(body.get("training_band", "")))
    except SurveyRefused as exc:
        return JsonResponse({"error": str(exc)}, status=exc.status)
    return JsonResponse({"completion_code": p.survey.completion_code, "done": True})
