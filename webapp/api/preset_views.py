"""API views of presets: CRUD, share / stop sharing, apply; shared presets (public)."""
from __future__ import annotations

from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from webapp.api import selectors as api_selectors
from webapp.api import serializers as s
from webapp.api.permissions import USER_OR_SESSION
from webapp.api.views import _body, _errors, _job_created, _render_refusals, _valid
from webapp.http import client_addr, request_session_key, score_or_404
from webapp.jobs.selectors import performance_get_visible
from webapp.presets import selectors as preset_selectors
from webapp.presets import services as preset_services
from webapp.presets.services import PresetError
from webapp.presets.views import preset_owned_or_404, preset_shared_or_404


def _mine(preset) -> dict:
    return api_selectors.api_preset(preset=preset, for_owner=True)


class PresetListView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(operation_id="presets_list", responses={200: s.PresetSerializer(many=True),
                                                           **_errors(401)},
                   summary="Your presets, most recently changed first")
    def get(self, request):
        presets = preset_selectors.preset_list_for_user(user=request.user)
        return Response([_mine(p) for p in presets])

    @extend_schema(operation_id="presets_create", request=s.PresetCreateSerializer,
                   responses={201: s.PresetSerializer, **_errors(400, 401, 404)},
                   summary="Save a take (performance_id) or given controls as a private preset")
    def post(self, request):
        body = _body(request)
        data = _valid(s.PresetCreateCheck, body)
        try:
            if data.get("performance_id"):
                if "controls" in body or "seed" in body:
                    raise PresetError("give either performance_id or seed and controls")
                perf = performance_get_visible(
                    performance_id=data["performance_id"], user=request.user, session_key="")
                if perf is None:
                    raise Http404("no such performance")
                preset = preset_services.preset_create_from_performance(
                    performance=perf, owner=request.user, name=data["name"],
                    description=data.get("description", ""))
            else:
                preset = preset_services.preset_create(
                    owner=request.user, name=data["name"],
                    description=data.get("description", ""), seed=body.get("seed"),
                    controls=body.get("controls") or {})
        except PresetError as exc:
            raise ValidationError(str(exc)) from None
        return Response(_mine(preset), status=status.HTTP_201_CREATED)


class PresetDetailView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(operation_id="presets_retrieve", responses={200: s.PresetSerializer,
                                                               **_errors(401, 404)},
                   summary="One of your presets")
    def get(self, request, preset_id):
        return Response(_mine(preset_owned_or_404(request, preset_id)))

    @extend_schema(operation_id="presets_update", request=s.PresetUpdateSerializer,
                   responses={200: s.PresetSerializer, **_errors(400, 401, 404)},
                   summary="Rename and/or change the description")
    def patch(self, request, preset_id):
        preset = preset_owned_or_404(request, preset_id)
        data = _valid(s.PresetUpdateSerializer, _body(request))
        try:
            preset = preset_services.preset_update(preset=preset, name=data.get("name"),
                                                   description=data.get("description"))
        except PresetError as exc:
            raise ValidationError(str(exc)) from None
        return Response(_mine(preset))

    @extend_schema(operation_id="presets_destroy", responses={204: None, **_errors(401, 404)},
                   summary="Delete a preset (its share link answers 404 from now on)")
    def delete(self, request, preset_id):
        preset_services.preset_delete(preset=preset_owned_or_404(request, preset_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class PresetShareView(APIView):
    permission_classes = [IsAuthenticated]
    share = True

    @extend_schema(operation_id="presets_share", request=None,
                   responses={200: s.PresetSerializer, **_errors(401, 404)},
                   summary="Share by an unguessable link (share_url)")
    def post(self, request, preset_id):
        preset = preset_owned_or_404(request, preset_id)
        if self.share:
            preset = preset_services.preset_share(preset=preset)
        else:
            preset = preset_services.preset_unshare(preset=preset)
        return Response(_mine(preset))


class PresetUnshareView(PresetShareView):
    share = False

    @extend_schema(operation_id="presets_unshare", request=None,
                   responses={200: s.PresetSerializer, **_errors(401, 404)},
                   summary="Stop sharing: the old link answers 404 from now on")
    def post(self, request, preset_id):
        return super().post(request, preset_id)


class PresetApplyView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(operation_id="presets_apply", request=s.ApplySerializer,
                   responses={201: s.JobSerializer, **_errors(400, 401, 403, 404, 429, 503)},
                   summary="Render a score with the preset's seed, controls and reference")
    def post(self, request, preset_id):
        preset = preset_owned_or_404(request, preset_id)
        return _apply(request, preset)


def _apply(request, preset):
    data = _valid(s.ApplyCheck, _body(request))
    score = score_or_404(request, data["score_id"])
    variation = None
    if any(k in data for k in ("seed", "controls", "variations")):
        if "controls" in data:
            controls = dict(data["controls"])
        else:  # the preset's own; its reference is added back by preset_apply
            controls = {k: v for k, v in (preset.controls or {}).items() if k != "reference_id"}
        if "variations" in data:
            controls["variations"] = data["variations"]
        variation = {"seed": data["seed"] if "seed" in data else preset.seed, "controls": controls}
    session_key = request_session_key(request, create=not request.user.is_authenticated)
    return _render_refusals(lambda: _job_created(preset_services.preset_apply(
        preset=preset, score=score, user=request.user, session_key=session_key,
        variation=variation, client_addr=client_addr(request))))


class SharedPresetListView(APIView):
    permission_classes = [AllowAny]

    @extend_schema(operation_id="shared_presets_list",
                   responses={200: s.PresetSerializer(many=True)},
                   summary="Every shared preset (public)")
    def get(self, request):
        return Response([api_selectors.api_preset(preset=p, for_owner=False)
                         for p in preset_selectors.preset_list_shared()])


class SharedPresetDetailView(APIView):
    permission_classes = [AllowAny]

    @extend_schema(operation_id="shared_presets_retrieve",
                   responses={200: s.PresetSerializer, **_errors(404)},
                   summary="A shared preset by its share token (public)")
    def get(self, request, token):
        return Response(api_selectors.api_preset(preset=preset_shared_or_404(token),
                                                 for_owner=False))


class SharedPresetApplyView(APIView):
    permission_classes = USER_OR_SESSION

    @extend_schema(operation_id="shared_presets_apply", request=s.ApplySerializer,
                   responses={201: s.JobSerializer, **_errors(400, 401, 403, 404, 429, 503)},
                   summary="Render a score with a shared preset (anonymous: a browser session, "
                           "which owns the job)")
    def post(self, request, token):
        return _apply(request, preset_shared_or_404(token))
