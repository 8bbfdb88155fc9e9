"""``max_storage_bytes`` in the ``tenants`` variable: Terraform writes it as the
``maxStorageBytes`` integer the tenant registry reads (past 32 bits too)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from _terraform import MODULE, NOT_RUN
from test_tenants import _block, _value

from shared.adapters.firestore_tenants import tenant_from_document
from shared.models.tenant import TenantQuotas

SAMPLE = {"big": {"quotas": {"max_storage_bytes": 5_000_000_000, "max_workflows": 3}}}


def test_max_storage_bytes_reaches_the_tenant_document(tmp_path: Path) -> None:
    terraform = shutil.which("terraform")
    if terraform is None:
        NOT_RUN["terraform console (tenant storage quota)"] = "no terraform binary on PATH"
        pytest.skip("no terraform binary on PATH")
    probe = tmp_path / "probe"
    probe.mkdir()
    (probe / "main.tf").write_text(
        _block((MODULE / "variables.tf").read_text(), 'variable "tenants"')
        + "\n"
        + _block((MODULE / "tenants.tf").read_text(), "locals")
        + "\n"
    )
    (probe / "sample.tfvars.json").write_text(json.dumps({"tenants": SAMPLE}))
    env = {"TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1", "PATH": "/usr/bin:/bin"}
    subprocess.run(
        [terraform, "init", "-backend=false", "-input=false"],
        cwd=probe,
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    answer = subprocess.run(
        [terraform, "console", "-var-file=sample.tfvars.json"],
        cwd=probe,
        env=env,
        input="jsonencode(local.tenant_documents)\n",
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    fields = json.loads(json.loads(json.loads(answer.stdout.strip()))["big"])
    assert fields["quotas"]["mapValue"]["fields"]["maxStorageBytes"] == {
        "integerValue": "5000000000"
    }
    tenant = tenant_from_document("big", {k: _value(v) for k, v in fields.items()})
    assert tenant.quotas == TenantQuotas(max_storage_bytes=5_000_000_000, max_workflows=3)
