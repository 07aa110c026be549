"""Rendering defaults that the web side reads too (this module imports nothing heavy)."""

# The user's "note-level randomness": 0 takes each head's most likely class, DEFAULT_TEMPERATURE the
# per-head defaults below, and other values scale those in proportion (a head at its expected
# class stays there: ml.inference.head_temperatures). The interpretation's
# variety comes from z; sampling x at 1 adds note-to-note noise that pianists do not make.
DEFAULT_TEMPERATURE = 0.6

# Per-head sampling temperature at the default randomness (DESIGN 4.1), chosen on the val works
# (ml/MODEL_CARD.md, "Evaluation"): sustain 1.0: its 81 classes spread "down" over many patterns,
# so a sharpened draw (0.5) lands on "up" (model v2.1: lift F1 .06 at 0.5, .20 at 1.0).
# Model v2.2 keeps velocity 0.3 and beat tempo 0.6. At their expected class (-1, ml.model.EXPECTED:
# variety from z alone) the val works gave velocity r .31 (.27 sampled), beat tempo r .15 (.13) and
# MAE 13.5 bpm (16.4), but the takes' variety fell to .66 / .47 (.95 / .78; pianists 1).
HEAD_TEMPERATURE = {"velocity": 0.3, "duration": 0.5, "deviation": 0.5, "tempo": 0.6, "sustain": 1.0,
                    "soft": 0.3}

# Spread of z around the prior mean when takes are sampled (mode "prior"): z = mu + t * eps * sigma.
# The prior's full spread (1) makes takes differ more than pianists' interpretations correlate
# with the score; chosen on the val works with the per-head temperatures (ml/MODEL_CARD.md).
DEFAULT_Z_TEMPERATURE = 1.0

# The point estimate (ml.render --point, the evaluation's "point" row): z at the prior mean, the
# ordinal heads at their expected class (-1, ml.model.EXPECTED), the pedal patterns at their most
# likely class (0). Each head's mode alone follows the noisy peak of a broad distribution.
POINT_TEMPERATURE = {"velocity": -1.0, "duration": -1.0, "deviation": -1.0, "tempo": -1.0, "sustain": 0.0,
                     "soft": 0.0}
