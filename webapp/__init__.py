"""The web application: scores, render jobs, performances, accounts (one Django app)."""
# Packages by domain (jobs, scores, references, accounts, presets, surveys, api) import each other
# at the top, without circles (webapp.jobs.lifecycle sends the render task by
# name, so the web side never imports webapp.jobs.tasks). The function-local imports that remain, and why:
# - ml.inference (torch), in webapp.jobs.renderer, webapp.jobs.worker and webapp.references.align: the model and
#   the reference encoding run only in the Celery workers and the alignment child process; the web
#   process (Daphne) never loads torch.
# - partitura and verovio, in webapp.scores.engraving: only the score-parsing child processes engrave.
# - soundfile, in webapp.surveys.stimuli: audio files are read only by the worker.
# - music21, in the load_demos command: its corpus is read only when the command runs.
# - webapp.surveys.tasks, in webapp.surveys.apps.ready(): registers the surveys' Celery tasks
#   (config/celery.py autodiscovers webapp.jobs.tasks only).
