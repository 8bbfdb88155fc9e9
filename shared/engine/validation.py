"""Save-time validation of workflow definitions.

Every problem is reported at once as an ``Issue`` with a stable code and a JSON
pointer into the submitted document; a definition with any issue is never stored.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from croniter import croniter
from pydantic import ValidationError

from shared.engine.flow import check_flow
from shared.engine.graph import check_graph
from shared.engine.step_limits import check_step_limits
from shared.engine.steps import StepRegistry, StepType
from shared.errors import (
    DefinitionInvalid,
    InputInvalid,
    Issue,
    WorkflowError,
    json_pointer,
    pointer_token,
)
from shared.expressions import TRIGGER_ROOTS, check_template, compile_expression
from shared.models import (
    EventTrigger,
    ScheduleTrigger,
    WebhookTrigger,
    WorkflowDefinition,
    WorkflowStep,
)
from shared.models.safe_yaml import load_yaml_documents
from shared.ports.secrets import SecretRefForbidden, check_secret_ref

MAX_DEFINITION_BYTES = 512 * 1024
MAX_STEPS = 500
MAX_JSON_DEPTH = 32

_PYDANTIC_CODES = {
    "missing": "FIELD_REQUIRED",
    "extra_forbidden": "UNKNOWN_FIELD",
    "union_tag_invalid": "INVALID_VALUE",
    "union_tag_not_found": "FIELD_REQUIRED",
    "literal_error": "INVALID_VALUE",
    "enum": "INVALID_VALUE",
    "string_pattern_mismatch": "INVALID_FORMAT",
    "too_short": "TOO_SHORT",
    "too_long": "TOO_LONG",
    "string_too_short": "TOO_SHORT",
    "string_too_long": "TOO_LONG",
}


pointer = json_pointer
"""A JSON pointer from path parts (``shared.errors.json_pointer``)."""


def issues_from_pydantic(error: ValidationError, prefix: str = "") -> list[Issue]:
    """Pydantic errors as issues with codes and JSON pointers."""
    issues = []
    for item in error.errors():
        kind = item["type"]
        code = _PYDANTIC_CODES.get(kind)
        if code is None:
            code = (
                "FIELD_TYPE"
                if kind.endswith("_type") or kind.endswith("_parsing")
                else "INVALID_VALUE"
            )
        loc = [p for p in item["loc"] if not (isinstance(p, str) and p in _UNION_TAGS)]
        message = item["msg"].removeprefix("Value error, ")
        issues.append(Issue(code, message, prefix + pointer(*loc)))
    return issues


_UNION_TAGS = {"manual", "schedule", "event", "webhook"}


def parse_document(text: str, source: str = "<input>") -> dict[str, Any]:
    """Parse JSON or YAML text into an object; INVALID_FORMAT when it is neither."""
    stripped = text.lstrip()
    try:
        if stripped.startswith(("{", "[")) or source.endswith(".json"):
            value = json.loads(text)
        else:
            documents = load_yaml_documents(text)
            if len(documents) > 1:
                raise InputInvalid(
                    f"{source} holds {len(documents)} documents, not one", code="INVALID_FORMAT"
                )
            value = documents[0] if documents else None
    except RecursionError:
        raise InputInvalid(f"{source} is nested too deeply", code="INVALID_FORMAT") from None
    except (ValueError, yaml.YAMLError) as exc:
        raise InputInvalid(
            f"{source} is not valid JSON or YAML: {exc}".splitlines()[0], code="INVALID_FORMAT"
        ) from exc
    if not isinstance(value, dict):
        raise InputInvalid(
            f"{source} must hold an object, not {type(value).__name__}", code="INVALID_FORMAT"
        )
    return value


def parse_documents(text: str, source: str = "<input>") -> list[dict[str, Any]]:
    """Parse a file that may hold several YAML documents (``---``); JSON holds one."""
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")) or source.endswith(".json"):
        return [parse_document(text, source)]
    try:
        documents = load_yaml_documents(text)
    except yaml.YAMLError as exc:
        raise InputInvalid(
            f"{source} is not valid JSON or YAML: {exc}".splitlines()[0], code="INVALID_FORMAT"
        ) from exc
    if not documents or not all(isinstance(d, dict) for d in documents):
        raise InputInvalid(f"{source} must hold one or more objects", code="INVALID_FORMAT")
    return documents


def _depth(value: Any, limit: int, level: int = 0) -> bool:
    if level > limit:
        return True
    if isinstance(value, Mapping):
        return any(_depth(v, limit, level + 1) for v in value.values())
    if isinstance(value, list):
        return any(_depth(v, limit, level + 1) for v in value)
    return False


def validate_definition(raw: Mapping[str, Any], registry: StepRegistry) -> WorkflowDefinition:
    """Validate a submitted definition; raise ``DefinitionInvalid`` listing every issue."""
    try:
        size = len(json.dumps(raw, default=str).encode())
    except (TypeError, ValueError) as exc:
        raise DefinitionInvalid([Issue("INVALID_FORMAT", f"not JSON-serialisable: {exc}")]) from exc
    if size > MAX_DEFINITION_BYTES:
        raise DefinitionInvalid(
            [Issue("DEFINITION_TOO_LARGE", f"{size} bytes exceed {MAX_DEFINITION_BYTES}", "")]
        )
    if _depth(raw, MAX_JSON_DEPTH):
        raise DefinitionInvalid([Issue("TOO_DEEP", f"nesting deeper than {MAX_JSON_DEPTH}")])
    steps_raw = raw.get("steps")
    if isinstance(steps_raw, list) and len(steps_raw) > MAX_STEPS:
        raise DefinitionInvalid(
            [Issue("TOO_MANY_STEPS", f"{len(steps_raw)} steps exceed {MAX_STEPS}", "/steps")]
        )
    try:
        definition = WorkflowDefinition.model_validate(dict(raw))
    except ValidationError as exc:
        raise DefinitionInvalid(issues_from_pydantic(exc)) from exc
    issues = check_definition(definition, registry)
    if issues:
        raise DefinitionInvalid(issues)
    return definition


def check_definition(definition: WorkflowDefinition, registry: StepRegistry) -> list[Issue]:
    """Semantic checks of a parsed definition: steps, references, expressions, graph."""
    issues: list[Issue] = []
    ids: dict[str, int] = {}
    for index, step in enumerate(definition.steps):
        if step.id in ids:
            issues.append(
                Issue(
                    "DUPLICATE_STEP_ID",
                    f"step id {step.id!r} is used twice",
                    pointer("steps", index, "id"),
                )
            )
        else:
            ids[step.id] = index
    if definition.start_step is not None and definition.start_step not in ids:
        issues.append(
            Issue(
                "UNKNOWN_START_STEP",
                f"startStep {definition.start_step!r} is not a step",
                "/startStep",
            )
        )
    configs: dict[str, Any] = {}
    for index in range(len(definition.steps)):
        issues.extend(_check_step(definition, index, ids, registry, configs))
    issues.extend(check_template(definition.output, "/output"))
    issues.extend(_check_trigger(definition))
    issues.extend(check_flow(definition))
    issues.extend(check_step_limits(definition))
    if not issues:
        issues.extend(check_graph(definition, registry, configs, ids))
    return issues


def _check_step(
    definition: WorkflowDefinition,
    index: int,
    ids: dict[str, int],
    registry: StepRegistry,
    configs: dict[str, Any],
) -> list[Issue]:
    step = definition.steps[index]
    path = pointer("steps", index)
    issues: list[Issue] = []
    for j, target in enumerate(step.next_steps):
        if target not in ids:
            issues.append(
                Issue(
                    "UNKNOWN_NEXT_STEP",
                    f"nextSteps names unknown step {target!r}",
                    f"{path}/nextSteps/{j}",
                )
            )
    if len(set(step.next_steps)) != len(step.next_steps):
        issues.append(
            Issue("DUPLICATE_NEXT_STEP", "nextSteps lists a step twice", f"{path}/nextSteps")
        )
    fallback = step.on_error.fallback_step
    if fallback is not None and fallback not in ids:
        issues.append(
            Issue(
                "UNKNOWN_FALLBACK_STEP",
                f"fallbackStep {fallback!r} is not a step",
                f"{path}/onError/fallbackStep",
            )
        )
    for k, condition in enumerate(step.conditions or []):
        issues.extend(
            compile_expression(condition.expression, f"{path}/conditions/{k}/expression")[1]
        )
    try:
        step_type = registry.get(step.type)
    except WorkflowError as exc:
        return [*issues, Issue(exc.code, exc.message, f"{path}/type")]
    if len(step.next_steps) > 1 and not step_type.branching:
        issues.append(
            Issue(
                "MULTIPLE_NEXT_STEPS",
                f"a {step.type} step has one next step; fan out with parallel",
                f"{path}/nextSteps",
            )
        )
    try:
        config = step_type.parse_config(step.config)
    except ValidationError as exc:
        issues.extend(issues_from_pydantic(exc, f"{path}/config"))
        return issues + _checks_of_the_valid_fields(step, step_type, exc, path, ids)
    configs[step.id] = config
    return issues + _config_checks(step, step_type, config, path, ids)


def _config_checks(
    step: WorkflowStep, step_type: StepType, config: Any, path: str, ids: dict[str, int]
) -> list[Issue]:
    """The step type's own checks of a parsed config, and the steps it names."""
    issues = step_type.check(step, config, path)
    for target, suffix in step_type.referenced_steps(config):
        if target not in ids:
            issues.append(
                Issue(
                    "UNKNOWN_STEP_REFERENCE",
                    f"config names unknown step {target!r}",
                    f"{path}/config/{suffix}",
                )
            )
    return issues


