"""Infrastructure checked offline: Bicep structure (pycep), checkov with our own checks, the app
settings the Bicep emits against the settings the code reads, the deployment package, the hooks.

checkov runs from its own virtual environment (.venv/checkov, made here on first use from
infra/requirements-checkov.txt): its pins would downgrade packages torch and the app need.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from functools import cache
from pathlib import Path

import pathspec
import pytest
import yaml
from pycep import BicepParser

from api.tickets import CORS_ALLOWED_HEADERS, CORS_METHODS
from restyle.settings import DATA_CONNECTION, Settings
from scoring_job.environment import NAME as SCORING_ENVIRONMENT
from scoring_job.environment import conda_specification

ROOT = Path(__file__).resolve().parents[1]
INFRA = ROOT / "infra"
BICEP_FILES = sorted(INFRA.rglob("*.bicep"))
HOOKS = sorted((INFRA / "hooks").glob("*.sh"))
CHECKOV_VENV = ROOT / ".venv" / "checkov"
CHECKOV_REQUIREMENTS = INFRA / "requirements-checkov.txt"
CUSTOM_CHECKS = ("CKV_RESTYLE_1", "CKV_RESTYLE_2", "CKV_RESTYLE_3")

# Settings fields Azure runs with at their code defaults (every other field is set by
# infra/app/appsettings.bicep). A new Settings field must be added there or here.
LEFT_AT_DEFAULT = {
    "storage_connection_string",  # Azurite only: Azure uses the account URL with the managed identity
    "default_style",  # product behaviour, the same wherever it runs
    "max_request_bytes",
    "valet_key_minutes",  # the jobs page's SAS lifetime, the same wherever it runs
    "max_duration_seconds",  # input limits, the same wherever it runs
    "max_pixels",
    "max_bytes",
    "segment_seconds",  # splitting policy; only the worker count depends on the cluster
    "segments_per_worker",
    "split_parallelism",
    "aml_experiment",
    "compute_max_attempts",  # orchestration policy (retries, deadline, polling)
    "compute_deadline_seconds",
    "poll_initial_seconds",
    "poll_max_seconds",
    "polls_per_history",
    "activity_retry_attempts",
    "activity_retry_seconds",
    "local_processes",  # local backend only
    "local_max_jobs",
    "keep_work_on_success",  # cleanup policy
    "keep_work_on_failure",
    "temp_root",  # the system temp folder is the right scratch place on Flex instances too
    "scratch_limit_mb",  # devhost only: in Azure the instance's own ~0.8 GB disk is the cap
    "max_table_bytes",  # many models: input limit, the same wherever it runs
    "model_registry",  # local runs' registry; in Azure the publish step registers into the workspace's MLflow
    "gate_metric",  # promotion rule: product policy, the same wherever it runs
    "gate_threshold",
    "local_forecast_workers",  # local backend only
    "forecast_cache_bytes",  # POST /api/forecast: serving policy, the same wherever it runs
    "forecast_warm_up",
    "forecast_map_refresh_seconds",
    "max_forecast_horizon",
    "max_forecast_batch",
}
# Read by the Functions host (host storage, telemetry) and azure-identity, not by our code.
HOST_SETTINGS = {
    "AzureWebJobsStorage__accountName",
    "AzureWebJobsStorage__credential",
    "AzureWebJobsStorage__clientId",
    "APPLICATIONINSIGHTS_CONNECTION_STRING",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
    "AZURE_CLIENT_ID",
}
# The blob trigger's identity-based connection (user-assigned identity: credential + clientId).
DATA_CONNECTION_SETTINGS = {f"{DATA_CONNECTION}__{part}" for part in
                            ("blobServiceUri", "queueServiceUri", "credential", "clientId")}

# Built-in roles that would let an identity change resources or grant access: never assigned.
PRIVILEGED_ROLES = {
    "8e3af657-a8ff-443c-a75c-2fe8c4bcb635": "Owner",
    "b24988ac-6180-42a0-ab88-20f7382dd24c": "Contributor",
    "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9": "User Access Administrator",
    "17d1049b-9a84-46fb-8f53-869881c3d3ab": "Storage Account Contributor",
}


# --- parsing helpers ---------------------------------------------------------------------------

@cache
def bicep(relative: str) -> dict:
    return BicepParser().parse(text=(INFRA / relative).read_text(encoding="utf-8"))


def resource(relative: str, symbol: str) -> dict:
    """A resource's body, with a loop or condition unwrapped."""
    config = bicep(relative)["resources"][symbol]["config"]
    while "config" in config and ("loop_type" in config or "condition" in config):
        config = config["config"]
    return config


