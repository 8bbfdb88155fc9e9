"""Our definition -> Cloud Workflows or Step Functions, for the subset that maps back.

The answer is an ``ImportResult`` whose ``definition`` is the exported document and
whose findings point into OUR definition (``/steps/3/config/url``). Steps or
expressions without a counterpart are reported as unsupported, never guessed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from shared.importers.result import Collector, ImportResult, Unsupported

_TEMPLATE = re.compile(r"^\$\{(.*)\}$", re.DOTALL)
_CEL_TOKEN = re.compile(
    r"""\s*(?:(?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')|(?P<num>\d+(?:\.\d+)?)"""
    r"""|(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<op>&&|\|\||==|!=|<=|>=|[-+*/%<>!()\[\]{},.?:]))"""
)


def _definition(raw: Any) -> Mapping[str, Any]:
    if hasattr(raw, "to_json_dict"):
        raw = raw.to_json_dict()
    if not isinstance(raw, Mapping) or not isinstance(raw.get("steps"), list):
        raise Unsupported("EXPORT_NOT_DEFINITION", "not a workflow definition")
    return raw


def cel_to_gcw(source: str) -> str:
    """Our CEL -> a Cloud Workflows expression (variables lose ``vars.``)."""
    out: list[str] = []
    position = 0
    previous = ""
    while position < len(source):
        match = _CEL_TOKEN.match(source, position)
        if match is None or match.end() == position:
            raise Unsupported("EXPORT_EXPRESSION", f"cannot read {source[position:][:30]!r}")
        position = match.end()
        kind = match.lastgroup or "op"
        token = match.group(kind)
        space = match.group(0)[: len(match.group(0)) - len(token)]
        if kind == "name" and previous != ".":
            if token == "vars" and source[position:].lstrip().startswith("."):
                position = source.index(".", position) + 1
                previous = ""
                continue
            if token == "input":
                token = "args"
            elif token in ("prev", "item", "index", "execution"):
                raise Unsupported(
                    "EXPORT_EXPRESSION", f"{token!r} has no Cloud Workflows counterpart"
                )
            elif token == "size":
                token = "len"
            elif token in ("has", "matches", "map", "filter", "all", "exists", "timestamp"):
                raise Unsupported("EXPORT_EXPRESSION", f"{token}() has no counterpart")
        elif kind == "op":
            token = {"&&": "and ", "||": "or ", "!": "not "}.get(token, token)
            if token == "?":
                raise Unsupported("EXPORT_EXPRESSION", "the ?: operator has no counterpart")
        if token in ("and ", "or ") and not space:
            space = " "
        if out and out[-1].endswith(" "):
            space = ""
        out.append(space + token)
        previous = token
    return "".join(out)


def _gcw_value(value: Any, path: str, f: Collector) -> Any:
    if isinstance(value, str):
        match = _TEMPLATE.match(value)
        if match:
            try:
                return "${" + cel_to_gcw(match.group(1)) + "}"
            except Unsupported as exc:
                f.unsupported_(exc.code, exc.message, path)
                return value
        if "${" in value:
            f.unsupported_("EXPORT_TEMPLATE", "text around ${...} has no counterpart (use +)", path)
        return value
    if isinstance(value, Mapping):
        return {k: _gcw_value(v, f"{path}/{k}", f) for k, v in value.items()}
    if isinstance(value, list):
        return [_gcw_value(v, f"{path}/{i}", f) for i, v in enumerate(value)]
    return value


def to_gcw(raw: Any) -> ImportResult:
    f = Collector()
    definition = _definition(raw)
    steps = definition["steps"]
    order = [s.get("id") for s in steps]
    out: list[dict[str, Any]] = []
    for index, step in enumerate(steps):
        path = f"/steps/{index}"
        kind, config = step.get("type"), step.get("config") or {}
        body: dict[str, Any]
        if kind == "transform":
            body = {
                "assign": [
                    {k: _gcw_value(v, f"{path}/config/set/{k}", f)}
                    for k, v in (config.get("set") or {}).items()
                ]
            }
            if not body["assign"]:
                body = {"assign": [{"_noop": None}]}
        elif kind == "http":
            args: dict[str, Any] = {"url": _gcw_value(config.get("url"), f"{path}/config/url", f)}
            for key in ("headers", "query", "body"):
                if key in config:
                    args[key] = _gcw_value(config[key], f"{path}/config/{key}", f)
            if "timeoutSeconds" in config:
                args["timeout"] = config["timeoutSeconds"]
            method = str(config.get("method", "GET")).lower()
            body = {"call": f"http.{method}", "args": args}
            if step.get("outputVar"):
                body["result"] = step["outputVar"]
        elif kind == "branch":
            body = {
                "switch": [
                    {
                        "condition": _gcw_value(
                            "${" + c["when"] + "}", f"{path}/config/cases/{i}/when", f
                        ),
                        "next": c["next"],
                    }
                    for i, c in enumerate(config.get("cases") or [])
                ]
            }
            if config.get("default"):
                body["next"] = config["default"]
        elif kind == "wait" and config.get("seconds") is not None:
            body = {
                "call": "sys.sleep",
                "args": {"seconds": _gcw_value(config["seconds"], f"{path}/config/seconds", f)},
            }
        elif kind == "wait_for_event":
            f.warn(
                "EXPORT_CALLBACK",
                "wait_for_event becomes events.await_callback: create the callback endpoint "
                "(events.create_callback_endpoint) before it and pass it as 'callback'",
                path,
            )
            body = {
                "call": "events.await_callback",
                "args": {"callback": "${callback}", "timeout": config.get("timeoutSeconds")},
            }
        else:
            f.unsupported_("EXPORT_STEP_TYPE", f"step type {kind!r} is not exported", path)
            continue
        nexts = step.get("nextSteps") or []
        following = order[index + 1] if index + 1 < len(order) else None
        if kind != "branch":
            if not nexts:
                body["next"] = "end"
            elif nexts[0] != following:
                body["next"] = nexts[0]
            if len(nexts) > 1:
                f.unsupported_("EXPORT_NEXT", "more than one next step", f"{path}/nextSteps")
        if step.get("onError", {}).get("strategy", "fail") != "fail":
            f.unsupported_("EXPORT_ON_ERROR", "onError is not exported (wrap in try)", path)
        out.append({step["id"]: body})
    if definition.get("variables"):
        out.insert(
            0, {"init_variables": {"assign": [{k: v} for k, v in definition["variables"].items()]}}
        )
    document = {"main": {"params": ["args"], "steps": out}}
    return ImportResult(document, f.warnings, f.unsupported)


def _asl_path(value: Any) -> str | None:
    """``${prev.a.b}`` -> ``$.a.b`` (None when it is not such a plain reference)."""
    if not isinstance(value, str):
        return None
    match = _TEMPLATE.match(value)
    if not match:
        return None
    ref = match.group(1).strip()
    if ref == "prev":
        return "$"
    if re.fullmatch(r"prev(\.[A-Za-z_]\w*)+", ref):
        return "$" + ref[4:]
    if re.fullmatch(r"input(\.[A-Za-z_]\w*)*", ref):
        return "$$.Execution.Input" + ref[5:]
    return None


def _asl_parameters(value: Any, path: str, f: Collector) -> Any:
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            ref = _asl_path(item)
            if ref is not None:
                out[f"{key}.$"] = ref
            elif isinstance(item, str) and "${" in item:
                f.unsupported_(
                    "EXPORT_EXPRESSION", "only ${prev.a.b} references export", f"{path}/{key}"
                )
            else:
                out[key] = _asl_parameters(item, f"{path}/{key}", f)
        return out
    return value


def _asl_rule(when: str, path: str, f: Collector) -> dict[str, Any] | None:
    match = re.fullmatch(r"\s*prev((?:\.[A-Za-z_]\w*)+)\s*(==|!=|<=|>=|<|>)\s*(.+?)\s*", when)
    if match:
        try:
            literal = json.loads(match.group(3).replace("'", '"'))
        except ValueError:
            literal = None
        kind = (
            "Boolean"
            if isinstance(literal, bool)
            else "Numeric"
            if isinstance(literal, (int, float))
            else "String"
            if isinstance(literal, str)
            else None
        )
        op = {
            "==": "Equals",
            "<": "LessThan",
            ">": "GreaterThan",
            "<=": "LessThanEquals",
            ">=": "GreaterThanEquals",
            "!=": "Equals",
        }[match.group(2)]
        if kind and (kind != "Boolean" or op == "Equals"):
            rule: dict[str, Any] = {"Variable": "$" + match.group(1), kind + op: literal}
            return {"Not": rule} if match.group(2) == "!=" else rule
    f.unsupported_("EXPORT_CONDITION", f"condition {when!r} has no Choice rule counterpart", path)
    return None


def to_asl(raw: Any) -> ImportResult:
    f = Collector()
    definition = _definition(raw)
    machine = _asl_machine(definition["steps"], definition.get("startStep"), f, set())
    return ImportResult(
        {"Comment": definition.get("description") or definition.get("name", ""), **machine},
        f.warnings,
        f.unsupported,
    )


def _asl_machine(
    steps: list[Any], start: str | None, f: Collector, only: set[str]
) -> dict[str, Any]:
    index_of = {s.get("id"): i for i, s in enumerate(steps)}
    first = start or steps[0].get("id")
    seen: set[str] = set()
    queue = [first]
    states: dict[str, Any] = {}
    while queue:
        sid = queue.pop(0)
        if sid in seen or sid not in index_of:
            continue
        seen.add(sid)
        step = steps[index_of[sid]]
        path = f"/steps/{index_of[sid]}"
        state = _asl_state(step, steps, path, f)
        nexts = step.get("nextSteps") or []
        if state["Type"] not in ("Choice", "Succeed", "Fail"):
            if nexts:
                state["Next"] = nexts[0]
            else:
                state["End"] = True
        queue.extend(nexts)
        fallback = step.get("onError", {}).get("fallbackStep")
        if fallback:
            queue.append(fallback)
        states[sid] = state
    return {"StartAt": first, "States": states}


def _asl_state(
    step: Mapping[str, Any], steps: list[Any], path: str, f: Collector
) -> dict[str, Any]:
    kind, config = step.get("type"), step.get("config") or {}
    state: dict[str, Any]
    if kind == "transform":
        output = config.get("output")
        if config.get("set"):
            f.unsupported_(
                "EXPORT_VARIABLES",
                "variables set by a transform are not exported",
                f"{path}/config/set",
            )
        if output is None:
            state = {"Type": "Pass"}
        elif _asl_path(output) is not None:
            state = {"Type": "Pass", "InputPath": _asl_path(output)}
        elif isinstance(output, Mapping) and "${" not in json.dumps(output):
            state = {"Type": "Pass", "Result": output}
        elif isinstance(output, Mapping):
            state = {
                "Type": "Pass",
                "Parameters": _asl_parameters(output, f"{path}/config/output", f),
            }
        elif isinstance(output, str) and "${" in output:
            f.unsupported_(
                "EXPORT_EXPRESSION", "only ${prev.a.b} references export", f"{path}/config/output"
            )
            state = {"Type": "Pass"}
        else:
            state = {"Type": "Pass", "Result": output}
    elif kind == "http":
        parameters: dict[str, Any] = {"Method": config.get("method", "GET")}
        url_ref = _asl_path(config.get("url"))
        if url_ref:
            parameters["ApiEndpoint.$"] = url_ref
        else:
            parameters["ApiEndpoint"] = config.get("url")
            if "${" in str(config.get("url")):
                f.unsupported_(
                    "EXPORT_EXPRESSION", "only ${prev.a.b} references export", f"{path}/config/url"
                )
        if config.get("headers"):
            parameters["Headers"] = _asl_parameters(config["headers"], f"{path}/config/headers", f)
        if config.get("query"):
            parameters["QueryParameters"] = _asl_parameters(
                config["query"], f"{path}/config/query", f
            )
        if config.get("body") is not None:
            body_ref = _asl_path(config["body"])
            if body_ref:
                parameters["RequestBody.$"] = body_ref
            else:
                parameters["RequestBody"] = _asl_parameters(
                    config["body"], f"{path}/config/body", f
                )
        f.warn(
            "EXPORT_HTTP_CONNECTION",
            "HTTP Tasks need Authentication.ConnectionArn (an EventBridge connection)",
            path,
        )
        parameters["Authentication"] = {"ConnectionArn": "<connection-arn>"}
        state = {
            "Type": "Task",
            "Resource": "arn:aws:states:::http:invoke",
            "Parameters": parameters,
            "ResultSelector": {
                "status.$": "$.StatusCode",
                "body.$": "$.ResponseBody",
                "headers.$": "$.Headers",
            },
        }
    elif kind == "branch":
        choices = []
        for i, case in enumerate(config.get("cases") or []):
            rule = _asl_rule(case["when"], f"{path}/config/cases/{i}/when", f)
            if rule is not None:
                choices.append({**rule, "Next": case["next"]})
        state = {"Type": "Choice", "Choices": choices}
        if config.get("default"):
            state["Default"] = config["default"]
    elif kind == "wait":
        seconds, until = config.get("seconds"), config.get("until")
        if isinstance(seconds, (int, float)):
            state = {"Type": "Wait", "Seconds": int(seconds)}
        elif _asl_path(seconds):
            state = {"Type": "Wait", "SecondsPath": _asl_path(seconds)}
        elif isinstance(until, str) and "${" not in until:
            state = {"Type": "Wait", "Timestamp": until}
        else:
            f.unsupported_("EXPORT_WAIT", "the wait's time is an expression", f"{path}/config")
            state = {"Type": "Wait", "Seconds": 0}
    elif kind in ("parallel", "map"):
        if kind == "parallel":
            state = {
                "Type": "Parallel",
                "Branches": [
                    _asl_machine(steps, b["start"], f, set()) for b in config.get("branches") or []
                ],
            }
        else:
            items = str(config.get("items", ""))
            state = {
                "Type": "Map",
                "MaxConcurrency": config.get("concurrency", 5),
                "ItemProcessor": _asl_machine(steps, config.get("start"), f, set()),
            }
            ref = _asl_path("${" + items + "}")
            if ref:
                state["ItemsPath"] = ref
            else:
                f.unsupported_(
                    "EXPORT_EXPRESSION",
                    "map items must be a ${prev.a.b} reference",
                    f"{path}/config/items",
                )
    else:
        f.unsupported_("EXPORT_STEP_TYPE", f"step type {kind!r} is not exported", path)
        state = {"Type": "Pass", "Comment": f"UNSUPPORTED {kind}"}
    error = step.get("onError") or {}
    retry = error.get("retry")
    if retry:
        state["Retry"] = [
            {
                "ErrorEquals": ["States.ALL"],
                "MaxAttempts": int(retry.get("maxAttempts", 3)) - 1,
                "IntervalSeconds": max(1, int(retry.get("initialDelaySeconds", 1))),
                "BackoffRate": retry.get("multiplier", 2.0),
                "MaxDelaySeconds": int(retry.get("maxDelaySeconds", 300)),
            }
        ]
    if error.get("strategy") == "fallback" and error.get("fallbackStep"):
        state["Catch"] = [{"ErrorEquals": ["States.ALL"], "Next": error["fallbackStep"]}]
    elif error.get("strategy") == "continue":
        f.unsupported_(
            "EXPORT_ON_ERROR", "strategy 'continue' has no counterpart", f"{path}/onError"
        )
    return state
