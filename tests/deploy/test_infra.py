"""Infra consistency (fast, no network): the app settings in infra/app/api.bicep are exactly
the ones the code reads, with the values of local.settings.sample.json; plus the security and
hosting properties of the Bicep files. Bicep syntax is checked with pycep-parser if installed.
"""

from __future__ import annotations

import json
import re
from dataclasses import fields
from pathlib import Path

import pytest

from jobs_api.runtime import ApiSettings
from jobs_core import JobsSettings
from jobs_core.model import RetryPolicy
from jobs_core.storage_settings import ENV_CONNECTION_STRING, StorageSettings

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
AZURITE_ONLY = {ENV_CONNECTION_STRING}
NAME = re.compile(r"\bJOBS_[A-Za-z0-9_]*[A-Za-z0-9]\b")


def code_settings() -> set[str]:
    """Every JOBS_* name in the code, plus those built from dataclass fields."""
    found: set[str] = set()
    for path in [ROOT / "function_app.py", *(ROOT / "jobs_core").rglob("*.py"),
                 *(ROOT / "jobs_api").rglob("*.py")]:
        found |= set(NAME.findall(path.read_text()))
    found |= {f"JOBS_{f.name.upper()}" for f in fields(JobsSettings) if f.name != "retry"}
    found |= {f"JOBS_RETRY_{f.name.upper()}" for f in fields(RetryPolicy)}
    assert {f.name for f in fields(ApiSettings)} and {f.name for f in fields(StorageSettings)}
    return found


def bicep_app_settings() -> dict[str, str]:
    """``var appSettings = {...}`` of api.bicep: name -> value (literal text or expression)."""
    text = (INFRA / "app" / "api.bicep").read_text()
    block = re.search(r"^var appSettings = \{\n(.*?)^\}", text, re.S | re.M)
    assert block, "api.bicep has no `var appSettings = {` block"
    out = {}
    for line in block.group(1).splitlines():
        m = re.match(r"\s+'?([A-Za-z_][A-Za-z0-9_]*)'?\s*:\s*(.+?)\s*$", line)
        if m:
            value = m.group(2)
            out[m.group(1)] = value[1:-1] if re.fullmatch(r"'[^']*'", value) else value
    return out


def sample_settings() -> dict[str, str]:
    return json.loads((ROOT / "local.settings.sample.json").read_text())["Values"]


def test_every_setting_the_code_reads_is_deployed_and_in_the_sample() -> None:
    code = code_settings()
    # the scan finds what the three from_env() read (sanity: a few known names)
    assert {"JOBS_SLOTS", "JOBS_RETRY_JITTER", "JOBS_TASK_HUB", "JOBS_MAX_BATCH_BODY_BYTES",
            "JOBS_STORAGE__blobServiceUri", "JOBS_STORAGE__clientId", "JOBS_CONTAINER",
            "JOBS_KEEPER_SCHEDULE"} <= code
    bicep = {k for k in bicep_app_settings() if k.startswith("JOBS_")}
    sample = {k for k in sample_settings() if k.startswith("JOBS_")}
    identity_only = {"JOBS_STORAGE__blobServiceUri", "JOBS_STORAGE__clientId",
                     "JOBS_STORAGE__queueServiceUri"}
    assert code - AZURITE_ONLY == bicep, (code - bicep, bicep - code)
    assert code - identity_only == sample, (code - sample, sample - code)
    assert not AZURITE_ONLY & bicep, "the Azurite connection string must not be set in Azure"


def test_deployed_values_match_the_sample() -> None:
    bicep, sample = bicep_app_settings(), sample_settings()
    from_params = {"JOBS_SLOTS", "JOBS_CONTAINER"}  # bicep parameters (same defaults)
    for name, value in bicep.items():
        if name.startswith("JOBS_") and name in sample and name not in from_params:
            assert value == sample[name], (name, value, sample[name])
    main = (INFRA / "main.bicep").read_text()
    assert f"param jobsSlots int = {sample['JOBS_SLOTS']}" in main
    assert f"param jobsContainerName string = '{sample['JOBS_CONTAINER']}'" in main
    hub = json.loads((ROOT / "host.json").read_text())["extensions"]["durableTask"]["hubName"]
    assert bicep["JOBS_TASK_HUB"] == hub == sample["JOBS_TASK_HUB"]