def accessor(node) -> str:
    """`a.b.c` for pycep's nested property accessors, a plain name as itself."""
    if isinstance(node, str):
        return node
    assert node["operator"]["type"] == "property_accessor", node
    operands = node["operator"]["operands"]
    return f"{accessor(operands['operand_1'])}.{accessor(operands['operand_2'])}"


def emitted_app_settings() -> dict:
    settings = bicep("app/appsettings.bicep")["outputs"]["settings"]["value"]
    return {key.strip("'"): value for key, value in settings.items()}


# --- Bicep structure ---------------------------------------------------------------------------

@pytest.mark.parametrize("path", BICEP_FILES, ids=lambda p: str(p.relative_to(INFRA)))
def test_every_bicep_file_parses(path: Path) -> None:
    parsed = bicep(str(path.relative_to(INFRA)))
    assert parsed.get("resources") or parsed.get("modules") or parsed.get("outputs")


def test_every_storage_account_is_the_locked_down_module() -> None:
    owners = [path.relative_to(INFRA).as_posix() for path in BICEP_FILES
              for spec in bicep(str(path.relative_to(INFRA))).get("resources", {}).values()
              if spec["type"] == "Microsoft.Storage/storageAccounts" and not spec["existing"]]
    assert owners == ["app/storage.bicep"]
    account = resource("app/storage.bicep", "account")["properties"]
    assert account["allowSharedKeyAccess"] is False
    assert account["defaultToOAuthAuthentication"] is True
    assert account["allowBlobPublicAccess"] is False
    assert account["minimumTlsVersion"] == "TLS1_2"
    blobs = resource("app/storage.bicep", "blobService")["properties"]
    assert blobs["deleteRetentionPolicy"]["enabled"] is True
    assert blobs["containerDeleteRetentionPolicy"]["enabled"] is True


def test_only_the_data_account_lets_the_jobs_page_origin_in() -> None:
    main = bicep("main.bicep")
    data = main["modules"]["dataStorage"]["config"]["params"]
    assert main["modules"]["functionApp"]["config"]["params"]["name"] == "func-${token}"
    assert data["corsOrigins"] == ["https://func-${token}.azurewebsites.net"]  # that app's default host name
    assert "corsOrigins" not in main["modules"]["opsStorage"]["config"]["params"]
    rules = resource("app/storage.bicep", "blobService")["properties"]["cors"]["corsRules"]["operator"]["operands"]
    assert rules["condition"]["function"]["parameters"]["item_to_test"] == "corsOrigins" and rules["true_value"] == []
    [rule] = rules["false_value"]
    assert rule["allowedOrigins"] == "corsOrigins"  # never '*'
    assert rule["allowedMethods"] == list(CORS_METHODS) and "DELETE" not in CORS_METHODS
    # what the page's PUT sends, and nothing else (the same rule as on Azurite under `restyle up`)
    assert rule["allowedHeaders"] == list(CORS_ALLOWED_HEADERS)


