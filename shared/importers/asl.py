"""AWS Step Functions (Amazon States Language, JSONPath and JSONata) -> our definition.

The state document that ASL passes from state to state is our ``prev`` (the previous
step's output): each state becomes steps whose last output is the state's output.
InputPath, Parameters/Arguments, ResultSelector, ResultPath (``$`` and ``null``),
OutputPath and JSONata ``Output`` become templates over ``prev``. Choice and Wait
steps of ours output their own record, so the state document is kept in a variable
before them and given back after. ``ResultPath: $.field`` (merging a result into the
input) has no CEL equivalent (CEL cannot add a key to a map) and is reported.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from shared.importers.result import MAX_EMITTED_STEPS, Collector, Unsupported, pointer

MAX_WAIT = 365 * 86_400
_PATH = re.compile(r"^\$((?:\.[A-Za-z_][A-Za-z0-9_]*|\[\d+\]|\['[^']*'\]|\[\"[^\"]*\"\])*)$")
_CONTEXT = {
    "$$.Execution.Id": "execution.id",
    "$$.Execution.Input": "input",
    "$$.Map.Item.Value": "item",
    "$$.Map.Item.Index": "index",
    "$$.StateMachine.Id": "execution.workflowId",
}
_SUBSTITUTION = re.compile(r"\$\{([^}]*)\}")
_RETRY_CODES = {"States.Timeout": "HTTP_TIMEOUT", "States.HeartbeatTimeout": "EVENT_TIMEOUT"}
_ANY_ERROR = {"States.ALL", "States.TaskFailed"}
_COMPARE = {
    "Equals": "==",
    "LessThan": "<",
    "GreaterThan": ">",
    "LessThanEquals": "<=",
    "GreaterThanEquals": ">=",
}


def json_path(path: Any, base: str) -> str:
    """The CEL of a reference path (``$.a.b[0]``) over ``base``; ``$$.`` context fields."""
    if not isinstance(path, str):
        raise Unsupported("ASL_PATH", f"a path must be a string, not {path!r}")
    if path in _CONTEXT:
        return _CONTEXT[path]
    for prefix, root in (("$$.Map.Item.Value", "item"), ("$$.Execution.Input", "input")):
        if path.startswith(prefix + ".") or path.startswith(prefix + "["):
            return json_path("$" + path[len(prefix) :], root)
    if path.startswith("$$."):
        raise Unsupported("ASL_CONTEXT", f"context object field {path} has no equivalent")
    match = _PATH.match(path)
    if match is None:
        raise Unsupported(
            "ASL_JSONPATH",
            f"JSONPath {path!r} is not a plain reference path (filters, wildcards and slices "
            "have no CEL equivalent)",
        )
    out = base
    for part in re.findall(
        r"\.[A-Za-z_][A-Za-z0-9_]*|\[\d+\]|\['[^']*'\]|\[\"[^\"]*\"\]", match.group(1)
    ):
        if part.startswith(".") or part[1].isdigit():
            out += part
        else:
            out += "[" + json.dumps(part[2:-2]) + "]"
    return out


def _split_args(text: str) -> list[str]:
    args, depth, current, quote = [], 0, "", False
    i = 0
    while i < len(text):
        ch = text[i]
        if quote:
            current += ch
            if ch == "\\" and i + 1 < len(text):
                current += text[i + 1]
                i += 1
            elif ch == "'":
                quote = False
        elif ch == "'":
            quote = True
            current += ch
        elif ch == "(":
            depth += 1
            current += ch
        elif ch == ")":
            depth -= 1
            current += ch
        elif ch == "," and depth == 0:
            args.append(current.strip())
            current = ""
        else:
            current += ch
        i += 1
    if current.strip():
        args.append(current.strip())
    return args


def intrinsic(text: str, base: str, depth: int = 0) -> str:
    """CEL of an intrinsic function call or argument (``States.Format('{}', $.a)``)."""
    text = text.strip()
    if depth > 10:
        raise Unsupported("ASL_INTRINSIC", "intrinsic functions nested too deeply")
    if text.startswith("'") and text.endswith("'"):
        return json.dumps(text[1:-1].replace("\\'", "'"))
    if text.startswith("$"):
        return json_path(text, base)
    if re.fullmatch(r"-?\d+(\.\d+)?", text):
        return text
    if text in ("true", "false", "null"):
        return text
    match = re.fullmatch(r"(States\.[A-Za-z0-9]+)\((.*)\)", text, re.DOTALL)
    if match is None:
        raise Unsupported("ASL_INTRINSIC", f"cannot read {text[:60]!r}")
    name, args = (
        match.group(1),
        [intrinsic(a, base, depth + 1) for a in _split_args(match.group(2))],
    )
    if name == "States.Format" and args:
        template = json.loads(args[0]) if args[0].startswith('"') else None
        if template is None:
            raise Unsupported("ASL_INTRINSIC", "States.Format needs a literal template")
        pieces = template.split("{}")
        if len(pieces) - 1 != len(args) - 1:
            raise Unsupported("ASL_INTRINSIC", "States.Format arguments do not match its {}")
        parts = [json.dumps(pieces[0])]
        for value, piece in zip(args[1:], pieces[1:], strict=True):
            parts += [f"string({value})", json.dumps(piece)]
        return "(" + " + ".join(p for p in parts if p != '""') + ")"
    if name == "States.Array":
        return "[" + ", ".join(args) + "]"
    if name == "States.MathAdd" and len(args) == 2:
        return f"({args[0]} + {args[1]})"
    if name == "States.ArrayLength" and len(args) == 1:
        return f"size({args[0]})"
    if name == "States.ArrayGetItem" and len(args) == 2:
        return f"{args[0]}[{args[1]}]"
    if name == "States.ArrayContains" and len(args) == 2:
        return f"({args[1]} in {args[0]})"
    raise Unsupported(
        "ASL_INTRINSIC",
        f"{name} has no equivalent in our CEL (no JSON parsing, hashing, UUID, "
        "base64 or string splitting functions)",
    )


_JSONATA_TOKEN = re.compile(
    r"""\s*(?:(?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')|(?P<num>\d+(?:\.\d+)?)"""
    r"""|(?P<var>\$[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)"""
    r"""|(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<op>!=|<=|>=|[-+*/%<>=&()\[\],.?:]))"""
)


def jsonata(text: str, base: str, result: str | None = None) -> str:
    """CEL of a simple JSONata expression: ``$states.input``/``$states.result`` paths,
    variables, literals, comparisons, and/or, arithmetic, ``&`` concatenation."""
    out: list[str] = []
    position = 0
    text = text.strip()
    while position < len(text):
        match = _JSONATA_TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise Unsupported("ASL_JSONATA", f"JSONata {text[:60]!r} is beyond the simple subset")
        position = match.end()
        kind = match.lastgroup
        token = match.group(kind or "op")
        if kind == "var":
            head, _, rest = token.partition(".")
            if head == "$states":
                root, _, tail = rest.partition(".")
                if root == "input":
                    token = base + ("." + tail if tail else "")
                elif root == "result" and result is not None:
                    token = result + ("." + tail if tail else "")
                elif rest == "context.Execution.Id":
                    token = "execution.id"
                else:
                    raise Unsupported("ASL_JSONATA", f"{token} has no equivalent")
            elif text[position:].lstrip().startswith("("):
                raise Unsupported("ASL_JSONATA", f"JSONata function {head}() is not translated")
            else:
                token = "vars." + token[1:]
        elif kind == "name":
            token = {"and": "&&", "or": "||", "true": "true", "false": "false", "null": "null"}.get(
                token, ""
            )
            if not token:
                raise Unsupported("ASL_JSONATA", f"JSONata {match.group(kind)!r} is not translated")
        elif kind == "op":
            token = {"=": "==", "&": "+"}.get(token, token)
        elif kind == "str":
            token = json.dumps(token[1:-1])
        out.append(token)
    return " ".join(out)


class AslTranslator:
    def __init__(self, source: Any, name: str | None, findings: Collector) -> None:
        self.source = source
        self.name = name
        self.f = findings
        self.steps: list[dict[str, Any]] = []
        self.states = 0
        self.in_map = 0

    def translate(self) -> dict[str, Any]:
        if not isinstance(self.source, Mapping) or "States" not in self.source:
            raise Unsupported("ASL_NOT_STATE_MACHINE", "an ASL document needs StartAt and States")
        language = self.source.get("QueryLanguage", "JSONPath")
        first = self.machine(self.source, "", language)
        entry = self.f.new_id("StateInput")
        # ASL's first state receives the execution input; our first step's prev is null
        self.emit(
            {
                "id": entry,
                "type": "transform",
                "config": {"set": {}, "output": "${input}"},
                "nextSteps": [first],
            }
        )
        steps = [s for s in self.steps if s["id"] == entry] + [
            s for s in self.steps if s["id"] != entry
        ]
        definition: dict[str, Any] = {
            "name": self.name or "imported-state-machine",
            "description": str(self.source.get("Comment") or "Imported from AWS Step Functions")[
                :4000
            ],
            "tags": ["imported", "asl"],
            "steps": steps,
        }
        if "TimeoutSeconds" in self.source:
            timeout = self.source["TimeoutSeconds"]
            if isinstance(timeout, int) and 0 < timeout <= 365 * 86_400:
                definition["timeoutSeconds"] = timeout
        return definition

    # -- helpers ---------------------------------------------------------------------

    def emit(self, step: dict[str, Any]) -> dict[str, Any]:
        step.setdefault("nextSteps", [])
        if len(self.steps) >= MAX_EMITTED_STEPS:
            raise Unsupported(
                "IMPORT_TOO_MANY_STEPS",
                f"the translation needs more than {MAX_EMITTED_STEPS} steps (subworkflows are "
                "inlined at each call)",
            )
        self.steps.append(step)
        return step

    def literal(self, value: Any, path: str) -> Any:
        """A literal value: deploy-time ``${Name}`` substitutions are made inert."""
        if isinstance(value, str) and "${" in value:
            self.f.warn(
                "ASL_DEFINITION_SUBSTITUTION",
                "${...} in a literal is a deploy-time substitution (DefinitionSubstitutions); "
                "it is kept as <Name>: put the real value in",
                path,
            )
            return _SUBSTITUTION.sub(lambda m: f"<{m.group(1)}>", value)
        if isinstance(value, Mapping):
            return {str(k): self.literal(v, f"{path}/{_tok(k)}") for k, v in value.items()}
        if isinstance(value, list):
            return [self.literal(v, f"{path}/{i}") for i, v in enumerate(value)]
        return value

    def template(
        self, value: Any, base: str, path: str, language: str, result: str | None = None
    ) -> Any:
        """Parameters/ItemSelector/ResultSelector (``key.$``) or JSONata (``{% %}``) -> ours."""
        if isinstance(value, str) and language == "JSONata" and value.strip().startswith("{%"):
            inner = value.strip()[2:-2] if value.strip().endswith("%}") else value
            try:
                return "${" + jsonata(inner, base, result) + "}"
            except Unsupported as exc:
                self.f.unsupported_(exc.code, exc.message, path)
                return "UNSUPPORTED"
        if isinstance(value, Mapping):
            out: dict[str, Any] = {}
            for key, item in value.items():
                key = str(key)
                where = f"{path}/{_tok(key)}"
                if key.endswith(".$") and language != "JSONata":
                    try:
                        text = str(item)
                        cel = (
                            intrinsic(text, base)
                            if text.startswith("States.")
                            else json_path(text, base)
                        )
                        out[key[:-2]] = "${" + cel + "}"
                    except Unsupported as exc:
                        self.f.unsupported_(exc.code, exc.message, where)
                        out[key[:-2]] = "UNSUPPORTED"
                else:
                    out[key] = self.template(item, base, where, language, result)
            return out
        if isinstance(value, list):
            return [
                self.template(v, base, f"{path}/{i}", language, result) for i, v in enumerate(value)
            ]
        return self.literal(value, path)

    def path_expr(self, state: Mapping[str, Any], field: str, base: str, path: str) -> str | None:
        """CEL of InputPath/OutputPath/ItemsPath over ``base``; None for ``null``."""
        if field not in state:
            return base
        value = state[field]
        if value is None:
            return None
        try:
            return json_path(value, base)
        except Unsupported as exc:
            self.f.unsupported_(exc.code, exc.message, f"{path}/{field}")
            return base

    # -- machines and states ---------------------------------------------------------

    def machine(self, machine: Mapping[str, Any], path: str, language: str) -> str:
        states = machine.get("States")
        start = machine.get("StartAt")
        if not isinstance(states, Mapping) or not states or start not in states:
            raise Unsupported(
                "ASL_NOT_STATE_MACHINE", f"{path or '/'}: StartAt must name one of States"
            )
        ids: dict[str, str] = {}
        for name in states:
            if isinstance(states[name], Mapping):
                ids[str(name)] = self.f.new_id(str(name))
        for name, state in states.items():
            if not isinstance(state, Mapping):
                if name != "QueryLanguage":
                    self.f.unsupported_(
                        "ASL_STATE", "a state must be an object", f"{path}/States/{_tok(name)}"
                    )
                elif state == "JSONata":
                    language = "JSONata"
                continue
            self.state(
                str(name),
                state,
                ids,
                f"{path}/States/{_tok(name)}",
                state.get("QueryLanguage", language),
            )
        return ids[str(start)]

    def _next(self, state: Mapping[str, Any], ids: Mapping[str, str], path: str) -> str | None:
        if state.get("End") is True:
            return None
        target = state.get("Next")
        if target in ids:
            return ids[str(target)]
        if state.get("Type") not in ("Choice", "Succeed", "Fail"):
            self.f.unsupported_("ASL_NEXT", f"Next {target!r} names no state", f"{path}/Next")
        return None

    def state(
        self, name: str, state: Mapping[str, Any], ids: Mapping[str, str], path: str, language: str
    ) -> None:
        self.states += 1
        sid = ids[name]
        kind = state.get("Type")
        handler = getattr(self, f"_{str(kind).lower()}", None)
        if handler is None or kind not in (
            "Pass",
            "Task",
            "Choice",
            "Wait",
            "Succeed",
            "Fail",
            "Parallel",
            "Map",
        ):
            self.f.unsupported_("ASL_STATE_TYPE", f"state type {kind!r}", f"{path}/Type")
            self.emit(
                {
                    "id": sid,
                    "type": "transform",
                    "config": {"set": {}, "output": "${prev}"},
                    "nextSteps": _nexts(self._next(state, ids, path)),
                }
            )
            return
        if "Assign" in state:
            self.f.unsupported_(
                "ASL_ASSIGN", "Assign (workflow variables) is not translated", f"{path}/Assign"
            )
        handler(sid, name, state, ids, path, language)

    def finish(
        self,
        sid: str,
        state: Mapping[str, Any],
        result: Any,
        path: str,
        language: str,
        after: str | None,
        kept: str = "prev",
        base: str = "prev",
    ) -> dict[str, Any]:
        """The transform that gives the state's output from ``result`` (a template whose
        ``prev`` is the result) per ResultSelector, ResultPath and OutputPath (or Output)."""
        if language == "JSONata":
            output = state.get("Output")
            if output is None:
                final: Any = result
            else:
                final = self.template(output, kept, f"{path}/Output", language, result="prev")
        else:
            if "ResultSelector" in state:
                result = self.template(
                    state["ResultSelector"], base, f"{path}/ResultSelector", language
                )
            result_path = state.get("ResultPath", "$")
            if result_path is None:
                final = "${" + kept + "}"
            elif result_path == "$":
                final = result
            else:
                self.f.unsupported_(
                    "ASL_RESULT_PATH",
                    f"ResultPath {result_path!r} merges the result into the input; CEL cannot "
                    "add a key to a map, so the result replaces the state instead",
                    f"{path}/ResultPath",
                )
                final = result
            final = self.output_path(final, state, path)
        return self.emit(
            {
                "id": sid,
                "type": "transform",
                "config": {"set": {}, "output": final},
                "nextSteps": _nexts(after),
            }
        )

    def output_path(self, value: Any, state: Mapping[str, Any], path: str) -> Any:
        if "OutputPath" not in state or state["OutputPath"] == "$":
            return value
        if state["OutputPath"] is None:
            return {}
        match = isinstance(value, str) and re.fullmatch(r"\$\{(.*)\}", value, re.DOTALL)
        if match:
            try:
                return "${" + json_path(state["OutputPath"], "(" + match.group(1) + ")") + "}"
            except Unsupported as exc:
                self.f.unsupported_(exc.code, exc.message, f"{path}/OutputPath")
                return value
        self.f.unsupported_(
            "ASL_OUTPUT_PATH", "OutputPath over a constructed object", f"{path}/OutputPath"
        )
        return value

    def effective_input(
        self, state: Mapping[str, Any], path: str, language: str, field: str = "Parameters"
    ) -> Any:
        """InputPath then Parameters (JSONPath) or Arguments (JSONata), over ``prev``."""
        if language == "JSONata":
            if "Arguments" in state:
                return self.template(state["Arguments"], "prev", f"{path}/Arguments", language)
            return "${prev}"
        base = self.path_expr(state, "InputPath", "prev", path)
        if base is None:
            return {}
        if field in state:
            return self.template(state[field], base, f"{path}/{field}", language)
        return "${" + base + "}"

    def on_error(
        self,
        step: dict[str, Any],
        state: Mapping[str, Any],
        ids: Mapping[str, str],
        path: str,
        language: str,
    ) -> None:
        retriers = state.get("Retry") or []
        on_error: dict[str, Any] = {"strategy": "fail"}
        if isinstance(retriers, list) and retriers:
            if len(retriers) > 1:
                self.f.warn(
                    "ASL_RETRY_MULTIPLE", "only the first retrier is translated", f"{path}/Retry/1"
                )
            retrier = retriers[0]
            where = f"{path}/Retry/0"
            errors = retrier.get("ErrorEquals") or []
            retry_on: list[str] | None = []
            for error in errors:
                if error in _ANY_ERROR:
                    retry_on = None
                    break
                if error in _RETRY_CODES and retry_on is not None:
                    retry_on.append(_RETRY_CODES[error])
                else:
                    self.f.warn(
                        "ASL_ERROR_NAME",
                        f"error {error!r} has no equivalent code; every retryable error is retried",
                        f"{where}/ErrorEquals",
                    )
                    retry_on = None
                    break
            attempts = retrier.get("MaxAttempts", 3)
            policy: dict[str, Any] = {
                "maxAttempts": max(1, min(int(attempts) + 1, 100))
                if isinstance(attempts, int)
                else 4,
                "initialDelaySeconds": _num(retrier.get("IntervalSeconds", 1), 0, 86_400),
                "multiplier": _num(retrier.get("BackoffRate", 2.0), 1.0, 10.0),
                "jitter": 1.0 if retrier.get("JitterStrategy") == "FULL" else 0.0,
            }
            if "MaxDelaySeconds" in retrier:
                policy["maxDelaySeconds"] = _num(retrier["MaxDelaySeconds"], 0, 30 * 86_400)
            if retry_on is not None:
                policy["retryOn"] = retry_on or ["NONE"]
            on_error = {"strategy": "retry", "retry": policy}
        catchers = state.get("Catch") or []
        if isinstance(catchers, list) and catchers:
            if len(catchers) > 1:
                self.f.warn(
                    "ASL_CATCH_MULTIPLE", "only the first catcher is translated", f"{path}/Catch/1"
                )
            catcher = catchers[0]
            where = f"{path}/Catch/0"
            target = ids.get(str(catcher.get("Next")))
            if target is None:
                self.f.unsupported_("ASL_NEXT", "Catch Next names no state", f"{where}/Next")
            else:
                if set(catcher.get("ErrorEquals") or []) - _ANY_ERROR:
                    self.f.warn(
                        "ASL_CATCH_ERRORS",
                        "the catcher takes every error, not only those of ErrorEquals",
                        f"{where}/ErrorEquals",
                    )
                error = {"Error": "${prev.error.code}", "Cause": "${prev.error.message}"}
                handler = self.f.new_id(f"{step['id']}_catch")
                if language == "JSONata":
                    output: Any = error
                    if "Output" in catcher:
                        output = self.template(
                            catcher["Output"], "prev.input", f"{where}/Output", language
                        )
                else:
                    result_path = catcher.get("ResultPath", "$")
                    output = error
                    if result_path is None:
                        output = "${prev.input}"
                        self.f.warn(
                            "ASL_CATCH_INPUT",
                            "ResultPath null keeps the step's recorded input (for a task, the "
                            "request it sent), not the state input",
                            f"{where}/ResultPath",
                        )
                    elif result_path != "$":
                        self.f.unsupported_(
                            "ASL_RESULT_PATH",
                            f"Catch ResultPath {result_path!r} merges the error into the input; "
                            "the handler receives {Error, Cause} instead",
                            f"{where}/ResultPath",
                        )
                self.emit(
                    {
                        "id": handler,
                        "type": "transform",
                        "config": {"set": {}, "output": output},
                        "nextSteps": [target],
                    }
                )
                on_error = {**on_error, "strategy": "fallback", "fallbackStep": handler}
        if on_error["strategy"] != "fail":
            step["onError"] = on_error

    def hold(self, sid: str, name: str, step_after: str, path: str = "") -> str:
        """Keep the state document in a variable before a step that outputs its own record."""
        var = "wfState" + re.sub(r"\W", "_", sid)[:40]
        if self.in_map:
            self.f.warn(
                "ASL_MAP_SHARED_STATE",
                "inside a Map iteration the state document is kept in a workflow variable "
                "shared by concurrent iterations; set MaxConcurrency to 1 for exact results",
                path,
            )
        self.emit(
            {
                "id": sid,
                "type": "transform",
                "config": {"set": {var: "${prev}"}, "output": "${prev}"},
                "nextSteps": [step_after],
            }
        )
        return var

    # -- state types -----------------------------------------------------------------

    def _pass(
        self,
        sid: str,
        name: str,
        state: Mapping[str, Any],
        ids: Mapping[str, str],
        path: str,
        language: str,
    ) -> None:
        if "Result" in state and language != "JSONata":
            result: Any = self.literal(state["Result"], f"{path}/Result")
        else:
            result = self.effective_input(state, path, language)
        if language == "JSONata" and "Output" in state:
            final = self.template(state["Output"], "prev", f"{path}/Output", language)
            self.emit(
                {
                    "id": sid,
                    "type": "transform",
                    "config": {"set": {}, "output": final},
                    "nextSteps": _nexts(self._next(state, ids, path)),
                }
            )
            return
        self.finish(sid, state, result, path, language, self._next(state, ids, path))

    def _succeed(
        self,
        sid: str,
        name: str,
        state: Mapping[str, Any],
        ids: Mapping[str, str],
        path: str,
        language: str,
    ) -> None:
        value = self.effective_input(state, path, language, field="__none__")
        self.emit(
            {
                "id": sid,
                "type": "transform",
                "config": {"set": {}, "output": self.output_path(value, state, path)},
            }
        )

    def _fail(
        self,
        sid: str,
        name: str,
        state: Mapping[str, Any],
        ids: Mapping[str, str],
        path: str,
        language: str,
    ) -> None:
        error = str(state.get("Error", "States.Fail"))[:200]
        cause = str(state.get("Cause", ""))[:500]
        self.f.warn(
            "ASL_FAIL",
            "Fail becomes a step that fails with EXPRESSION_ERROR; its message carries Error "
            "and Cause",
            path,
        )
        message = json.dumps(_SUBSTITUTION.sub("", f"{error}: {cause}").replace("'", " "))
        self.emit(
            {
                "id": sid,
                "type": "transform",
                "config": {"set": {}, "output": "${int(" + message + ")}"},
            }
        )

    def _wait(
        self,
        sid: str,
        name: str,
        state: Mapping[str, Any],
        ids: Mapping[str, str],
        path: str,
        language: str,
    ) -> None:
        config: dict[str, Any]
        if "Seconds" in state:
            seconds = state["Seconds"]
            if isinstance(seconds, str) and language == "JSONata":
                config = {"seconds": self.template(seconds, "prev", f"{path}/Seconds", language)}
            else:
                config = {"seconds": _num(seconds, 0, MAX_WAIT)}
        elif "Timestamp" in state:
            stamp = state["Timestamp"]
            config = {"until": self.template(stamp, "prev", f"{path}/Timestamp", language)}
        elif "SecondsPath" in state or "TimestampPath" in state:
            key = "SecondsPath" if "SecondsPath" in state else "TimestampPath"
            try:
                cel = json_path(state[key], "prev")
            except Unsupported as exc:
                self.f.unsupported_(exc.code, exc.message, f"{path}/{key}")
                cel = "0"
            config = {"seconds" if key == "SecondsPath" else "until": "${" + cel + "}"}
        else:
            self.f.unsupported_(
                "ASL_WAIT", "Wait needs Seconds, Timestamp, SecondsPath or TimestampPath", path
            )
            config = {"seconds": 0}
        wait, restore = self.f.new_id(f"{sid}_wait"), self.f.new_id(f"{sid}_out")
        var = self.hold(sid, name, wait, path)
        self.emit({"id": wait, "type": "wait", "config": config, "nextSteps": [restore]})
        value = (
            self.output_path("${vars." + var + "}", state, path)
            if language != "JSONata"
            else "${vars." + var + "}"
        )
        self.emit(
            {
                "id": restore,
                "type": "transform",
                "config": {"set": {}, "output": value},
                "nextSteps": _nexts(self._next(state, ids, path)),
            }
        )

    def _choice(
        self,
        sid: str,
        name: str,
        state: Mapping[str, Any],
        ids: Mapping[str, str],
        path: str,
        language: str,
    ) -> None:
        choices = state.get("Choices")
        if not isinstance(choices, list) or not choices:
            raise Unsupported("ASL_CHOICE", f"{path}: Choice needs Choices")
        branch = self.f.new_id(f"{sid}_choice")
        var = self.hold(sid, name, branch, path)
        base = self.path_expr(state, "InputPath", "vars." + var, path) or "vars." + var
        cases, targets = [], []
        for index, rule in enumerate(choices):
            where = f"{path}/Choices/{index}"
            try:
                if language == "JSONata":
                    condition = rule.get("Condition", "")
                    inner = condition.strip()[2:-2] if isinstance(condition, str) else ""
                    when = jsonata(inner, base)
                else:
                    when = self.rule(rule, base)
            except Unsupported as exc:
                self.f.unsupported_(exc.code, exc.message, where)
                when = "false"
            target = ids.get(str(rule.get("Next")))
            if target is None:
                self.f.unsupported_(
                    "ASL_NEXT", "a choice rule's Next names no state", f"{where}/Next"
                )
                continue
            restore = self.f.new_id(f"{sid}_to_{target}")
            self.emit(
                {
                    "id": restore,
                    "type": "transform",
                    "config": {
                        "set": {},
                        "output": self.output_path("${vars." + var + "}", state, path),
                    },
                    "nextSteps": [target],
                }
            )
            cases.append({"when": when, "next": restore})
            targets.append(restore)
        config: dict[str, Any] = {"cases": cases or [{"when": "false", "next": sid}]}
        if "Default" in state and str(state["Default"]) in ids:
            default = self.f.new_id(f"{sid}_default")
            self.emit(
                {
                    "id": default,
                    "type": "transform",
                    "config": {
                        "set": {},
                        "output": self.output_path("${vars." + var + "}", state, path),
                    },
                    "nextSteps": [ids[str(state["Default"])]],
                }
            )
            config["default"] = default
            targets.append(default)
        self.emit({"id": branch, "type": "branch", "config": config, "nextSteps": targets})

    def rule(self, rule: Mapping[str, Any], base: str, depth: int = 0) -> str:
        if depth > 20:
            raise Unsupported("ASL_CHOICE", "choice rules nested too deeply")
        if "And" in rule or "Or" in rule:
            op = "And" if "And" in rule else "Or"
            parts = [self.rule(r, base, depth + 1) for r in rule[op]]
            return "(" + (" && " if op == "And" else " || ").join(parts) + ")"
        if "Not" in rule:
            return "!(" + self.rule(rule["Not"], base, depth + 1) + ")"
        if "Variable" not in rule:
            raise Unsupported("ASL_CHOICE", "a choice rule needs Variable, And, Or or Not")
        var = json_path(rule["Variable"], base)
        for key, value in rule.items():
            if key in ("Variable", "Next", "Comment"):
                continue
            is_path = key.endswith("Path")
            op_key = key[:-4] if is_path else key
            operand = json_path(value, base) if is_path else json.dumps(value)
            for prefix in ("String", "Numeric", "Boolean", "Timestamp"):
                if op_key.startswith(prefix) and op_key[len(prefix) :] in _COMPARE:
                    op = _COMPARE[op_key[len(prefix) :]]
                    if prefix == "Timestamp":
                        return f"(timestamp({var}) {op} timestamp({operand}))"
                    if prefix == "Numeric":
                        return f"(double({var}) {op} double({operand}))"
                    return f"({var} {op} {operand})"
            if key == "IsPresent":
                present = _has(var)
                return present if value else f"!{present}"
            if key == "IsNull":
                return f"({var} {'==' if value else '!='} null)"
            checks = {"IsString": 'type("")', "IsBoolean": "type(true)", "IsTimestamp": 'type("")'}
            if key in checks:
                test = f"(type({var}) == {checks[key]})"
                return test if value else f"!{test}"
            if key == "IsNumeric":
                test = f"(type({var}) == type(1) || type({var}) == type(1.0))"
                return f"({test})" if value else f"!({test})"
            if key == "StringMatches" and isinstance(value, str):
                regex = "^" + re.escape(value).replace(r"\*", ".*") + "$"
                return f"{var}.matches({json.dumps(regex)})"
            raise Unsupported("ASL_CHOICE", f"comparison {key!r} is not translated")
        raise Unsupported("ASL_CHOICE", "a choice rule needs a comparison")

    def _task(
        self,
        sid: str,
        name: str,
        state: Mapping[str, Any],
        ids: Mapping[str, str],
        path: str,
        language: str,
    ) -> None:
        resource = str(state.get("Resource", ""))
        after = self._next(state, ids, path)
        finish_id = self.f.new_id(f"{sid}_result")
        keep = state.get("ResultPath", "$") is None and language != "JSONata"
        call_id = self.f.new_id(f"{sid}_call") if keep else sid
        kept = "prev"
        result_base = "prev"
        finish_first = finish_id
        if keep:
            kept = "vars." + self.hold(sid, name, call_id, path)
        params = self.effective_input(state, path, language)
        step: dict[str, Any]
        if resource.endswith(".waitForTaskToken"):
            self.f.unsupported_(
                "ASL_RESOURCE",
                f"{resource}: the call that hands out the task token is not made; the step "
                "waits for the event 'task-token' (send it to resume the execution)",
                f"{path}/Resource",
            )
            timeout = state.get("TimeoutSeconds", state.get("HeartbeatSeconds", MAX_WAIT))
            step = {
                "id": call_id,
                "type": "wait_for_event",
                "config": {"event": "task-token", "timeoutSeconds": _num(timeout, 1, MAX_WAIT)},
            }
            result: Any = "${prev.payload}"
            result_base = "prev.payload"
        elif resource.startswith("arn:aws:states:::http:invoke"):
            step = {
                "id": call_id,
                "type": "http",
                "config": self.http_config(params, path, language),
            }
            finish_first = self.f.new_id(f"{sid}_response")
            response = {
                "StatusCode": "${prev.status}",
                "ResponseBody": "${prev.body}",
                "Headers": "${prev.headers}",
            }
            self.emit(
                {
                    "id": finish_first,
                    "type": "transform",
                    "config": {"set": {}, "output": response},
                    "nextSteps": [finish_id],
                }
            )
            result = "${prev}"
        else:
            self.f.unsupported_(
                "ASL_RESOURCE",
                f"resource {_SUBSTITUTION.sub('<substitution>', resource)[:200]!r} has no "
                "equivalent: a placeholder http step stands in its place (point it at a service "
                "that does the same work)",
                f"{path}/Resource",
            )
            target = (
                re.sub(r"[^A-Za-z0-9:._-]", "_", _SUBSTITUTION.sub("", resource))[:200] or "task"
            )
            step = {
                "id": call_id,
                "type": "http",
                "name": f"PLACEHOLDER for {target}"[:200],
                "config": {
                    "method": "POST",
                    "url": "https://placeholder.invalid/" + target,
                    "body": params,
                },
            }
            result = "${prev.body}"
            result_base = "prev.body"
        if "TimeoutSeconds" in state and step["type"] == "http":
            step["timeoutSeconds"] = _num(state["TimeoutSeconds"], 1, 86_400)
        step["nextSteps"] = [finish_first]
        self.emit(step)
        self.on_error(step, state, ids, path, language)
        self.finish(finish_id, state, result, path, language, after, kept, result_base)

    def http_config(self, params: Any, path: str, language: str) -> dict[str, Any]:
        if not isinstance(params, Mapping):
            self.f.unsupported_("ASL_HTTP", "http:invoke needs Parameters/Arguments", path)
            return {"url": "https://placeholder.invalid/"}
        config: dict[str, Any] = {
            "method": str(params.get("Method", "GET")).upper(),
            "url": params.get("ApiEndpoint", "https://placeholder.invalid/"),
        }
        if config["method"] not in ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"):
            self.f.unsupported_("ASL_HTTP", f"method {config['method']!r}", path)
            config["method"] = "GET"
        if isinstance(params.get("Headers"), Mapping):
            config["headers"] = {str(k): str(v) for k, v in params["Headers"].items()}
        if isinstance(params.get("QueryParameters"), Mapping):
            config["query"] = params["QueryParameters"]
        if "RequestBody" in params:
            config["body"] = params["RequestBody"]
        if "Authentication" in params:
            self.f.warn(
                "ASL_HTTP_AUTH",
                "Authentication (an EventBridge connection) is not translated: declare the "
                "credential in the step's secrets and send it in a header",
                path,
            )
        for key in params:
            if key not in (
                "Method",
                "ApiEndpoint",
                "Headers",
                "QueryParameters",
                "RequestBody",
                "Authentication",
            ):
                self.f.unsupported_(
                    "ASL_HTTP", f"http:invoke parameter {key!r} is not translated", path
                )
        return config

    def _parallel(
        self,
        sid: str,
        name: str,
        state: Mapping[str, Any],
        ids: Mapping[str, str],
        path: str,
        language: str,
    ) -> None:
        branches = state.get("Branches")
        if not isinstance(branches, list) or not branches:
            raise Unsupported("ASL_PARALLEL", f"{path}: Parallel needs Branches")
        if "InputPath" in state or "Parameters" in state or "Arguments" in state:
            self.f.unsupported_(
                "ASL_PARALLEL_INPUT",
                "InputPath/Parameters of a Parallel state are not applied",
                path,
            )
        config = []
        for index, machine in enumerate(branches):
            start = self.machine(
                machine, f"{path}/Branches/{index}", machine.get("QueryLanguage", language)
            )
            config.append({"name": f"b{index}", "start": start})
        finish_id = self.f.new_id(f"{sid}_result")
        step = self.emit(
            {
                "id": sid,
                "type": "parallel",
                "config": {"branches": config},
                "nextSteps": [finish_id],
            }
        )
        self.on_error(step, state, ids, path, language)
        listed = "[" + ", ".join(f"prev.b{i}" for i in range(len(config))) + "]"
        after = self._next(state, ids, path)
        self.finish(finish_id, state, "${" + listed + "}", path, language, after, base=listed)

    def _map(
        self,
        sid: str,
        name: str,
        state: Mapping[str, Any],
        ids: Mapping[str, str],
        path: str,
        language: str,
    ) -> None:
        processor = state.get("ItemProcessor") or state.get("Iterator")
        if not isinstance(processor, Mapping):
            raise Unsupported("ASL_MAP", f"{path}: Map needs ItemProcessor")
        config = processor.get("ProcessorConfig") or {}
        if config.get("Mode") == "DISTRIBUTED" or "ItemReader" in state or "ResultWriter" in state:
            self.f.unsupported_(
                "ASL_DISTRIBUTED_MAP",
                "a distributed Map (ItemReader, ResultWriter, child executions) is run as an "
                "inline map over the input list",
                path,
            )
        for key in ("ItemBatcher", "ToleratedFailurePercentage", "ToleratedFailureCount", "Label"):
            if key in state:
                self.f.unsupported_("ASL_MAP_FIELD", f"{key} is not translated", f"{path}/{key}")
        if language == "JSONata":
            items_value = state.get("Items", "{% $states.input %}")
            items = self.template(items_value, "prev", f"{path}/Items", language)
            items_cel = items[2:-1] if isinstance(items, str) and items.startswith("${") else "prev"
        else:
            base = self.path_expr(state, "InputPath", "prev", path) or "prev"
            items_cel = self.path_expr(state, "ItemsPath", base, path) or base
        self.in_map += 1
        try:
            start = self.machine(
                processor,
                f"{path}/{'ItemProcessor' if 'ItemProcessor' in state else 'Iterator'}",
                processor.get("QueryLanguage", language),
            )
        finally:
            self.in_map -= 1
        selector_key = next((k for k in ("ItemSelector", "Parameters") if k in state), None)
        if selector_key:
            select = self.f.new_id(f"{sid}_item")
            value = self.template(state[selector_key], "prev", f"{path}/{selector_key}", language)
            if "${prev" in json.dumps(value):
                self.f.unsupported_(
                    "ASL_ITEM_SELECTOR",
                    "ItemSelector references the Map's input ($.): only $$.Map.Item.Value and "
                    "$$.Map.Item.Index are visible to an iteration",
                    f"{path}/{selector_key}",
                )
            self.emit(
                {
                    "id": select,
                    "type": "transform",
                    "config": {"set": {}, "output": value},
                    "nextSteps": [start],
                }
            )
            start = select
        concurrency = state.get("MaxConcurrency", 0)
        if not isinstance(concurrency, int) or concurrency <= 0 or concurrency > 100:
            self.f.warn(
                "ASL_MAX_CONCURRENCY",
                "MaxConcurrency 0 (unlimited) or above 100 becomes 100",
                f"{path}/MaxConcurrency",
            )
            concurrency = 100
        finish_id = self.f.new_id(f"{sid}_result")
        step = self.emit(
            {
                "id": sid,
                "type": "map",
                "config": {"items": items_cel, "start": start, "concurrency": concurrency},
                "nextSteps": [finish_id],
            }
        )
        self.on_error(step, state, ids, path, language)
        self.finish(finish_id, state, "${prev}", path, language, self._next(state, ids, path))


def _has(cel: str) -> str:
    """A presence test for a field path (``has(prev.a.b)``); an index is tested by size."""
    if re.fullmatch(r"[A-Za-z_][\w.]*\.[A-Za-z_]\w*", cel):
        return f"has({cel})"
    raise Unsupported("ASL_CHOICE", f"IsPresent on {cel!r} is not translated")


def _num(value: Any, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return low
    return max(low, min(float(value), high))


def _nexts(target: str | None) -> list[str]:
    return [target] if target else []


def _tok(value: Any) -> str:
    return pointer(value)[1:]
