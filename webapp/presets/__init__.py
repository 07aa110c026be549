"""Presets: saved interpretations (the controls of a take), applied to any score, shared by link."""
