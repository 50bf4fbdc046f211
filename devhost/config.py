"""What devhost reads from the app folder, as the Functions host does: host.json and local.settings.json.

host.json gives the HTTP route prefix, the Durable task hub name, the activity concurrency and
`functionTimeout` (30 minutes when unset, the Flex Consumption and Premium default);
local.settings.json's `Values` become environment variables (ones already set win, as under
`func start`), so the app's settings and the blob trigger's connection resolve the same way.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from restyle.settings import AZURITE_CONNECTION_STRING, Settings

from .timespan import parse_timespan

DEVELOPMENT_STORAGE = "UseDevelopmentStorage=true"


class ConfigError(ValueError):
    """host.json, local.settings.json or a connection setting that devhost cannot use."""


@dataclass(frozen=True)
class HostConfig:
    route_prefix: str = "api"
    hub_name: str = "TestHubName"
    max_concurrent_activities: int = 10
    function_timeout: float | None = 30 * 60.0  # seconds; None: unbounded (`-1`)

    @classmethod
    def load(cls, folder: Path) -> HostConfig:
        path = folder / "host.json"
        if not path.exists():
            return cls()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise ConfigError(f"{path} is not valid JSON: {error}") from None
        try:
            timeout = parse_timespan(data["functionTimeout"]) if "functionTimeout" in data else cls.function_timeout
        except ValueError as error:
            raise ConfigError(f"{path}: functionTimeout: {error}") from None
        extensions = data.get("extensions", {})
        durable = extensions.get("durableTask", {})
        return cls(route_prefix=extensions.get("http", {}).get("routePrefix", cls.route_prefix).strip("/"),
                   hub_name=durable.get("hubName", cls.hub_name),
                   max_concurrent_activities=int(durable.get("maxConcurrentActivityFunctions",
                                                             cls.max_concurrent_activities)),
                   function_timeout=timeout)


def load_local_settings(path: Path) -> list[str]:
    """Put the file's Values into os.environ unless already set; returns the names it set."""
    if not path.exists():
        return []
    try:
        values = json.loads(path.read_text(encoding="utf-8")).get("Values", {})
    except json.JSONDecodeError as error:
        raise ConfigError(f"{path} is not valid JSON: {error}") from None
    applied = [name for name in values if name not in os.environ]
    for name in applied:
        os.environ[name] = str(values[name])
    return applied


def storage_connection(name: str) -> str:
    """A binding's `connection` as the host resolves it locally: a connection string in that setting.

    Unset, it falls back to the app's own storage (RESTYLE_STORAGE_CONNECTION_STRING, else Azurite),
    which is what the local settings would hold. Identity-based settings (`<name>__blobServiceUri`)
    need Azure; devhost says so instead of guessing.
    """
    for key in (name, f"AzureWebJobs{name}"):
        value = os.environ.get(key)
        if value:
            return AZURITE_CONNECTION_STRING if value.strip() == DEVELOPMENT_STORAGE else value
    if os.environ.get(f"{name}__blobServiceUri") or os.environ.get(f"{name}__serviceUri"):
        raise ConfigError(f"connection {name!r} is identity-based ({name}__blobServiceUri); devhost needs a "
                          f"connection string in the {name} setting (Azurite's, locally)")
    settings = Settings()
    if not settings.uses_connection_string:
        raise ConfigError(f"connection {name!r} is not set and the app uses {settings.storage_account_url} with "
                          "an identity; devhost needs a connection string (Azurite's, locally)")
    return settings.connection_string