def test_identity_based_host_and_telemetry_settings() -> None:
    s = bicep_app_settings()
    assert s["AzureWebJobsStorage__credential"] == "managedidentity"
    assert s["AzureWebJobsStorage__clientId"] == "identityClientId"
    for kind in ("blob", "queue", "table"):  # Durable Functions needs all three
        assert s[f"AzureWebJobsStorage__{kind}ServiceUri"] == f"storage{kind.title()}Endpoint"
    assert s["JOBS_STORAGE__blobServiceUri"] == "storageBlobEndpoint"
    assert s["JOBS_STORAGE__clientId"] == "identityClientId"
    assert s["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"] == (
        "ClientId=${identityClientId};Authorization=AAD")
    assert "APPLICATIONINSIGHTS_CONNECTION_STRING" in s
    # no secrets, nothing Flex Consumption rejects
    for banned in ("AzureWebJobsStorage", "FUNCTIONS_WORKER_RUNTIME",
                   "FUNCTIONS_EXTENSION_VERSION", "APPINSIGHTS_INSTRUMENTATIONKEY",
                   "WEBSITE_RUN_FROM_PACKAGE", ENV_CONNECTION_STRING):
        assert banned not in s, banned


def test_hosting_storage_and_roles() -> None:
    api = (INFRA / "app" / "api.bicep").read_text()
    storage = (INFRA / "app" / "storage.bicep").read_text()
    rbac = (INFRA / "app" / "rbac.bicep").read_text()
    monitoring = (INFRA / "app" / "monitoring.bicep").read_text()
    main = (INFRA / "main.bicep").read_text()
    assert "tier: 'FlexConsumption'" in api and "name: 'FC1'" in api
    # the slots' orchestrators and the HTTP API stay warm (no cold start before a cycle)
    ready = re.search(r"alwaysReady: \[(.*?)\]", api, re.S)
    assert ready and set(re.findall(r"name: '(\w+)'", ready.group(1))) == {"durable", "http"}
    assert re.search(r"name: 'python'\s+version: '3.11'", api)
    assert "type: 'UserAssigned'" in api and "'azd-service-name': serviceName" in api
    # publishing takes an Entra token only: no basic-auth credentials on FTP or SCM
    assert "ftpsState: 'Disabled'" in api and "httpsOnly: true" in api
    policies = re.findall(r"resource \w+ 'basicPublishingCredentialsPolicies' = \{\s+"
                          r"name: '(\w+)'\s+properties: \{ allow: false \}", api)
    assert sorted(policies) == ["ftp", "scm"]
    for prop in ("allowSharedKeyAccess: false", "allowBlobPublicAccess: false",
                 "minimumTlsVersion: 'TLS1_2'", "supportsHttpsTrafficOnly: true"):
        assert prop in storage, prop
    assert "containerNames: [deploymentContainerName, jobsContainerName]" in main
    assert "DisableLocalAuth: true" in monitoring
    roles = {  # built-in role definition ids
        "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",  # Storage Blob Data Owner
        "974c5e8b-45b9-4653-ba55-5f855dd0fb88",  # Storage Queue Data Contributor
        "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",  # Storage Table Data Contributor
        "3913510d-42f4-4e42-8a64-420c390055eb",  # Monitoring Metrics Publisher
    }
    assert set(re.findall(r"'([0-9a-f]{8}-[0-9a-f-]{27})'", rbac)) == roles
    assert "targetScope = 'subscription'" in main
    for out in ("AZURE_FUNCTION_APP_NAME", "AZURE_FUNCTION_APP_URL", "AZURE_RESOURCE_GROUP"):
        assert f"output {out} string" in main
    azure_yaml = (ROOT / "azure.yaml").read_text()
    assert re.search(r"api:\s+project: \.\s+language: python\s+host: function", azure_yaml)
    params = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    declared = set(re.findall(r"^param (\w+)", main, re.M))
    assert set(params) <= declared


