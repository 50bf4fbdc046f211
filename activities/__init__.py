"""Durable activities of both pipelines, as plain functions the thin triggers in blueprint.py call.

Rooms, and what each may import (tests/test_layout.py holds these rules and that no module of
activities/ is part of an import cycle):
- `media/`: the video pipeline's media path (probe, split, stitch, the segment plan, stream
  handling, previews) and its hand-off to the scoring job (manifest, results). May import the
  shared modules here, restyle/ and scoring_job/'s torch-free parts; not compute/ or many_models/.
- `compute/`: where compute jobs of both pipelines run (the local backend's runs, Azure ML jobs,
  ranks) and the submit / poll / cancel of their attempts. May import the shared modules,
  restyle/, scoring_job/ and forecast_job/; not media/ or many_models/.
- `many_models/`: the many-models pipeline's table activities (validate an upload, collect a run's
  results). May import the shared modules, compute/, restyle/ and forecast_job/; not media/.
- At this level only what both pipelines share: blueprint.py (every activity trigger),
  work_layout.py (work/<job>/ names), rejection.py (rejected/ records), cleanup.py.
"""
