"""Scoring backends: where the scoring job runs (Azure ML, or local processes)."""