def test_superseded_model_versions_are_deleted_by_a_lifecycle_rule() -> None:
    """Many models: bundles no production map points at are tagged by collect_results
    (activities/many_models/results.py, SUPERSEDED_TAG); the data account's policy deletes them."""
    from activities.many_models.results import MODELS_PREFIX, SUPERSEDED_TAG

    (rule,) = bicep("main.bicep")["modules"]["dataStorage"]["config"]["params"]["lifecycleRules"]
    filters = rule["definition"]["filters"]
    assert filters["prefixMatch"] == [f"${{containers.work}}/{MODELS_PREFIX}"]
    assert filters["blobIndexMatch"] == [{"name": SUPERSEDED_TAG, "op": "==", "value": "true"}]
    assert rule["definition"]["actions"]["baseBlob"]["delete"] == {
        "daysAfterModificationGreaterThan": "supersededModelDays"}
    policy = bicep("app/storage.bicep")["resources"]["lifecycle"]
    assert policy["type"] == "Microsoft.Storage/storageAccounts/managementPolicies"


def test_data_account_has_every_container_the_code_uses() -> None:
    main = bicep("main.bicep")
    containers = main["variables"]["containers"]["value"]
    assert containers == {key: Settings.model_fields[f"{key}_container"].default for key in containers}
    assert set(containers) == {name[: -len("_container")] for name in Settings.model_fields
                               if name.endswith("_container")}
    created = main["modules"]["dataStorage"]["config"]["params"]["containers"]
    assert sorted(accessor(item) for item in created) == sorted(f"containers.{key}" for key in containers)


def test_function_app_is_flex_consumption_python_with_identity_deployment() -> None:
    plan = resource("app/function.bicep", "plan")
    assert plan["sku"] == {"name": "FC1", "tier": "FlexConsumption"}
    assert plan["properties"]["reserved"] is True
    site = resource("app/function.bicep", "site")
    assert site["kind"] == "functionapp,linux"
    config = site["properties"]["functionAppConfig"]
    assert config["runtime"] == {"name": "python", "version": "3.11"}
    storage = config["deployment"]["storage"]
    assert storage["type"] == "blobContainer"
    assert storage["authentication"]["type"] == "UserAssignedIdentity"
    scale = config["scaleAndConcurrency"]
    parameters = bicep("app/function.bicep")["parameters"]
    assert {scale["instanceMemoryMB"], scale["maximumInstanceCount"]} <= set(parameters)


def test_people_sign_in_with_entra_id_in_front_of_the_page_and_the_api() -> None:
    """App Service Authentication (authsettingsV2) when an app registration is given; unauthenticated
    requests pass to the app, which refuses them itself (api/callers.py, RESTYLE_AUTH=required): machine
    keys and the Event Grid / Durable webhooks' system keys are no sign-in and must reach the host."""
    condition = bicep("app/function.bicep")["resources"]["auth"]["config"]["condition"]["operator"]
    assert condition["operands"]["bool_value"]["function"]["parameters"] == {"item_to_test": "authClientId"}
    auth = resource("app/function.bicep", "auth")
    assert auth["name"] == "authsettingsV2"
    settings = auth["properties"]
    assert settings["platform"]["enabled"] is True
    assert settings["globalValidation"] == {"requireAuthentication": False,
                                            "unauthenticatedClientAction": "AllowAnonymous"}
    assert settings["httpSettings"]["requireHttps"] is True
    entra = settings["identityProviders"]["azureActiveDirectory"]
    assert entra["enabled"] is True and accessor(entra["registration"]["clientId"]) == "authClientId"
    assert "clientSecretSettingName" not in entra["registration"]  # no secret anywhere: the implicit ID-token flow
    assert settings["login"]["tokenStore"]["enabled"] is False
    main = bicep("main.bicep")
    assert main["parameters"]["authClientId"]["default"] == ""
    assert accessor(main["modules"]["functionApp"]["config"]["params"]["authClientId"]) == "authClientId"
    assert emitted_app_settings()["RESTYLE_AUTH"] == "required"  # never open in Azure, sign-in or not
    parameters = json.loads((INFRA / "main.parameters.json").read_text(encoding="utf-8"))["parameters"]
    assert parameters["authClientId"]["value"] == "${AUTH_CLIENT_ID=}"
    assert parameters["apiKeySha256"]["value"] == "${API_KEY_SHA256=}"


