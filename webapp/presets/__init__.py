"""Presets: saved interpretations (the controls of a take) that can be applied to any score and shared."""
