"""Forms of the researchers' pages (the participants' answers are JSON, checked in services)."""
from __future__ import annotations

from django import forms
from django.db.models import Q

from webapp.models import Score
from webapp.surveys import design
from webapp.surveys.models import Survey


class SurveyForm(forms.Form):
    title = forms.CharField(max_length=200)
    kind = forms.ChoiceField(choices=Survey.Kind.choices, initial=Survey.Kind.MOS)
    scores = forms.ModelMultipleChoiceField(
        queryset=Score.objects.none(), widget=forms.CheckboxSelectMultiple, label="Pieces",
        help_text="Demo scores and your uploads.")
    segment_sec = forms.FloatField(min_value=2, max_value=60, initial=15,
                                   label="Passage length (s)",
                                   help_text="15 s in the paper, at the written tempo.")
    conditions = forms.MultipleChoiceField(
        choices=list(design.CONDITIONS.items()), widget=forms.CheckboxSelectMultiple,
        initial=list(design.CONDITIONS), required=False, label="Conditions (MOS test)",
        help_text="The human condition is used for pieces where you upload a performance.")
    pairs_per_piece = forms.IntegerField(min_value=1, max_value=10, initial=1,
                                         label="Pairs of passages per piece (A/B test)")
    n_attention = forms.IntegerField(min_value=0, max_value=5, initial=2,
                                     label="Attention checks")
    completion_code = forms.CharField(max_length=40, required=False,
                                      help_text="Shown at the end (e.g. your crowdsourcing "
                                                "platform's code); random when empty.")
    instructions = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), required=False,
                                   help_text="Empty: the default instructions of the test.")
    require_external_id = forms.BooleanField(
        required=False, label="Require a participant id",
        help_text="For panels: only links with ?pid=ID (or PROLIFIC_PID) are taken, once per id.")

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        q = Q(is_demo=True)
        if user is not None:
            q |= Q(owner=user)
        self.fields["scores"].queryset = Score.objects.filter(q).order_by("-is_demo", "title")

    def clean(self):
        data = super().clean()
        if data.get("kind") == Survey.Kind.MOS and len(data.get("conditions") or []) < 2:
            self.add_error("conditions", "A MOS test compares at least two conditions.")
        return data


class PieceForm(forms.Form):
    start_beat = forms.FloatField(required=False, min_value=0, label="Start (beat)",
                                  help_text="Empty: a random bar.")
    human_midi = forms.FileField(required=False, label="Human performance (MIDI)")
    clear_human = forms.BooleanField(required=False, label="Remove the human performance")


class ConsentForm(forms.Form):
    consent = forms.BooleanField(required=True, label="I agree to take part")
    external_id = forms.CharField(max_length=100, required=False, widget=forms.HiddenInput)