def test_azure_ml_reaches_storage_by_identity() -> None:
    workspace = resource("app/ml.bicep", "workspace")["properties"]
    assert workspace["systemDatastoresAuthMode"] == "Identity"
    assert {"storageAccount", "keyVault", "containerRegistry"} <= set(workspace)
    datastore = resource("app/ml.bicep", "datastore")["properties"]
    assert datastore["credentials"] == {"credentialsType": "None"}
    assert resource("app/ml.bicep", "registry")["properties"]["adminUserEnabled"] is False
    cluster = resource("app/ml.bicep", "cluster")
    assert cluster["identity"]["type"] == "SystemAssigned"  # what ManagedIdentityConfiguration() uses
    main = bicep("main.bicep")
    assert main["parameters"]["amlDatastoreName"]["default"] == Settings.model_fields["aml_datastore"].default


def test_no_identity_gets_a_privileged_role() -> None:
    text = "\n".join(path.read_text(encoding="utf-8") for path in BICEP_FILES).lower()
    assert [name for role_id, name in PRIVILEGED_ROLES.items() if role_id in text] == []


def _grants(variable: str, principal: str) -> set[str]:
    rbac = bicep("app/rbac.bicep")["variables"]
    return {grant["roleId"]["operator"]["operands"]["operand_2"] for grant in rbac[variable]["value"]
            if grant["principalId"] == principal}


def test_the_event_grid_blob_trigger_gets_exactly_what_it_uses() -> None:
    """The Event Grid-source blob trigger (azure-sdk-for-net Microsoft.Azure.WebJobs.Extensions.Storage.Blobs):
    the webhook queues each event on the *host* account (BlobTriggerQueueWriterFactory: GetHost()),
    receipts live there too; on the data account it reads the blob and writes the poison queue
    (BlobListenerFactory: poisonQueueClient = the target account). Blob Data Owner adds only ACL and
    ownership rights of hierarchical-namespace accounts, which this one is not: Contributor (the
    app also writes work/, output/, rejected/) and Queue Data Contributor are exactly enough."""
    assert _grants("dataGrants", "appPrincipalId") == {"blobContributor", "queueContributor"}
    assert {"blobOwner", "queueContributor", "tableContributor"} <= _grants("opsGrants", "appPrincipalId")
    assert resource("app/storage.bicep", "account")["properties"].get("isHnsEnabled") in (None, False)


# --- app settings: what Bicep emits == what the code reads ------------------------------------

def test_app_settings_are_exactly_the_settings_the_code_reads() -> None:
    fields = set(Settings.model_fields)
    assert fields >= LEFT_AT_DEFAULT, f"not Settings fields (any more): {LEFT_AT_DEFAULT - fields}"
    expected = ({f"RESTYLE_{name.upper()}" for name in fields - LEFT_AT_DEFAULT}
                | HOST_SETTINGS | DATA_CONNECTION_SETTINGS)
    emitted = set(emitted_app_settings())
    assert emitted - expected == set(), "emitted but read by nothing (or decide: LEFT_AT_DEFAULT)"
    assert expected - emitted == set(), "read by the code but not set: set it in appsettings.bicep or list it"


def test_literal_app_settings_are_valid_settings() -> None:
    literals = {key.removeprefix("RESTYLE_").lower(): value for key, value in emitted_app_settings().items()
                if key.startswith("RESTYLE_") and isinstance(value, str)}
    settings = Settings(**literals)
    assert settings.compute_backend == "azureml"
    assert settings.blob_trigger_source == "EventGrid"  # the only blob trigger source Flex supports
    assert settings.auth == "required"


