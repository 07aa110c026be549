"""Rendering defaults that the web side reads too (this module imports nothing heavy)."""

# The user's "note-level randomness": 0 takes each head's most likely class, DEFAULT_TEMPERATURE the
# per-head defaults below, and other values scale those in proportion. The interpretation's
# variety comes from z; sampling x at 1 adds note-to-note noise that pianists do not make.
DEFAULT_TEMPERATURE = 0.6

# Per-head sampling temperature at the default randomness (model v2, DESIGN 4.1): tempo and
# velocity near the point estimate (their phrase shape comes from z and the score context),
# duration, onset deviation and pedal as trained. Chosen on the val works (ml/MODEL_CARD.md).
HEAD_TEMPERATURE = {"velocity": 0.5, "duration": 0.7, "deviation": 0.7, "tempo": 0.3, "sustain": 0.7,
                    "soft": 0.5}

# Spread of z around the prior mean when takes are sampled (mode "prior"): z = mu + t * eps * sigma.
# The prior's full spread (1) makes takes differ more than pianists' interpretations correlate
# with the score; chosen on the val works with the per-head temperatures (ml/MODEL_CARD.md).
DEFAULT_Z_TEMPERATURE = 1.0
