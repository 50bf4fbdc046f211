"""Durable activities (probe, split, stitch, scoring backends): filled by the media and Function App issues."""
