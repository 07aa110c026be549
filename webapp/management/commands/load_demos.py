"""``manage.py load_demos``: add the demo piano scores from music21's corpus (idempotent)."""
from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from webapp.errors import ScoreError, ScoreInUse
from webapp.models import Score
from webapp.scores.services import score_create, score_delete

M21_NOTE = ("Encoding from the corpus shipped with music21 (BSD-licensed software; its corpus "
            "is distributed with the encoders' permission, some encodings not for commercial "
            "use: see music21/corpus/license.txt).")
DEMOS = [
    {"key": "joplin-maple-leaf-rag", "work": "joplin/maple_leaf_rag.mxl",
     "title": "Scott Joplin: Maple Leaf Rag (1899)",
     "about": "Composition published 1899, in the public domain."},
    {"key": "mozart-k545-1-exposition", "work": "mozart/k545/movement1_exposition.mxl",
     "title": "W. A. Mozart: Piano Sonata in C major, K. 545, I. Allegro (exposition)",
     "about": "Composition of 1788, in the public domain."},
    {"key": "clara-schumann-polonaise-op1-1", "work": "schumann_clara/polonaise_op1n1.mxl",
     "title": "Clara Schumann: Polonaise, Op. 1 No. 1",
     "about": "Composition published 1831, in the public domain."},
    {"key": "chopin-mazurka-op6-2", "work": "chopin/mazurka06-2.krn",
     "title": "Frédéric Chopin: Mazurka in C-sharp minor, Op. 6 No. 2",
     "about": "Composition of 1830-32, in the public domain; Humdrum kern encoding by Craig "
              "Stuart Sapp (KernScores, CCARH) after the Mikuli edition (Schirmer, 1894-98)."},
]


class Command(BaseCommand):
    help = "Load the demo scores (music21 corpus; public-domain compositions). Idempotent."

    def add_arguments(self, parser):
        parser.add_argument("--refresh", action="store_true",
                            help="re-parse and replace demos that already exist")

    def handle(self, *args, refresh: bool = False, **opts):
        from music21 import corpus  # heavy: only when the command runs

        failed = []
        for demo in DEMOS:
            existing = Score.objects.filter(is_demo=True, demo_key=demo["key"]).first()
            if existing and not refresh:
                self.stdout.write(f"= {demo['title']} (already loaded)")
                continue
            path = Path(str(corpus.getWork(demo["work"])))
            if not path.is_file():
                raise CommandError(f"music21 corpus file missing: {demo['work']}")
            if existing:
                try:
                    score_delete(score=existing)
                except ScoreInUse as exc:
                    self.stderr.write(f"! {demo['title']} kept as it is: {exc}")
                    continue
            desc = f"{demo['about']} Source: music21 corpus, {demo['work']}. {M21_NOTE}"
            try:
                score = score_create(path=path, original_filename=path.name, owner=None,
                                     title=demo["title"], is_demo=True, demo_key=demo["key"],
                                     description=desc)
            except ScoreError as exc:
                self.stderr.write(f"! {demo['work']} could not be loaded: {exc}")
                failed.append(demo["work"])
                continue
            self.stdout.write(f"+ {score.title}: {score.n_notes} notes, notemap coverage "
                              f"{100 * score.notemap_coverage:.0f}%")
        if failed:
            raise CommandError(f"{len(failed)} demo(s) could not be loaded: {', '.join(failed)}")
