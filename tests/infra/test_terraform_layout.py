"""The Terraform's shape: formatted, module conventions, thin environment roots."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest
from _terraform import (
    ENVIRONMENTS,
    MODULE,
    NOT_RUN,
    ROOT,
    TERRAFORM,
    environment,
    module,
    optional_defaults,
    tfvars,
)

# Resource types by the file (family) that must declare them.
FAMILIES = {
    "functions.tf": {"google_cloud_run_v2_service"},
    "tasks.tf": {"google_cloud_tasks_queue"},
    "pubsub.tf": {"google_pubsub_topic", "google_pubsub_subscription"},
    "firestore.tf": {
        "google_firestore_database",
        "google_firestore_index",
        "google_firestore_field",
        "google_firestore_backup_schedule",
    },
    "iam.tf": {"google_service_account", "google_project_iam_custom_role"},
    "secrets.tf": {"google_secret_manager_secret"},
    "monitoring.tf": {"google_logging_metric", "google_monitoring_alert_policy"},
}


def test_terraform_fmt_check_passes() -> None:
    terraform = shutil.which("terraform")
    if terraform is None:
        NOT_RUN["terraform fmt"] = "no terraform binary on PATH"
        pytest.skip("NOT RUN: terraform fmt -check (no terraform binary on PATH)")
    env = {**os.environ, "CHECKPOINT_DISABLE": "1", "TF_IN_AUTOMATION": "1"}
    result = subprocess.run(
        [terraform, "fmt", "-check", "-recursive", "-diff", str(TERRAFORM)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_module_files_are_split_by_resource_family() -> None:
    files = module().resource_files
    for family, kinds in FAMILIES.items():
        assert (MODULE / family).exists(), family
        for (kind, name), path in files.items():
            if kind in kinds:
                assert path == family, f"{kind}.{name} belongs in {family}, not {path}"
    for (kind, name), path in files.items():
        if kind.endswith("_iam_member"):
            assert path == "iam.tf", f"{kind}.{name}: every grant lives in iam.tf"


def test_module_variables_are_sorted_documented_and_typed() -> None:
    config = module()
    assert list(config.variable_order) == sorted(config.variable_order)
    assert set(config.variable_order) == set(config.variables), "variables live in variables.tf"
    for name, body in config.variables.items():
        assert body.get("description"), f"variable {name} has no description"
        assert body.get("type"), f"variable {name} has no type"
    for name, body in config.variables.items():
        if name.endswith("_config"):
            assert "optional(" in body["type"], f"{name}: *_config attributes are optional()"
            assert "default" in body, f"{name}: a *_config object defaults to {{}}"


def test_module_validates_what_the_cloud_would_refuse_late() -> None:
    variables = module().variables
    for name in ("image", "name_prefix", "tasks_config", "pubsub_config", "services_config"):
        assert variables[name].get("validation"), f"{name} has no validation block"


def test_module_pins_its_provider() -> None:
    settings = [t for t in module().terraform if "required_providers" in t]
    assert settings, "versions.tf declares required_providers"
    google = settings[0]["required_providers"][0]["google"]
    assert google["source"] == "hashicorp/google"
    assert re.search(r">=\s*\d", google["version"]) and "<" in google["version"]


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_environment_root_is_thin(env: str) -> None:
    root = environment(env)
    assert list(root.modules) == ["workflow_engine"], "one module block"
    assert root.resources == {}, "no resources besides the module"
    call = root.modules["workflow_engine"]
    assert call["source"] == "../../modules/workflow_engine"
    inputs = {key for key in call if key != "source"}
    assert inputs <= set(module().variables), inputs - set(module().variables)
    required = {name for name, body in module().variables.items() if "default" not in body}
    assert required <= inputs, f"{env} does not pass {required - inputs}"
    for name, body in root.variables.items():
        assert body.get("description") and body.get("type"), f"{env}: variable {name}"


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_environment_has_its_own_gcs_backend(env: str) -> None:
    backends = [
        backend
        for settings in environment(env).terraform
        for backend in settings.get("backend", [])
    ]
    assert len(backends) == 1 and list(backends[0]) == ["gcs"]
    assert backends[0]["gcs"]["prefix"] == f"workflow-engine/{env}"


def test_environments_do_not_share_state() -> None:
    prefixes = set()
    for env in ENVIRONMENTS:
        for settings in environment(env).terraform:
            for backend in settings.get("backend", []):
                prefixes.add(backend["gcs"]["prefix"])
    assert len(prefixes) == len(ENVIRONMENTS)


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_tfvars_set_declared_variables_and_leave_the_image_to_the_pipeline(env: str) -> None:
    values = tfvars(env)
    declared = set(environment(env).variables)
    assert set(values) <= declared, set(values) - declared
    assert {"project_id", "region"} <= set(values)
    assert "image" not in values, "the pipeline passes the image digest (-var image=...)"


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_tfvars_config_attributes_exist_in_the_module(env: str) -> None:
    variables = module().variables
    for name, value in tfvars(env).items():
        if not name.endswith("_config") or name == "services_config":
            continue
        known = set(optional_defaults(variables[name]["type"])) | set(
            re.findall(r"(\w+)\s*=\s*optional\(", variables[name]["type"])
        )
        assert set(value) <= known, f"{env}: {name} has unknown {set(value) - known}"
    for service, overrides in tfvars(env).get("services_config", {}).items():
        assert service in module().locals["functions"], service
        known = set(re.findall(r"(\w+)\s*=\s*optional\(", variables["services_config"]["type"]))
        assert set(overrides) <= known, f"{env}: services_config.{service}"


def test_no_state_or_plan_files_are_committed() -> None:
    ignored = (ROOT / ".gitignore").read_text()
    assert ".terraform/" in ignored and "tfplan" in ignored
