"""The ``tenants`` variable: Terraform writes each tenant as a Firestore document in the
shape the code's tenant registry reads. ``terraform console`` (offline: the check needs
no provider) evaluates ``local.tenant_documents`` of ``tenants.tf`` over sample tenants;
each document, decoded from Firestore's REST value format, must parse as ``Tenant``."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from _terraform import ENVIRONMENTS, MODULE, NOT_RUN, environment, module

from shared.adapters.firestore_tenants import TENANTS_COLLECTION, tenant_from_document
from shared.models.tenant import Tenant, TenantQuotas

SAMPLE = {
    "acme": {
        "display_name": "Acme Corp.",
        "quotas": {
            "max_running_executions": 50,
            "max_queued_executions": 1000,
            "steps_per_second": 20.5,
            "steps_burst": 40,
            "max_workflows": 200,
            "max_definition_bytes": 262144,
        },
    },
    "beta-team": {"disabled": True},
}


def _block(text: str, header: str) -> str:
    """The block of ``text`` that starts with ``header`` (braces balanced)."""
    start = text.index(header)
    depth = 0
    for index in range(text.index("{", start), len(text)):
        depth += {"{": 1, "}": -1}.get(text[index], 0)
        if depth == 0:
            return text[start : index + 1]
    raise AssertionError(f"unbalanced block {header}")


def _value(field: dict[str, Any]) -> Any:
    """A Python value from Firestore's REST ``Value`` (what google_firestore_document takes)."""
    ((kind, raw),) = field.items()
    if kind == "mapValue":
        return {name: _value(inner) for name, inner in raw.get("fields", {}).items()}
    if kind == "integerValue":
        assert isinstance(raw, str) and re.fullmatch(r"-?\d+", raw), raw
        return int(raw)
    assert kind in {"stringValue", "booleanValue", "doubleValue"}, kind
    return raw


def _documents(tmp_path: Path) -> dict[str, dict[str, Any]]:
    terraform = shutil.which("terraform")
    if terraform is None:
        NOT_RUN["terraform console (tenants)"] = "no terraform binary on PATH"
        pytest.skip("no terraform binary on PATH")
    variables = (MODULE / "variables.tf").read_text()
    tenants_tf = (MODULE / "tenants.tf").read_text()
    probe = tmp_path / "probe"
    probe.mkdir()
    (probe / "main.tf").write_text(
        _block(variables, 'variable "tenants"') + "\n" + _block(tenants_tf, "locals") + "\n"
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
    encoded: dict[str, str] = json.loads(json.loads(answer.stdout.strip()))
    return {tenant_id: json.loads(fields) for tenant_id, fields in encoded.items()}


def test_terraform_tenant_documents_parse_as_the_tenant_model(tmp_path: Path) -> None:
    documents = _documents(tmp_path)
    tenants = {
        tenant_id: tenant_from_document(tenant_id, {k: _value(v) for k, v in fields.items()})
        for tenant_id, fields in documents.items()
    }
    assert tenants["acme"] == Tenant(
        id="acme",
        display_name="Acme Corp.",
        quotas=TenantQuotas(
            max_running_executions=50,
            max_queued_executions=1000,
            steps_per_second=20.5,
            steps_burst=40,
            max_workflows=200,
            max_definition_bytes=262144,
        ),
    )
    assert tenants["beta-team"] == Tenant(id="beta-team", disabled=True)


def test_the_documents_go_where_the_registry_reads_them() -> None:
    resource = module().resource("google_firestore_document", "tenant")
    assert resource["collection"] == TENANTS_COLLECTION
    assert resource["document_id"] == "${each.key}"
    assert resource["database"] == "${google_firestore_database.main.name}"
    assert module().resource_files[("google_firestore_document", "tenant")] == "tenants.tf"


def test_tenant_ids_are_validated_like_the_model() -> None:
    condition = str(module().variables["tenants"]["validation"])
    pattern = re.search(r'regex\(\\?"([^"\\]+)\\?"', condition)
    assert pattern is not None, condition
    for good in ("acme", "a", "acme-prod-2"):
        assert re.fullmatch(pattern.group(1), good)
    for bad in ("Acme", "-a", "a-", "a_b", "a" * 64, "../x"):
        assert not re.fullmatch(pattern.group(1), bad)


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_every_environment_passes_its_tenants(env: str) -> None:
    call = environment(env).modules["workflow_engine"]
    assert call["tenants"] == "${var.tenants}"
