"""The many-models pipeline's activities: validate an uploaded table, run it locally, collect results."""
