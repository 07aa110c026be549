"""Rendering defaults that the web side reads too (this module imports nothing heavy)."""

# Sampling temperature of the four categorical heads: the interpretation's variety comes from z;
# sampling x at 1 adds note-to-note noise that pianists do not make. 0.6 was chosen on the val works
# (ml/MODEL_CARD.md, "Evaluation"): closer to the pianists than 1, with a variety ratio still near 1.
DEFAULT_TEMPERATURE = 0.6
