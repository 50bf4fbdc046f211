"""Shared helpers of the Function App: typed settings, blob storage, blob-name safety, temp files."""