def test_app_settings_reach_the_function_app() -> None:
    params = bicep("main.bicep")["modules"]["functionApp"]["config"]["params"]
    assert accessor(params["appSettings"]) == "appSettings.outputs.settings"
    config = resource("app/function.bicep", "site__settings")
    assert (config["name"], config["properties"]) == ("appsettings", "appSettings")  # the whole parameter


def test_app_uses_the_environment_the_hook_registers() -> None:
    assert bicep("main.bicep")["variables"]["amlEnvironment"]["value"] == f"{SCORING_ENVIRONMENT}@latest"


# --- checkov -----------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def checkov() -> Path:
    """checkov's own venv: made once, remade when infra/requirements-checkov.txt changes."""
    stamp = CHECKOV_VENV / ".requirements"
    wanted = CHECKOV_REQUIREMENTS.read_text(encoding="utf-8")
    if not stamp.exists() or stamp.read_text(encoding="utf-8") != wanted:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(CHECKOV_VENV)], check=True)
        subprocess.run([str(CHECKOV_VENV / "bin" / "python"), "-m", "pip", "install", "--quiet",
                        "-r", str(CHECKOV_REQUIREMENTS)], check=True)
        stamp.write_text(wanted, encoding="utf-8")
    return CHECKOV_VENV / "bin" / "checkov"


def run_checkov(checkov: Path, folder: Path, *extra: str) -> dict:
    result = subprocess.run(
        [str(checkov), "-d", str(folder), "--framework", "bicep", "--skip-download", "-o", "json",
         "--external-checks-dir", str(INFRA / "checks"), *extra],
        capture_output=True, text=True, timeout=300,
    )
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"checkov gave no JSON (exit {result.returncode}): {result.stderr[-2000:]}")
    assert isinstance(report, dict) and report.get("check_type") == "bicep", report
    return report


@pytest.fixture(scope="session")
def infra_report(checkov: Path) -> dict:
    return run_checkov(checkov, INFRA)


def test_checkov_passes_with_every_file_parsed(infra_report: dict) -> None:
    summary = infra_report["summary"]
    assert summary["parsing_errors"] == 0  # checkov exits 0 on files it could not parse
    failed = [(r["check_id"], r["file_path"], r["resource"]) for r in infra_report["results"]["failed_checks"]]
    assert failed == []
    ran = {r["check_id"] for r in infra_report["results"]["passed_checks"]}
    assert set(CUSTOM_CHECKS) <= ran, "our own checks did not load"


def test_every_checkov_skip_is_justified_and_still_needed(infra_report: dict) -> None:
    comments = set()
    for path in BICEP_FILES:
        for line in path.read_text(encoding="utf-8").splitlines():
            if "checkov:skip" in line:
                match = re.fullmatch(r"\s*//checkov:skip=(CKV2?_[A-Z]+_\d+):(.{20,})", line)
                assert match, f"{path.name}: a skip needs an ID and a reason: {line.strip()}"
                comments.add((f"/{path.relative_to(INFRA).as_posix()}", match[1]))
    skipped = {(r["file_path"], r["check_id"]) for r in infra_report["results"]["skipped_checks"]}
    assert skipped == comments


