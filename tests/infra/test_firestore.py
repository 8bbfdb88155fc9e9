"""The Firestore database Terraform declares serves the store's queries and is protected
where it matters (checks checkov has no rule for)."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from _terraform import ENVIRONMENTS, MODULE, ROOT, module, optional_defaults, tfvars

INDEXES = ROOT / "infra" / "firestore" / "indexes.json"
ADAPTER_INDEX_TEST = ROOT / "tests" / "contract" / "test_firestore_indexes.py"


def indexes_path_in_terraform() -> Path:
    expression = module().locals["firestore_indexes"]
    match = re.fullmatch(r'\$\{jsondecode\(file\("\$\{path\.module\}/([^"]+)"\)\)\}', expression)
    assert match, expression
    return (MODULE / match.group(1)).resolve()


def composite_key(index: dict[str, Any]) -> str:
    """The for_each key firestore.tf gives an index (mirrors local.firestore_composites)."""
    fields = ",".join(field["fieldPath"] for field in index["fields"])
    return f"{index['collectionGroup']}:{index['queryScope']}:{fields}"


def terraform_indexes() -> list[dict[str, Any]]:
    """The composite indexes ``terraform apply`` creates: one per distinct key."""
    document = json.loads(indexes_path_in_terraform().read_text())
    return list({composite_key(index): index for index in document["indexes"]}.values())


def adapter_index_test() -> ModuleType:
    """The store's own index test (it derives each query's index from its protobuf)."""
    spec = importlib.util.spec_from_file_location("_adapter_index_test", ADAPTER_INDEX_TEST)
    assert spec is not None and spec.loader is not None
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return loaded


def test_terraform_reads_the_index_file_the_store_is_tested_against() -> None:
    assert indexes_path_in_terraform() == INDEXES.resolve()
    locals_ = module().locals
    assert "local.firestore_indexes.indexes" in locals_["firestore_composites"]
    assert "local.firestore_indexes.fieldOverrides" in locals_["firestore_fields"]
    index = module().resource("google_firestore_index", "composite")
    assert index["for_each"] == "${local.firestore_composites}"
    assert index["collection"] == "${each.value.collectionGroup}"
    assert index["query_scope"] == "${each.value.queryScope}"
    field = module().resource("google_firestore_field", "override")
    assert field["for_each"] == "${local.firestore_fields}"


def test_every_declared_index_gets_its_own_terraform_resource() -> None:
    """Two indexes with one for_each key would make Terraform drop one of them."""
    declared = json.loads(INDEXES.read_text())["indexes"]
    assert len(terraform_indexes()) == len(declared)


def test_every_query_of_the_store_has_its_index_in_terraform() -> None:
    checks = adapter_index_test()
    deployed = [
        (
            index["collectionGroup"],
            index["queryScope"],
            tuple(
                (f["fieldPath"], f.get("order") or f["arrayConfig"])
                for f in index["fields"]
                if f["fieldPath"] != "__name__"
            ),
        )
        for index in terraform_indexes()
    ]
    needs = [need for need in map(checks.needed_index, checks.every_query()) if need]
    assert needs, "the store's queries were not found"
    missing = [n for n in needs if not any(checks.served_by(n, i) for i in deployed)]
    assert missing == []


def test_field_overrides_become_terraform_fields() -> None:
    document = json.loads(INDEXES.read_text())
    keys = {f"{o['collectionGroup']}.{o['fieldPath']}" for o in document["fieldOverrides"]}
    assert len(keys) == len(document["fieldOverrides"]), "one resource per field"
    field = module().resource("google_firestore_field", "override")
    assert field["index_config"][0]["dynamic"][0]["indexes"]["for_each"] == (
        "${each.value.indexes}"
    ), "an empty list turns the field's single-field indexes off"
    assert field["dynamic"][0]["ttl_config"]["for_each"] == "${each.value.ttl ? [1] : []}"


def test_ttl_policies_only_on_fields_the_store_writes() -> None:
    """The store writes no expiry field today, so no environment sets a TTL policy."""
    codec = (ROOT / "shared" / "adapters" / "_firestore_codec.py").read_text()
    for env in ENVIRONMENTS:
        ttl_fields = tfvars(env).get("firestore_config", {}).get("ttl_fields", {})
        for collection, field in ttl_fields.items():
            assert f'"{field}"' in codec, f"{env}: {collection}.{field} is never written"


def test_database_is_native_mode_with_protection_switches() -> None:
    database = module().resource("google_firestore_database", "main")
    assert database["type"] == "FIRESTORE_NATIVE"
    assert database["name"] == "${var.firestore_config.database_id}"
    assert "POINT_IN_TIME_RECOVERY_ENABLED" in database["point_in_time_recovery_enablement"]
    assert (
        "var.firestore_config.point_in_time_recovery"
        in (database["point_in_time_recovery_enablement"])
    )
    assert "DELETE_PROTECTION_ENABLED" in database["delete_protection_state"]
    assert "var.firestore_config.delete_protection" in database["delete_protection_state"]
    defaults = optional_defaults(module().variables["firestore_config"]["type"])
    assert defaults["point_in_time_recovery"] == "true"
    assert defaults["delete_protection"] == "true"


@pytest.mark.parametrize("env", ["staging", "prod"])
def test_shared_environments_protect_their_data(env: str) -> None:
    firestore = tfvars(env).get("firestore_config", {})
    assert firestore.get("point_in_time_recovery") is True, f"{env}: PITR explicitly on"
    assert firestore.get("delete_protection") is True, f"{env}: delete protection on"
    assert tfvars(env).get("deletion_protection", True) is True


def test_prod_keeps_backups() -> None:
    retention = tfvars("prod")["firestore_config"].get("backup_retention")
    assert retention and int(retention.removesuffix("s")) >= 7 * 86400
