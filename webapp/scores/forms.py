"""The score upload form."""
from django import forms
from django.conf import settings


class UploadForm(forms.Form):
    file = forms.FileField(
        label="Score file",
        help_text=(f"MusicXML (.musicxml, .xml, .mxl), MIDI, MEI or Humdrum kern; up to "
                   f"{settings.UPLOAD_MAX_BYTES / 1e6:g} MB and "
                   f"{settings.UPLOAD_MAX_NOTES:,} notes."),
        allow_empty_file=True,
    )
    title = forms.CharField(max_length=200, required=False, label="Title (optional)")