def test_modules_and_abbreviations_resolve() -> None:
    main = (INFRA / "main.bicep").read_text()
    for module in re.findall(r"^module \w+ '([^']+)'", main, re.M):
        assert (INFRA / module).is_file(), module
    abbrs = json.loads((INFRA / "abbreviations.json").read_text())
    for key in re.findall(r"abbrs\.(\w+)", main):
        assert key in abbrs, key


@pytest.mark.parametrize("path", sorted(p.relative_to(INFRA).as_posix()
                                        for p in INFRA.rglob("*.bicep")))
def test_bicep_parses(path: str) -> None:
    pycep = pytest.importorskip("pycep", reason="pycep-parser not installed (Bicep syntax)")
    pycep.BicepParser().parse(text=(INFRA / path).read_text())


def test_default_credential_uses_the_user_assigned_identity() -> None:
    """The app has a user-assigned identity only. ``DefaultAzureCredential`` (the built-in
    ``http`` handler's ``audience`` tokens, jobs_core/http_handler.py) asks for the
    system-assigned identity unless ``AZURE_CLIENT_ID`` names one: without it every such job
    fails in Azure."""
    api = (INFRA / "app" / "api.bicep").read_text()
    identity = re.search(r"identity: \{\s+type: '(\w+)'", api)
    assert identity and identity.group(1) == "UserAssigned"
    assert bicep_app_settings().get("AZURE_CLIENT_ID") == "identityClientId"


def _timespan_seconds(value: str) -> float:
    if value.strip() == "-1":
        return float("inf")
    m = re.fullmatch(r"(?:(\d+)\.)?(\d{1,2}):(\d{2}):(\d{2})", value.strip())
    assert m, f"not a TimeSpan: {value!r}"
    days, hours, minutes, seconds = (int(g or 0) for g in m.groups())
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


@pytest.mark.parametrize("host_json", ["host.json", "examples/own_app/host.json"])
def test_function_timeout_fits_the_longest_attempt(host_json: str) -> None:
    """``execute_batch`` awaits its jobs: one attempt may take ``timeout_seconds`` (up to
    MAX_TIMEOUT_SECONDS) plus as long again for its compensation. A ``functionTimeout`` below
    that makes the host restart the Python worker mid-batch, killing every invocation in it
    (and the job is retried into the same wall)."""
    from jobs_core.limits import MAX_TIMEOUT_SECONDS

    timeout = json.loads((ROOT / host_json).read_text()).get("functionTimeout", "00:30:00")
    longest_attempt = 2 * MAX_TIMEOUT_SECONDS + JobsSettings().abandon_grace_seconds
    assert _timespan_seconds(timeout) >= longest_attempt, (host_json, timeout)


def test_principal_type_reaches_the_template() -> None:
    """azd fills parameters only from main.parameters.json: without a principalType entry a
    service principal's `azd up` (CI) assigns its roles as 'User' and fails
    (UnmatchedPrincipalType). The README's `az deployment` command overrides every azd
    placeholder, or the literal `${...}` text reaches the template."""
    params = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert params.get("principalType", {}).get("value") == "${AZURE_PRINCIPAL_TYPE=User}"
    readme = (ROOT / "README.md").read_text()
    command = re.search(r"az deployment sub create(?:[^\n]*\\\n)*[^\n]*", readme)
    assert command, "README has no `az deployment sub create` command"
    placeholders = {name for name, p in params.items() if "${" in str(p.get("value"))}
    overridden = set(re.findall(r"\b(\w+)=", command.group(0)))
    assert placeholders <= overridden, placeholders - overridden
