"""cloudbuild.yaml (and the promotion pipeline) are well formed and run the Makefile's
targets, the same commands as .ci/run and a developer."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from _terraform import ENVIRONMENTS, ROOT, TERRAFORM

PIPELINES = [ROOT / "cloudbuild.yaml", ROOT / "infra" / "cloudbuild" / "deploy.yaml"]
BUILT_INS = {
    "PROJECT_ID",
    "PROJECT_NUMBER",
    "BUILD_ID",
    "LOCATION",
    "TRIGGER_NAME",
    "COMMIT_SHA",
    "SHORT_SHA",
    "REVISION_ID",
    "REPO_NAME",
    "REPO_FULL_NAME",
    "BRANCH_NAME",
    "TAG_NAME",
    "REF_NAME",
    "TRIGGER_BUILD_CONFIG_PATH",
    "SERVICE_ACCOUNT_EMAIL",
    "SERVICE_ACCOUNT",
}
"""Substitutions Cloud Build provides itself."""


def load(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text())
    assert isinstance(document, dict)
    return document


def used_substitutions(text: str) -> set[str]:
    """``$NAME`` and ``${NAME}`` references (``$$`` escapes a shell ``$``)."""
    pattern = r"\$\{([A-Z_][A-Z0-9_]*)\}|\$([A-Z_][A-Z0-9_]*)"
    return {braced or bare for braced, bare in re.findall(pattern, text.replace("$$", ""))}


def make_targets() -> set[str]:
    makefile = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([a-z][a-z-]*):", makefile, re.M))


def command(step: dict[str, Any]) -> str:
    return " ".join([step.get("entrypoint", ""), *map(str, step.get("args", []))]).strip()


@pytest.mark.parametrize("path", PIPELINES, ids=lambda p: p.name)
def test_every_step_has_a_unique_id_and_waits_for_known_steps(path: Path) -> None:
    steps = load(path)["steps"]
    ids = [step.get("id") for step in steps]
    assert all(ids), f"steps without an id: {[s.get('name') for s in steps if not s.get('id')]}"
    assert len(set(ids)) == len(ids)
    for step in steps:
        for dependency in step.get("waitFor", []):
            assert dependency == "-" or dependency in ids, (step["id"], dependency)


@pytest.mark.parametrize("path", PIPELINES, ids=lambda p: p.name)
def test_every_substitution_used_is_declared_and_every_declared_one_used(path: Path) -> None:
    document = load(path)
    declared = set(document.get("substitutions", {}))
    used = used_substitutions(
        yaml.safe_dump({k: v for k, v in document.items() if k != "substitutions"})
    )
    assert all(name.startswith("_") for name in declared), "user substitutions start with _"
    assert used - BUILT_INS <= declared, used - BUILT_INS - declared
    assert declared <= used, f"declared but unused: {declared - used}"


def test_the_test_step_runs_make_test_like_ci() -> None:
    steps = {step["id"]: step for step in load(ROOT / "cloudbuild.yaml")["steps"]}
    assert command(steps["test"]) == "make test"
    assert "CI=true" in steps["test"].get("env", [])
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    assert {"lint", "typecheck", "checkov", "bundle"} <= set(steps)
    for step_id in ("lint", "typecheck", "checkov", "bundle", "test"):
        assert command(steps[step_id]) == f"make {step_id}", step_id
        assert step_id in make_targets(), f"the Makefile has no {step_id} target"


def test_builder_image_has_python_3_11_and_the_emulators() -> None:
    steps = {step["id"]: step for step in load(ROOT / "cloudbuild.yaml")["steps"]}
    dockerfile_arg = steps["builder"]["args"][steps["builder"]["args"].index("-f") + 1]
    dockerfile = (ROOT / dockerfile_arg).read_text()
    assert re.search(r"^FROM python:3\.11", dockerfile, re.M)
    for package in ("make", "openjdk", "firestore-emulator", "pubsub-emulator"):
        assert package in dockerfile
    for step_id in ("lint", "typecheck", "test", "bundle"):
        assert steps[step_id]["name"] == "wfe-builder"


def test_image_is_pushed_and_deployed_by_digest() -> None:
    steps = {step["id"]: step for step in load(ROOT / "cloudbuild.yaml")["steps"]}
    push = " ".join(steps["image-push"]["args"])
    assert "docker push" in push and "RepoDigests" in push and "/workspace/image.txt" in push
    plan = " ".join(steps["tf-plan"]["args"])
    assert "image=$$(cat /workspace/image.txt)" in plan
    assert "image-push" in steps["tf-plan"]["waitFor"]
    assert "tf-plan" in steps["tf-apply"]["waitFor"]
    assert steps["tf-apply"]["args"][-1] == "tfplan", "apply exactly the reviewed plan"


@pytest.mark.parametrize("path", PIPELINES, ids=lambda p: p.name)
def test_terraform_steps_work_in_the_chosen_environment(path: Path) -> None:
    document = load(path)
    terraform_steps = [s for s in document["steps"] if s["id"].startswith("tf-")]
    assert [s["id"] for s in terraform_steps] == ["tf-init", "tf-plan", "tf-apply"]
    for step in terraform_steps:
        assert step["dir"] == "infra/terraform/environments/${_ENV}"
        assert step["name"] == "hashicorp/terraform:${_TERRAFORM_VERSION}"
    init = " ".join(terraform_steps[0]["args"])
    assert "-backend-config=bucket=${_TF_STATE_BUCKET}" in init
    assert document["substitutions"]["_ENV"] in ENVIRONMENTS
    for env in ENVIRONMENTS:
        assert (TERRAFORM / "environments" / env).is_dir()
    version = str(document["substitutions"]["_TERRAFORM_VERSION"]).split(".")
    assert (int(version[0]), int(version[1])) >= (1, 7), "required_version >= 1.7"


def test_promotion_takes_a_digest_not_a_tag() -> None:
    document = load(ROOT / "infra" / "cloudbuild" / "deploy.yaml")
    steps = {step["id"]: step for step in document["steps"]}
    assert "*@sha256:*" in steps["check-image"]["args"][-1]
    assert "-var=image=${_IMAGE}" in steps["tf-plan"]["args"]
