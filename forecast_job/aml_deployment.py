"""The managed online endpoint that serves real-time forecasts in Azure ML, as an SDK spec.

    python -m forecast_job.aml_deployment --subscription S --resource-group G --workspace W \
        --storage-account-url https://<account>.blob.core.windows.net --identity-resource-id <id> \
        --identity-client-id <client id> [--endpoint restyle-forecast] [--instance-type Standard_DS3_v2]

The endpoint's deployment runs forecast_job/online.py (through online_entry.py) with the forecast
environment and reads each dataset's production map and the model bundles from the data account's
work container with a user-assigned identity (the CPU cluster's, which has Storage Blob Data
Contributor there: infra/app/rbac.bicep), so it needs no model asset and no datastore mount: a run
published after the deployment is served as soon as its map is written. `endpoint_specs` builds
both objects offline (tests/test_forecast_azureml.py asserts what they serialize to); `main`
creates or updates them.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .azureml import code_snapshot

ENTRY_SCRIPT = "forecast_job/online_entry.py"
DEPLOYMENT = "maps"


@dataclass(frozen=True)
class EndpointOptions:
    endpoint: str = "restyle-forecast"
    environment: str = "restyle-forecast@latest"
    instance_type: str = "Standard_DS3_v2"
    instance_count: int = 1
    storage_account_url: str = ""
    container: str = "work"
    datastore: str = "work"
    identity_resource_id: str = ""
    identity_client_id: str = ""
    cache_bytes: int = 128 * 1024**2
    map_refresh_seconds: float = 1.0


def endpoint_specs(options: EndpointOptions, code_root: Path):
    """(ManagedOnlineEndpoint, ManagedOnlineDeployment) for `options`, the code under `code_root`."""
    from azure.ai.ml.entities import (
        CodeConfiguration,
        IdentityConfiguration,
        ManagedIdentityConfiguration,
        ManagedOnlineDeployment,
        ManagedOnlineEndpoint,
        OnlineRequestSettings,
    )

    identity = IdentityConfiguration(type="user_assigned", user_assigned_identities=[
        ManagedIdentityConfiguration(resource_id=options.identity_resource_id)])
    endpoint = ManagedOnlineEndpoint(name=options.endpoint, auth_mode="aml_token", identity=identity,
                                     description="Restyle many models: real-time forecasts from production maps")
    deployment = ManagedOnlineDeployment(
        name=DEPLOYMENT, endpoint_name=options.endpoint,
        code_configuration=CodeConfiguration(code=str(code_root), scoring_script=ENTRY_SCRIPT),
        environment=options.environment, instance_type=options.instance_type, instance_count=options.instance_count,
        request_settings=OnlineRequestSettings(request_timeout_ms=10_000, max_concurrent_requests_per_instance=4),
        environment_variables={
            "FORECAST_STORAGE_ACCOUNT_URL": options.storage_account_url, "FORECAST_CONTAINER": options.container,
            "FORECAST_DATASTORE": options.datastore, "AZURE_CLIENT_ID": options.identity_client_id,
            "FORECAST_CACHE_BYTES": str(options.cache_bytes),
            "FORECAST_MAP_REFRESH_SECONDS": f"{options.map_refresh_seconds:g}"})
    return endpoint, deployment


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("subscription", "resource-group", "workspace", "storage-account-url", "identity-resource-id",
                 "identity-client-id"):
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--endpoint", default=EndpointOptions.endpoint)
    parser.add_argument("--environment", default=EndpointOptions.environment)
    parser.add_argument("--instance-type", default=EndpointOptions.instance_type)
    parser.add_argument("--instance-count", type=int, default=EndpointOptions.instance_count)
    args = parser.parse_args(argv)
    from azure.ai.ml import MLClient
    from azure.identity import DefaultAzureCredential

    options = EndpointOptions(args.endpoint, args.environment, args.instance_type, args.instance_count,
                              args.storage_account_url, identity_resource_id=args.identity_resource_id,
                              identity_client_id=args.identity_client_id)
    client = MLClient(DefaultAzureCredential(), args.subscription, args.resource_group, args.workspace)
    with tempfile.TemporaryDirectory(prefix="endpoint-code-") as folder:
        endpoint, deployment = endpoint_specs(options, code_snapshot(Path(folder)))
        client.online_endpoints.begin_create_or_update(endpoint).result()
        client.online_deployments.begin_create_or_update(deployment).result()
    endpoint.traffic = {DEPLOYMENT: 100}
    client.online_endpoints.begin_create_or_update(endpoint).result()
    print(f"endpoint {args.endpoint}: deployment {DEPLOYMENT} serving 100%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
