"""The retention sweep in the cloud: a Cloud Scheduler job calls
``POST /api/v1/admin/retention:sweep`` on create with an OIDC token of its own account,
which create admits as a platform admin (and nothing else does); the retention settings
and a tenant's ``retention_days`` reach the code."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from _terraform import MODULE, NOT_RUN, block, module, optional_defaults
from annotated_types import Le
from test_tenants import _block, _value

from shared import ports
from shared.adapters.firestore_tenants import tenant_from_document
from shared.api.auth import id_token_principals
from shared.api.rest.admin import RETENTION_SWEEP
from shared.models.tenant import TenantQuotas
from shared.settings import EngineTuning, Settings

ACCOUNT = '${google_service_account.sa["retention"].email}'
CREATE = '${local.urls["create"]}'


def test_the_job_calls_the_sweep_route_on_create_as_the_retention_account() -> None:
    job = module().resource("google_cloud_scheduler_job", "retention")
    assert job["schedule"] == "${var.retention_config.schedule}"
    target = block(job, "http_target")
    assert target["http_method"] == "POST"
    assert target["uri"] == f"{CREATE}{RETENTION_SWEEP}"
    assert RETENTION_SWEEP == "/api/v1/admin/retention:sweep"
    token = block(target, "oidc_token")
    assert (token["service_account_email"], token["audience"]) == (ACCOUNT, CREATE)
    assert not str(job["name"]).startswith(ports.JOB_PREFIX)  # reconciled jobs: wfe-*
    assert "retention" in module().locals["service_accounts"]


def test_create_admits_the_retention_account_as_a_platform_admin_only() -> None:
    create = module().locals["service_env"]["create"]
    assert '[local.urls["create"]]' in create["WFE_ID_TOKEN_AUDIENCE"]
    assert "var.app_config.id_token_audiences" in create["WFE_ID_TOKEN_AUDIENCE"]
    principals = create["WFE_ID_TOKEN_PRINCIPALS"]
    assert f'"{ACCOUNT}:*:viewer"' in principals
    assert "var.app_config.id_token_principals" in principals
    # The entry as the code reads it: the account is a platform admin (tenant *), with no
    # role in any tenant; status-stream (no admin API) does not admit it.
    email = "wfe-retention@proj.iam.gserviceaccount.com"
    principal = id_token_principals([f"{email}:*:viewer"])[email]
    assert principal.platform_admin and principal.tenant == "*"
    stream = module().locals["service_env"]["status-stream"]
    assert "retention" not in stream["WFE_ID_TOKEN_PRINCIPALS"]
    assert create["WFE_EXECUTION_RETENTION_DAYS"] == (
        "${tostring(var.retention_config.execution_days)}"
    )
    assert create["WFE_AUDIT_RETENTION_DAYS"] == "${tostring(var.retention_config.audit_days)}"


def test_retention_config_defaults_and_bounds_are_the_settings() -> None:
    variable = module().variables["retention_config"]
    defaults = optional_defaults(variable["type"])
    engine = Settings.defaults().engine
    assert int(defaults["execution_days"]) == engine.execution_retention_days == 30
    assert int(defaults["audit_days"]) == engine.audit_retention_days == 365
    conditions = str(variable["validation"])
    for field, bound in (
        ("execution_days", "execution_retention_days"),
        ("audit_days", "audit_retention_days"),
    ):
        metadata = EngineTuning.model_fields[bound].metadata
        upper = next(m.le for m in metadata if isinstance(m, Le))
        assert f"var.retention_config.{field} <= {upper}" in conditions, (field, upper)
        assert f"var.retention_config.{field} >= 0" in conditions


def _console(tmp_path: Path, tenants: dict[str, object]) -> subprocess.CompletedProcess[str]:
    terraform = shutil.which("terraform")
    if terraform is None:
        NOT_RUN["terraform console (tenant retention_days)"] = "no terraform binary on PATH"
        pytest.skip("no terraform binary on PATH")
    probe = tmp_path / "probe"
    probe.mkdir(exist_ok=True)
    (probe / "main.tf").write_text(
        _block((MODULE / "variables.tf").read_text(), 'variable "tenants"')
        + "\n"
        + _block((MODULE / "tenants.tf").read_text(), "locals")
        + "\n"
    )
    (probe / "sample.tfvars.json").write_text(json.dumps({"tenants": tenants}))
    env = {"TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1", "PATH": "/usr/bin:/bin"}
    subprocess.run(
        [terraform, "init", "-backend=false", "-input=false"],
        cwd=probe,
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    return subprocess.run(
        [terraform, "console", "-var-file=sample.tfvars.json"],
        cwd=probe,
        env=env,
        input="jsonencode(local.tenant_documents)\n",
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_tenants_retention_days_reaches_its_document(tmp_path: Path) -> None:
    answer = _console(tmp_path, {"keep": {"quotas": {"retention_days": 90}}})
    assert answer.returncode == 0, answer.stderr
    fields = json.loads(json.loads(json.loads(answer.stdout.strip()))["keep"])
    assert fields["quotas"]["mapValue"]["fields"] == {"retentionDays": {"integerValue": "90"}}
    tenant = tenant_from_document("keep", {k: _value(v) for k, v in fields.items()})
    assert tenant.quotas == TenantQuotas(retention_days=90)


@pytest.mark.parametrize("days", [0, 3651])
def test_a_retention_days_the_model_refuses_fails_the_plan(tmp_path: Path, days: int) -> None:
    answer = _console(tmp_path, {"keep": {"quotas": {"retention_days": days}}})
    assert answer.returncode != 0
    assert "retention_days" in answer.stderr
