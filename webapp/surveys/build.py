"""Build a survey's stimuli and items from its pieces (called by services.survey_prepare,
inside its transaction): the passages, the conditions or A/B pairs, the practice item and the
attention checks with their known answers."""
from __future__ import annotations

import numpy as np

from render.baselines import deadpan
from webapp.models import Score
from webapp.scores.prep import load_parsed
from webapp.surveys import design
from webapp.surveys.errors import SurveyRefused
from webapp.surveys.models import Item, ItemClip, Stimulus, Survey


def _timeline(score_row: Score):
    """(score, deadpan onsets in s, bar onsets) of a stored score."""
    score = load_parsed(score_row.parsed.path, title=score_row.title, fmt=score_row.format,
                        source=score_row.original_filename)
    return score, deadpan(score)["onset_sec"], score.notes["bar_onset_beat"]


def _stim(survey, piece, condition, span, seed, **kw) -> Stimulus:
    return Stimulus.objects.create(survey=survey, piece=piece, condition=condition, seed=seed,
                                   start_beat=span[0], end_beat=span[1], **kw)


def _item(survey, piece, role, clips, **kw) -> Item:
    item = Item.objects.create(survey=survey, piece=piece, role=role, **kw)
    for k, (stim, label) in enumerate(clips):
        ItemClip.objects.create(item=item, stimulus=stim, order=k, label=label)
    return item


def _ab_pair(survey, piece, pair, spans, rng, role) -> Item:
    delta = [round(float(v), 4) for v in rng.standard_normal(5)]
    seed = int(rng.integers(2**31))
    st = {(seg, sign): _stim(survey, piece, "perturb", span, seed, segment=seg, pair=pair,
                             sign=sign, delta=delta)
          for seg, span in zip("AB", spans) for sign in (1, -1)}
    rev = bool(rng.integers(2))
    b = [st["B", -1], st["B", 1]] if rev else [st["B", 1], st["B", -1]]
    return _item(survey, piece, role, [(st["A", 1], "A1"), (st["A", -1], "A2"),
                                       (b[0], "B first"), (b[1], "B second")],
                 pair=pair, b_reversed=rev, condition="perturb")


def build_items(survey: Survey, pieces: list, rng: np.random.Generator, human_span) -> None:
    """Create the stimuli (pending) and items of ``survey``.

    Parameters
    ----------
    pieces : list of SurveyPiece
    rng : the survey's random generator (passages, seeds, Delta, B's order, checks)
    human_span : callable
        piece -> (start_beat, end_beat) its human performance covers, or None.

    Raises
    ------
    SurveyRefused
        When a piece cannot give the passages asked for.
    """
    trials, pair = [], 0
    for piece in pieces:
        score, onset_sec, bars = _timeline(piece.score)
        ob, end = score.notes["onset_beat"], float(np.max(score.notes["onset_beat"]
                                                          + score.notes["duration_beat"]))
        human = human_span(piece) if "human" in survey.conditions else None
        if human is not None:  # passages only where the pianist played
            keep = (ob >= human[0] - 1e-9) & (ob < human[1] - 1e-9)
            ob, onset_sec, bars, end = ob[keep], onset_sec[keep], bars[keep], human[1]
            if piece.start_beat is not None and not human[0] <= piece.start_beat < human[1]:
                raise SurveyRefused(f"{piece.score.title}: the human performance covers beats "
                                    f"{human[0]:g} to {human[1]:g}; start the passage there")
        try:
            if survey.kind == "mos":
                span = design.passage(ob, onset_sec, bars, segment_sec=survey.segment_sec,
                                      rng=rng, start_beat=piece.start_beat,
                                      piece_end_beat=end)
                seed = int(rng.integers(2**31))
                for cond in survey.conditions:
                    if cond == "human" and not piece.human_midi:
                        continue
                    s = _stim(survey, piece, cond, span, seed)
                    trials.append(_item(survey, piece, Item.Role.TRIAL, [(s, "Clip")],
                                        condition=cond))
            else:
                for _ in range(survey.pairs_per_piece):
                    spans = design.two_passages(ob, onset_sec, bars, rng=rng,
                                                segment_sec=survey.segment_sec,
                                                piece_end_beat=end)
                    trials.append(_ab_pair(survey, piece, pair, spans, rng, Item.Role.TRIAL))
                    pair += 1
        except ValueError as exc:
            raise SurveyRefused(f"{piece.score.title}: {exc}") from None
    first = pieces[0]
    score, onset_sec, bars = _timeline(first.score)
    ob = score.notes["onset_beat"]
    if survey.kind == "mos":  # practice: another passage, by the humanizer
        span = design.passage(ob, onset_sec, bars, segment_sec=survey.segment_sec, rng=rng)
        s = _stim(survey, first, "humanizer", span, int(rng.integers(2**31)))
        _item(survey, first, Item.Role.PRACTICE, [(s, "Clip")], condition="humanizer")
    else:
        try:
            spans = design.two_passages(ob, onset_sec, bars, segment_sec=survey.segment_sec,
                                        rng=rng)
        except ValueError as exc:
            raise SurveyRefused(f"{first.score.title} (practice pair): {exc}") from None
        _ab_pair(survey, first, pair, spans, rng, Item.Role.PRACTICE)
    if not trials:
        raise SurveyRefused("no item to ask: choose conditions that every piece can give")
    for _ in range(survey.n_attention):
        base = trials[int(rng.integers(len(trials)))]
        clips = [(c.stimulus, c.label) for c in base.item_clips.select_related("stimulus")]
        if survey.kind == "mos":
            exp = {"naturalness": int(rng.integers(1, 6)),
                   "expressiveness": int(rng.integers(1, 6))}
            text = (f"Attention check: whatever you hear, please answer "
                    f"{exp['naturalness']} for naturalness and {exp['expressiveness']} "
                    f"for expressiveness.")
        else:
            exp = {"relation": int(rng.choice([1, -1])), "confidence": 2}
            text = (f"Attention check: whatever you hear, please answer "
                    f"“{design.AB_QUESTIONS['relation']['choices'][exp['relation']]}” "
                    f"with confidence 2.")
        _item(survey, base.piece, Item.Role.ATTENTION, clips, condition=base.condition,
              pair=base.pair, b_reversed=base.b_reversed, expected=exp, instruction=text)
