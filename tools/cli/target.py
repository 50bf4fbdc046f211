"""Where the `restyle` command sends its requests: the jobs API (devhost locally, the Function App in
Azure) and the data account's blob storage (Azurite locally, the account URL with
DefaultAzureCredential in Azure). Every failure becomes one CliError sentence a person can act on.

Configuration comes from the environment, as the app's own settings do:
RESTYLE_API_URL (default http://127.0.0.1:7071), RESTYLE_FUNCTION_KEY (the app's machine key, sent as
`x-functions-key`; Azure only; never a flag, so it stays out of shell history), and the app's storage
settings (restyle/settings.py): RESTYLE_STORAGE_ACCOUNT_URL in Azure, else Azurite
(RESTYLE_STORAGE_CONNECTION_STRING or port 10000).
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from functools import cached_property

from azure.core.exceptions import AzureError, ClientAuthenticationError, HttpResponseError, ServiceRequestError

from restyle.settings import Settings
from restyle.storage import BlobStore

DEFAULT_API_URL = "http://127.0.0.1:7071"
AZURITE_ACCOUNT = "AccountName=devstoreaccount1;"


class CliError(Exception):
    """A failure to report as one line, with the exit status to end with."""

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class NotFound(CliError):
    """The API answered 404 (a job id it does not know, or not started yet)."""


@dataclass
class Api:
    """The jobs API over HTTP, with the machine key (if any) in the `x-functions-key` header."""

    url: str
    key: str | None = None
    timeout: float = 30.0

    def request(self, method: str, path: str, body: object = None) -> object:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Accept": "application/json", "Content-Type": "application/json"}
        if self.key:
            headers["x-functions-key"] = self.key
        request = urllib.request.Request(f"{self.url.rstrip('/')}/api/{path}", data=data, method=method,
                                         headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as error:
            raise self._refusal(error) from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            hint = "start it with `restyle up`" if self._local else "check RESTYLE_API_URL"
            raise CliError(f"cannot reach the Restyle API at {self.url} ({reason}); {hint}") from None
        return json.loads(raw) if raw else None

    @property
    def _local(self) -> bool:
        return urllib.parse.urlsplit(self.url).hostname in ("127.0.0.1", "localhost")

    def _refusal(self, error: urllib.error.HTTPError) -> CliError:
        try:
            message = json.loads(error.read())["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = f"{error.code} {error.reason}"
        if error.code == 401:
            return CliError(f"the API at {self.url} refused the request (401): set RESTYLE_FUNCTION_KEY to "
                            f"the app's machine key (docs/deploy.md, Sign-in): {message}")
        if error.code in (403, 429):
            return CliError(f"the API at {self.url} refused the request ({error.code}): {message}")
        if error.code == 404:
            return NotFound(message)
        return CliError(message)


@dataclass
class Target:
    api: Api
    settings: Settings = field(default_factory=Settings)

    @classmethod
    def from_environment(cls, api_url: str | None = None) -> Target:
        settings = Settings()
        if settings.storage_connection_string and AZURITE_ACCOUNT not in settings.storage_connection_string:
            raise CliError("RESTYLE_STORAGE_CONNECTION_STRING is for Azurite only; for Azure set "
                           "RESTYLE_STORAGE_ACCOUNT_URL and sign in with `az login` (no account keys)")
        url = api_url or os.environ.get("RESTYLE_API_URL") or DEFAULT_API_URL
        return cls(Api(url, os.environ.get("RESTYLE_FUNCTION_KEY") or None), settings)

    @cached_property
    def store(self) -> BlobStore:
        return BlobStore.from_settings(self.settings)

    @property
    def storage_name(self) -> str:
        return self.settings.storage_account_url or "Azurite at " + self.store.service.url


def storage_error(target: Target, error: AzureError) -> CliError:
    """A storage SDK failure as one sentence: unreachable, not signed in, or refused."""
    where = target.storage_name
    if isinstance(error, ServiceRequestError):
        hint = "start it with `restyle up`" if target.settings.uses_connection_string else "check the account URL"
        return CliError(f"cannot reach blob storage ({where}); {hint}")
    status = getattr(error, "status_code", None)
    if isinstance(error, ClientAuthenticationError) and status is None:  # no token at all
        return CliError(f"cannot sign in to {where}: run `az login` ({str(error).splitlines()[0]})")
    if isinstance(error, HttpResponseError) and status in (401, 403):
        return CliError(f"{where} refused access ({error.error_code}): your identity needs the Storage Blob Data "
                        "Contributor role on the input container and Reader on output")
    return CliError(f"blob storage ({where}) failed: {str(error).splitlines()[0]}")
