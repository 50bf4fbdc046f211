"""The video pipeline's media path: probe an upload, split it into segments, stitch the styled
segments back with every other stream, previews; and the manifest and results exchanged with the
scoring job. Imports the shared modules of activities/, restyle/ and scoring_job/ (torch-free)."""
