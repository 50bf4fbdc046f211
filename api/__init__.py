"""Starting and watching jobs: the blob trigger and the HTTP API, thin over plain functions."""
