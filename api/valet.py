"""Valet keys: short-lived SAS URLs for exactly one blob, so a browser moves video bytes straight to
and from storage and never through the Function App.

In Azure the SAS is a user-delegation SAS: signed with a key the app gets from storage with its own
managed identity (`get_user_delegation_key`), so there is no account key anywhere (shared keys are
off on the data account) and what the SAS allows is capped by the identity's roles.

Locally, Azurite does implement user-delegation keys, but only for OAuth callers, and it accepts
OAuth only over HTTPS with a certificate; a browser on the page would then have to trust a
self-signed certificate. So against Azurite (a connection string, which the app only ever uses
for Azurite) the same URL is signed as a service SAS with Azurite's published development key.
That branch is `_azurite_service_sas` and nothing else: the identity path never falls back to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from azure.storage.blob import BlobSasPermissions, generate_blob_sas

from restyle.storage import BlobStore

CLOCK_SKEW = timedelta(minutes=5)  # start a little in the past: the browser's and storage's clocks differ


@dataclass(frozen=True)
class ValetKey:
    url: str  # the blob's URL with the SAS as its query
    expires: datetime


def create_only_permission() -> BlobSasPermissions:
    """Create, nothing else: "write a new blob, snapshot a blob, or copy a blob to a new blob"
    (azure-storage-blob's BlobSasPermissions). Without write the service itself refuses to overwrite
    the blob, change its metadata, lease it or commit a block list to it, whatever the client sends
    (tests/test_valet_keys.py tries each against Azurite); no read, list or delete either."""
    return BlobSasPermissions(create=True)


def read_permission() -> BlobSasPermissions:
    return BlobSasPermissions(read=True)


def valet_key(store: BlobStore, container: str, name: str, permission: BlobSasPermissions,
              minutes: float) -> ValetKey:
    """A SAS URL for `container/name` only, valid for `minutes` (blocking: one storage call in Azure)."""
    now = datetime.now(UTC)
    start, expiry = now - CLOCK_SKEW, now + timedelta(minutes=minutes)
    blob = store.service.get_blob_client(container, name)
    if store.settings.uses_connection_string:
        token = _azurite_service_sas(store, container, name, permission, start, expiry)
    else:
        delegation = store.service.get_user_delegation_key(start, expiry)
        token = generate_blob_sas(store.service.account_name, container, name, user_delegation_key=delegation,
                                  permission=permission, start=start, expiry=expiry, protocol="https")
    return ValetKey(f"{blob.url}?{token}", expiry)


def _azurite_service_sas(store: BlobStore, container: str, name: str, permission: BlobSasPermissions,
                         start: datetime, expiry: datetime) -> str:
    """Azurite only (see the module docstring): signed with the emulator's public development key."""
    credential = store.service.credential
    return generate_blob_sas(store.service.account_name, container, name, account_key=credential.account_key,
                             permission=permission, start=start, expiry=expiry)
