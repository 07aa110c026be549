"""Rendering defaults that the web side reads too (this module imports nothing heavy)."""

# Sampling temperature of the four categorical heads: the interpretation's variety comes from z;
# sampling x at 1 adds note-to-note noise that pianists do not make (ml/MODEL_CARD.md, "Evaluation").
DEFAULT_TEMPERATURE = 1.0