def _checks_of_the_valid_fields(
    step: WorkflowStep,
    step_type: StepType,
    error: ValidationError,
    path: str,
    ids: dict[str, int],
) -> list[Issue]:
    """One bad field must not hide the other problems of a config: parse it again without
    the fields in error (those with defaults) and run the checks on the rest. A config
    whose bad field is required (or that fails again) has its field errors only."""
    bad = {str(item["loc"][0]) for item in error.errors() if item["loc"]}
    if not bad or not isinstance(step.config, Mapping):
        return []
    rest = {key: value for key, value in step.config.items() if key not in bad}
    try:
        config = step_type.parse_config(rest)
    except ValidationError:
        return []
    shadowed = tuple(f"{path}/config/{pointer_token(key)}" for key in bad)
    return [
        issue
        for issue in _config_checks(step, step_type, config, path, ids)
        if not issue.path.startswith(shadowed)
    ]


def _check_trigger(definition: WorkflowDefinition) -> list[Issue]:
    trigger = definition.trigger
    issues: list[Issue] = []
    if isinstance(trigger, ScheduleTrigger):
        if not croniter.is_valid(trigger.cron) or len(trigger.cron.split()) != 5:
            issues.append(
                Issue(
                    "INVALID_CRON",
                    f"{trigger.cron!r} is not a 5-field cron expression",
                    "/trigger/cron",
                )
            )
        try:
            ZoneInfo(trigger.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            issues.append(
                Issue(
                    "INVALID_TIMEZONE",
                    f"unknown time zone {trigger.timezone!r}",
                    "/trigger/timezone",
                )
            )
    if isinstance(trigger, EventTrigger) and trigger.filter:
        issues.extend(compile_expression(trigger.filter, "/trigger/filter", TRIGGER_ROOTS)[1])
    if isinstance(trigger, WebhookTrigger):
        try:
            check_secret_ref(trigger.secret_ref)
        except SecretRefForbidden as exc:
            issues.append(Issue(exc.code, exc.message, "/trigger/secretRef"))
    return issues
