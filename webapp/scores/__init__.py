"""Scores: upload parsing and preparation, engraving, services, selectors, views."""
