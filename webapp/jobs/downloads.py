"""A performance as a file download (MIDI, CSV, WAV, OGG), for the web pages and the API."""
from __future__ import annotations

from django.http import FileResponse, Http404, HttpResponse

from render.export import AudioError
from webapp.jobs.services import performance_audio, performance_csv
from webapp.models import Performance


class AudioUnavailable(Exception):
    """The audio could not be made (no soundfont, synthesis failed); the message says why."""


def performance_file_response(*, performance: Performance, fmt: str) -> HttpResponse:
    """An attachment response of ``performance`` in ``fmt`` (mid, csv, wav, ogg).

    Raises
    ------
    Http404
        For an unknown format.
    AudioUnavailable
        When a WAV or OGG cannot be synthesised.
    """
    perf = performance
    stem = f"{perf.score.title or 'performance'}-seed{perf.seed}".replace("/", "_")[:120]
    if fmt == "mid":
        return FileResponse(perf.midi.open("rb"), as_attachment=True, filename=f"{stem}.mid",
                            content_type="audio/midi")
    if fmt == "csv":
        resp = HttpResponse(performance_csv(performance=perf), content_type="text/csv; charset=utf-8")
        resp["Content-Disposition"] = f'attachment; filename="{stem}.csv"'
        return resp
    if fmt in ("wav", "ogg"):
        try:
            path = performance_audio(performance=perf, fmt=fmt)
        except AudioError as exc:
            raise AudioUnavailable(f"the audio could not be made: {exc}") from exc
        return FileResponse(open(path, "rb"), as_attachment=True, filename=f"{stem}.{fmt}",
                            content_type=f"audio/{fmt}")
    raise Http404("unknown format")
