"""Held-out evaluation data from real recordings (see sources.py for the split by source)."""
