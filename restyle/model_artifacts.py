"""Model artifacts as the Function App reads them, whatever wrote their URI.

The registry records where each model's pickle is: a file:// URI from a local run (the folder
under settings.models_root), or an Azure ML datastore URI (azureml://datastores/<name>/paths/<path>)
from the pipeline's publish step, whose datastore is the data account's work container. Both are
read here, the second with the app's own storage identity: no Azure ML call on a request.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

from forecast_job.registry import read_file_range, split_range

from .storage import BlobStore

DATASTORE_PREFIX = "azureml://datastores/"


class AppArtifacts:
    """Read-only: runs register models, the app only serves them."""

    def __init__(self, store: BlobStore) -> None:
        self.store = store

    def get(self, uri: str) -> bytes:
        """The bytes of `uri`, or of its `#bytes=` range only (one ranged GET in a run's bundle)."""
        uri, span = split_range(uri)
        if uri.startswith(DATASTORE_PREFIX):
            datastore, _, path = uri[len(DATASTORE_PREFIX):].partition("/paths/")
            if datastore != self.store.settings.aml_datastore or not path:
                raise ValueError(f"{uri} is not on the work datastore {self.store.settings.aml_datastore!r}")
            container = self.store.settings.work_container
            if span is None:
                return self.store.read_bytes(container, path)
            return self.store.read_range(container, path, *span)
        parsed = urlparse(uri)
        if parsed.scheme == "file":
            return read_file_range(Path(unquote(parsed.path)), span)
        raise ValueError(f"unsupported model artifact URI {uri!r}")
