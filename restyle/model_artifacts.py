"""Model artifacts as the Function App reads them, whatever wrote their URI.

The registry records where each model's pickle is: a file:// URI from a local run (the folder
under settings.models_root), or an Azure ML datastore URI (azureml://datastores/<name>/paths/<path>)
from the pipeline's publish step, whose datastore is the data account's work container. Both are
read here, the second with the app's own storage identity: no Azure ML call on a request.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

from .storage import BlobStore

DATASTORE_PREFIX = "azureml://datastores/"


class AppArtifacts:
    """Read-only: runs register models, the app only serves them."""

    def __init__(self, store: BlobStore) -> None:
        self.store = store

    def get(self, uri: str) -> bytes:
        if uri.startswith(DATASTORE_PREFIX):
            datastore, _, path = uri[len(DATASTORE_PREFIX):].partition("/paths/")
            if datastore != self.store.settings.aml_datastore or not path:
                raise ValueError(f"{uri} is not on the work datastore {self.store.settings.aml_datastore!r}")
            return self.store.read_bytes(self.store.settings.work_container, path)
        parsed = urlparse(uri)
        if parsed.scheme == "file":
            return Path(unquote(parsed.path)).read_bytes()
        raise ValueError(f"unsupported model artifact URI {uri!r}")