BAD_SNIPPETS = {
    "shared_key_on.bicep": """
resource bad 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: 'bad'
  location: 'westeurope'
  kind: 'StorageV2'
  sku: { name: 'Standard_LRS' }
  properties: { allowSharedKeyAccess: true }
}
""",
    "shared_key_from_parameter.bicep": """
param allowKeys bool = false
resource bad 'Microsoft.Storage/storageAccounts@2023-05-01' = [for name in ['a', 'b']: {
  name: name
  location: 'westeurope'
  kind: 'StorageV2'
  sku: { name: 'Standard_LRS' }
  properties: { allowSharedKeyAccess: allowKeys }
}]
""",
    "cluster_keeps_a_node.bicep": """
resource bad 'Microsoft.MachineLearningServices/workspaces/computes@2025-06-01' = {
  name: 'ws/gpu'
  location: 'westeurope'
  properties: {
    computeType: 'AmlCompute'
    disableLocalAuth: true
    properties: {
      vmSize: 'Standard_NC4as_T4_v3'
      remoteLoginPortPublicAccess: 'Disabled'
      scaleSettings: { minNodeCount: 1, maxNodeCount: 2 }
    }
  }
}
""",
    "cluster_open_ssh.bicep": """
resource bad 'Microsoft.MachineLearningServices/workspaces/computes@2025-06-01' = {
  name: 'ws/gpu'
  location: 'westeurope'
  properties: {
    computeType: 'AmlCompute'
    disableLocalAuth: true
    properties: {
      vmSize: 'Standard_NC4as_T4_v3'
      remoteLoginPortPublicAccess: 'Enabled'
      scaleSettings: { minNodeCount: 0, maxNodeCount: 2 }
    }
  }
}
""",
}


@pytest.fixture(scope="session")
def bad_snippet_failures(checkov: Path, tmp_path_factory: pytest.TempPathFactory) -> set[tuple[str, str]]:
    folder = tmp_path_factory.mktemp("bad-bicep")
    for name, text in BAD_SNIPPETS.items():
        (folder / name).write_text(text, encoding="utf-8")
    report = run_checkov(checkov, folder, "--check", ",".join(CUSTOM_CHECKS))
    assert report["summary"]["parsing_errors"] == 0
    return {(r["file_path"].lstrip("/"), r["check_id"]) for r in report["results"]["failed_checks"]}


def test_warm_gpu_nodes_are_an_opt_in_that_defaults_to_none() -> None:
    """CKV_RESTYLE_2 lets the GPU cluster's minNodeCount be the gpuMinNodes parameter; its default,
    which checkov cannot see, must keep an idle deployment at zero nodes."""
    scale = resource("app/ml.bicep", "cluster")["properties"]["properties"]["scaleSettings"]
    assert scale["minNodeCount"] == "gpuMinNodes"
    assert bicep("app/ml.bicep")["parameters"]["gpuMinNodes"]["default"] == 0
    assert bicep("main.bicep")["parameters"]["gpuMinNodes"]["default"] == 0
    parameters = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert parameters["gpuMinNodes"]["value"] == "${GPU_MIN_NODES=0}"


@pytest.mark.parametrize(("snippet", "check_id"), [
    ("shared_key_on.bicep", "CKV_RESTYLE_1"),
    ("shared_key_from_parameter.bicep", "CKV_RESTYLE_1"),
    ("cluster_keeps_a_node.bicep", "CKV_RESTYLE_2"),
    ("cluster_open_ssh.bicep", "CKV_RESTYLE_3"),
])
def test_own_check_fails_on_a_bad_snippet(bad_snippet_failures: set, snippet: str, check_id: str) -> None:
    assert (snippet, check_id) in bad_snippet_failures
    assert {c for s, c in bad_snippet_failures if s == snippet} == {check_id}  # and nothing else fires


# --- deployment package ------------------------------------------------------------------------

def package_files() -> set[str]:
    """What `func azure functionapp publish` / azd upload: tracked files minus .funcignore."""
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    ignore = pathspec.GitIgnoreSpec.from_lines((ROOT / ".funcignore").read_text().splitlines())
    return {path for path in tracked.splitlines() if not ignore.match_file(path)}


def test_package_holds_the_app_and_nothing_else() -> None:
    files = package_files()
    assert {"function_app.py", "host.json", "requirements.txt"} <= files
    for package in ("orchestrators", "activities", "restyle", "scoring_job"):
        assert f"{package}/__init__.py" in files
    for folder in ("tests", "bench", "devhost", "infra", "docs"):
        assert not [path for path in files if path.startswith(f"{folder}/")], folder


