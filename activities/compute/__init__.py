"""Compute backends for both pipelines' jobs (the video scoring job, the many-models training run):
the backend interface, the local backend and its detached runs, Azure ML jobs, and the attempts'
submit / poll / cancel. Imports the shared modules of activities/, restyle/, scoring_job/ and
forecast_job/, never media/ or many_models/."""
