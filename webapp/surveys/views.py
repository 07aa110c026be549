"""HTTP views of the listening tests (thin): researchers' pages (staff) and the participants'."""
from __future__ import annotations

import csv
import io
import json

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

SESSION_KEY = "survey_tokens"
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
                instructions=d["instructions"], completion_code=d["completion_code"])
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
    try:
        p = services.participant_start(survey=survey, preview=True)
    except SurveyRefused as exc:
        messages.error(request, str(exc))
        return redirect("surveys:detail", survey_id=survey.id)
    return redirect("surveys:run", token=p.token)


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

def _tokens(request) -> dict:
    return dict(request.session.get(SESSION_KEY) or {})


def _remember(request, survey, participant) -> None:
    tokens = _tokens(request)
    tokens[str(survey.id)] = participant.token
    request.session[SESSION_KEY] = tokens


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
    token = _tokens(request).get(str(survey.id))
    p = selectors.participant_by_token(token=token) if token else None
    if ext and (p is None or p.external_id != ext):
        p = survey.participants.filter(external_id=ext).first()
    if p is not None:
        _remember(request, survey, p)
        return redirect("surveys:run", token=p.token)
    if survey.state != Survey.State.OPEN:
        return render(request, "surveys/message.html", {
            "title": survey.title, "text": "This listening test is not open."}, status=409)
    return render(request, "surveys/consent.html", {
        "survey": survey, "form": ConsentForm(initial={"external_id": ext})})


@require_POST
def consent(request, survey_id):
    survey = selectors.survey_get_public(survey_id=survey_id)
    if survey is None:
        raise Http404("no such survey")
    form = ConsentForm(request.POST)
    if form.is_valid():
        try:
            p = services.participant_start(survey=survey,
                                           external_id=form.cleaned_data["external_id"])
        except SurveyRefused as exc:
            form.add_error(None, str(exc))
        else:
            _remember(request, survey, p)
            return redirect("surveys:run", token=p.token)
    return render(request, "surveys/consent.html", {"survey": survey, "form": form}, status=400)


def _participant_or_404(token):
    p = selectors.participant_by_token(token=token)
    if p is None:
        raise Http404("no such participant")
    return p


@require_GET
@ensure_csrf_cookie
def run(request, token):
    p = _participant_or_404(token)
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
    p = _participant_or_404(token)
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


@require_POST
def answer(request, token):
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
    try:
        body = _json_body(request)
        p = services.participant_submit(token=token, age_band=str(body.get("age_band", "")),
                                        training_band=str(body.get("training_band", "")))
    except SurveyRefused as exc:
        return JsonResponse({"error": str(exc)}, status=exc.status)
    return JsonResponse({"completion_code": p.survey.completion_code, "done": True})
