"""Read the Terraform of ``infra/terraform`` (python-hcl2) for the consistency tests.

Nothing here evaluates Terraform: expressions stay strings such as
``${google_pubsub_topic.lifecycle.name}``, literal values come back as Python values.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hcl2
from hcl2 import SerializationOptions

ROOT = Path(__file__).resolve().parents[2]
TERRAFORM = ROOT / "infra" / "terraform"
MODULE = TERRAFORM / "modules" / "workflow_engine"
ENVIRONMENTS = ("dev", "staging", "prod")
FUNCTIONS = sorted(p.parent.name for p in (ROOT / "functions").glob("*/main.py"))

_OPTIONS = SerializationOptions(
    strip_string_quotes=True, explicit_blocks=False, with_comments=False
)

NOT_RUN: dict[str, str] = {}
"""Checks that could not run here (name -> why); conftest prints one loud line each."""


@functools.cache
def load(path: Path) -> dict[str, Any]:
    """One ``.tf`` or ``.tfvars`` file as python-hcl2 reads it."""
    with path.open() as handle:
        return hcl2.load(handle, serialization_options=_OPTIONS)


@dataclass(frozen=True)
class Config:
    """The blocks of every ``.tf`` file of one directory, merged."""

    directory: Path
    resources: dict[tuple[str, str], dict[str, Any]]
    """(type, name) -> body."""
    resource_files: dict[tuple[str, str], str]
    """(type, name) -> the file that declares it."""
    data: dict[tuple[str, str], dict[str, Any]]
    locals: dict[str, Any]
    variables: dict[str, dict[str, Any]]
    variable_order: tuple[str, ...]
    modules: dict[str, dict[str, Any]]
    terraform: list[dict[str, Any]]
    outputs: dict[str, dict[str, Any]]

    def resource(self, kind: str, name: str) -> dict[str, Any]:
        return self.resources[(kind, name)]

    def of_type(self, kind: str) -> dict[str, dict[str, Any]]:
        return {name: body for (k, name), body in self.resources.items() if k == kind}


@functools.cache
def config(directory: Path) -> Config:
    resources: dict[tuple[str, str], dict[str, Any]] = {}
    files: dict[tuple[str, str], str] = {}
    data: dict[tuple[str, str], dict[str, Any]] = {}
    local_values: dict[str, Any] = {}
    variables: dict[str, dict[str, Any]] = {}
    order: list[str] = []
    modules: dict[str, dict[str, Any]] = {}
    terraform: list[dict[str, Any]] = []
    outputs: dict[str, dict[str, Any]] = {}
    for path in sorted(directory.glob("*.tf")):
        doc = load(path)
        for entry in doc.get("resource", []):
            for kind, named in entry.items():
                for name, body in named.items():
                    resources[(kind, name)] = body
                    files[(kind, name)] = path.name
        for entry in doc.get("data", []):
            for kind, named in entry.items():
                for name, body in named.items():
                    data[(kind, name)] = body
        for block in doc.get("locals", []):
            local_values.update(block)
        for entry in doc.get("variable", []):
            for name, body in entry.items():
                variables[name] = body
                if path.name == "variables.tf":
                    order.append(name)
        for entry in doc.get("module", []):
            modules.update(entry)
        terraform.extend(doc.get("terraform", []))
        for entry in doc.get("output", []):
            outputs.update(entry)
    return Config(
        directory,
        resources,
        files,
        data,
        local_values,
        variables,
        tuple(order),
        modules,
        terraform,
        outputs,
    )


def module() -> Config:
    return config(MODULE)


def environment(name: str) -> Config:
    return config(TERRAFORM / "environments" / name)


def tfvars(name: str) -> dict[str, Any]:
    return load(TERRAFORM / "environments" / name / "terraform.tfvars")


def optional_defaults(type_expression: str) -> dict[str, str]:
    """``optional(T, default)`` attributes of an object type: name -> default (as text)."""
    pattern = r'(\w+)\s*=\s*optional\((?:[^(),]|\([^()]*\))+,\s*("[^"]*"|[^()]+?)\)'
    found = re.findall(pattern, type_expression)
    return dict(found)


def block(body: dict[str, Any], *path: str) -> dict[str, Any]:
    """The first nested block along ``path`` (hcl2 gives blocks as one-item lists)."""
    current: Any = body
    for name in path:
        current = current[name]
        if isinstance(current, list):
            current = current[0]
    return dict(current)