def test_app_requirements_hold_no_torch() -> None:
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    names = {re.split(r"[<>=!~\[;\s]", line.strip(), maxsplit=1)[0].lower()
             for line in lines if line.strip() and not line.lstrip().startswith("#")}
    assert "azure-functions" in names
    assert "torch" not in names


# --- azd and hooks -----------------------------------------------------------------------------

def test_azd_project_deploys_the_repo_to_the_tagged_function_app() -> None:
    project = yaml.safe_load((ROOT / "azure.yaml").read_text())
    (service_name, service), = project["services"].items()
    assert service == {"project": ".", "language": "python", "host": "function", "remoteBuild": True}
    tags = resource("app/function.bicep", "site")["tags"]
    assert tags["function"]["parameters"]["arg_2"] == {"'azd-service-name'": service_name}
    for hook in project["hooks"]["postdeploy"].values():
        script = hook["run"].removeprefix("bash ")
        assert (ROOT / script).is_file(), script


@pytest.mark.parametrize("script", HOOKS, ids=lambda p: p.name)
def test_hook_is_valid_bash_and_reads_only_azd_outputs(script: Path) -> None:
    subprocess.run(["bash", "-n", str(script)], check=True)
    required = set(re.findall(r'^: "\$\{([A-Z0-9_]+):\?', script.read_text(), flags=re.MULTILINE))
    assert required <= set(bicep("main.bicep")["outputs"])


def test_environment_spec_is_scoring_job_environment(tmp_path: Path) -> None:
    def spec(name: str) -> tuple[list[str], dict]:
        out = subprocess.run([sys.executable, str(INFRA / "hooks" / "environment_spec.py"), str(tmp_path / name)],
                             capture_output=True, text=True, check=True).stdout.split()
        return out, json.loads((tmp_path / name).read_text())

    (name, image, version), conda = spec("a.yml")
    assert name == SCORING_ENVIRONMENT
    assert image.startswith("mcr.microsoft.com/azureml/openmpi")  # Azure ML's MPI launcher needs MPI
    assert conda == conda_specification()
    assert spec("b.yml")[0][2] == version  # same content, same version: re-registering is a no-op


def test_environment_spec_of_the_many_models_job(tmp_path: Path) -> None:
    from forecast_job import environment

    out = subprocess.run([sys.executable, str(INFRA / "hooks" / "environment_spec.py"), str(tmp_path / "c.yml"),
                          "forecast_job"], capture_output=True, text=True, check=True).stdout.split()
    assert out[0] + "@latest" == bicep("main.bicep")["variables"]["amlForecastEnvironment"]["value"]
    assert out[0] == environment.NAME and json.loads((tmp_path / "c.yml").read_text()) == (
        environment.conda_specification())


def test_events_go_to_the_apps_blob_triggers() -> None:
    from app_index import app_functions  # the Functions host's view of the app

    script = (INFRA / "hooks" / "subscribe-blob-events.sh").read_text()
    pairs = re.findall(r'"(\w+):\$(DATA_\w+_CONTAINER)"', script)
    outputs = bicep("main.bicep")["outputs"]
    containers = bicep("main.bicep")["variables"]["containers"]["value"]
    functions = app_functions()
    blob_triggers = {name for name, function in functions.items()
                     if any(b.type == "blobTrigger" for b in function.get_bindings())}
    assert {name for name, _ in pairs} == blob_triggers == {"on_video_uploaded", "on_table_uploaded"}
    for name, output in pairs:
        (trigger,) = [b.get_dict_repr() for b in functions[name].get_bindings() if b.type == "blobTrigger"]
        assert trigger["connection"] == DATA_CONNECTION
        container = accessor(outputs[output]["value"]).removeprefix("containers.")
        assert trigger["path"].split("/")[0] == containers[container]
