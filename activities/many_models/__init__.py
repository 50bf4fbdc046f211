"""The many-models pipeline's table activities: validate an uploaded table, collect a run's results.
Imports the shared modules of activities/, compute/, restyle/ and forecast_job/, never media/."""
