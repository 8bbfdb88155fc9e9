"""Google Cloud Workflows (YAML/JSON) -> our definition.

The source's steps become a flat graph of our steps: ``assign`` -> transform,
``call: http.*`` -> http (plus a transform giving the result Cloud Workflows' shape
``{body, code, headers}``), ``switch`` -> branch, ``for`` -> a counted loop of
transform/branch steps (sequential, variables shared like the source), ``parallel``
-> parallel (branches) or map (``for``), ``try/retry/except`` -> ``onError`` of the
steps inside the try, ``sys.sleep`` -> wait, ``events.await_callback`` ->
wait_for_event, subworkflow calls -> the subworkflow's steps inlined (variables
renamed), ``return`` -> the execution result (``vars.wfResult``).
Variables live in ``vars``; the main workflow's parameter is the execution ``input``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from shared.importers.gcw_expr import expression_text, is_expression, to_cel
from shared.importers.result import MAX_EMITTED_STEPS, Collector, Unsupported, pointer

RESULT_VAR = "wfResult"
RAISED_VAR = "wfRaised"
END = "__end__"
MAX_INLINE_DEPTH = 8
MAX_LOOP_VISITS = 10_000
HTTP_METHODS = {"get": "GET", "post": "POST", "put": "PUT", "patch": "PATCH", "delete": "DELETE"}
_RETRY_HTTP = ["HTTP_429", "HTTP_502", "HTTP_503", "HTTP_504", "HTTP_TIMEOUT", "HTTP_UNREACHABLE"]
_RETRY_HTTP_NON_IDEMPOTENT = ["HTTP_429", "HTTP_503"]
_STEP_KEYS = {"assign", "call", "switch", "for", "parallel", "try", "raise", "return", "steps"}
_HTTP_STATUSES = (
    400,
    401,
    403,
    404,
    405,
    408,
    409,
    410,
    412,
    415,
    422,
    425,
    429,
    500,
    501,
    502,
    503,
    504,
)
_STATUS_OF = "".join(f"prev.error.code == 'HTTP_{n}' ? {n} : " for n in _HTTP_STATUSES)
_IS_HTTP = "prev.error.code in [" + ", ".join(f"'HTTP_{n}'" for n in _HTTP_STATUSES) + "]"
# one map literal only, closing the template: ``${...}`` ends at a ``}`` not followed by ``}``
_ERROR_BINDING = (
    "${prev.error.code == 'EXPRESSION_ERROR' && '"
    + RAISED_VAR
    + "' in vars ? vars."
    + RAISED_VAR
    + " : {'message': prev.error.message, 'code': "
    + _STATUS_OF
    + "prev.error.code, 'tags': "
    + _IS_HTTP
    + " ? ['HttpError'] : prev.error.code == "
    "'HTTP_TIMEOUT' ? ['TimeoutError'] : prev.error.code in ['HTTP_UNREACHABLE', 'HTTP_DNS'] "
    "? ['ConnectionError'] : [prev.error.code]}}"
)


@dataclass
class _Ctx:
    after: str | None
    """Where the end of the current list goes (None: the end of the scope)."""
    labels: dict[str, str] = field(default_factory=dict)
    scope: dict[str, str] = field(default_factory=dict)
    prefix: str = ""
    """Prefix of variable names (an inlined subworkflow's locals)."""
    break_to: str | None = None
    continue_to: str | None = None
    in_loop: bool = False
    return_var: str | None = RESULT_VAR
    return_to: str | None = None
    in_body: bool = False
    """Inside a parallel branch or a parallel for (a body of ours)."""
    calls: tuple[str, ...] = ()


class GcwTranslator:
    def __init__(self, source: Any, name: str | None, findings: Collector) -> None:
        self.source = source
        self.name = name
        self.f = findings
        self.steps: list[dict[str, Any]] = []
        self.aliases: dict[str, str | None] = {}
        self.subworkflows: dict[str, Any] = {}
        self.loops = 0
        self.body = 0
        """The body (parallel branch or loop) being compiled: 0 is the main scope."""
        self.bodies = 0
        self.body_of: dict[str, int] = {}

    # -- entry ---------------------------------------------------------------------------

    def translate(self) -> dict[str, Any]:
        source = self.source
        if isinstance(source, list):
            main: Any = {"steps": source}
            main_path = ""
            steps_path = ""
        elif isinstance(source, Mapping) and "main" in source:
            main = source["main"]
            main_path = "/main"
            steps_path = "/main/steps"
            self.subworkflows = {k: v for k, v in source.items() if k != "main"}
        elif isinstance(source, Mapping):
            raise Unsupported("GCW_NO_MAIN", "a Cloud Workflows document needs a 'main' block")
        else:
            raise Unsupported("GCW_NOT_WORKFLOW", "not a Cloud Workflows document")
        if not isinstance(main, Mapping) or not isinstance(main.get("steps"), list):
            raise Unsupported("GCW_NO_STEPS", "'main' needs a list of steps")
        scope: dict[str, str] = {}
        params = main.get("params") or []
        if isinstance(params, list) and params:
            if len(params) > 1 or not isinstance(params[0], str):
                self.f.warn(
                    "GCW_MAIN_PARAMS",
                    "the main workflow takes one parameter (the execution argument); only "
                    "the first is mapped to the execution input",
                    f"{main_path}/params",
                )
            if isinstance(params[0], str):
                scope[params[0]] = "input"
        entry = self.compile_list(main["steps"], steps_path, _Ctx(after=None, scope=scope))
        self._resolve_aliases()
        if entry is not None:
            entry = self._target(entry)
        ordered = self._ordered(entry)
        definition: dict[str, Any] = {
            "name": self.name or "imported-workflow",
            "description": "Imported from Google Cloud Workflows",
            "tags": ["imported", "gcw"],
            "steps": ordered
            or [{"id": "empty", "type": "transform", "config": {"set": {}}, "nextSteps": []}],
            "output": "${'" + RESULT_VAR + "' in vars ? vars." + RESULT_VAR + " : null}",
        }
        return definition

    def _ordered(self, entry: str | None) -> list[dict[str, Any]]:
        if entry is None:
            return self.steps
        first = [s for s in self.steps if s["id"] == entry]
        return first + [s for s in self.steps if s["id"] != entry]

    # -- helpers -------------------------------------------------------------------------

    def emit(self, step: dict[str, Any]) -> dict[str, Any]:
        step.setdefault("nextSteps", [])
        if len(self.steps) >= MAX_EMITTED_STEPS:
            raise Unsupported(
                "IMPORT_TOO_MANY_STEPS",
                f"the translation needs more than {MAX_EMITTED_STEPS} steps (subworkflows are "
                "inlined at each call)",
            )
        self.steps.append(step)
        self.body_of[step["id"]] = self.body
        return step

    def noop(self, hint: str, after: str | None) -> str:
        sid = self.f.new_id(hint)
        self.emit(
            {"id": sid, "type": "transform", "config": {"set": {}}, "nextSteps": _nexts(after)}
        )
        return sid

    def value(self, value: Any, path: str, ctx: _Ctx) -> Any:
        """A source value with every ``${...}`` translated into our template form."""
        if isinstance(value, str):
            if is_expression(value):
                return "${" + self.cel(value, path, ctx) + "}"
            if "${" in value:
                self.f.unsupported_(
                    "GCW_PARTIAL_EXPRESSION",
                    "'${' inside a longer string is literal text in Cloud Workflows but a "
                    "template in ours; the string was left out",
                    path,
                )
                return "UNSUPPORTED"
            return value
        if isinstance(value, Mapping):
            out = {}
            for key, item in value.items():
                if is_expression(str(key)):
                    self.f.unsupported_(
                        "GCW_EXPRESSION_KEY", "a map key cannot be an expression", path
                    )
                    continue
                out[str(key)] = self.value(item, f"{path}/{_tok(key)}", ctx)
            return out
        if isinstance(value, list):
            return [self.value(item, f"{path}/{i}", ctx) for i, item in enumerate(value)]
        return value

    def cel(self, value: Any, path: str, ctx: _Ctx) -> str:
        """The CEL text of a source expression or literal (for conditions and items)."""
        if isinstance(value, list):
            items = [self.cel(item, f"{path}/{i}", ctx) for i, item in enumerate(value)]
            return "[" + ", ".join(items) + "]"
        if isinstance(value, str) and not is_expression(value) and "${" not in value:
            return json.dumps(value, ensure_ascii=False)
        if value is None:
            return "null"
        if not isinstance(value, str) or not is_expression(value):
            if isinstance(value, bool):
                return "true" if value else "false"
            if isinstance(value, (int, float)):
                return repr(value)
            self.f.unsupported_("GCW_EXPRESSION", f"expected an expression, got {value!r}", path)
            return "false"
        scope = dict(ctx.scope)
        try:
            return _prefixed(to_cel(expression_text(value), scope), ctx.prefix)
        except Unsupported as exc:
            self.f.unsupported_(exc.code, exc.message, path)
            return "false"

    def resolve_next(self, target: Any, path: str, ctx: _Ctx) -> str | None:
        if target == "end":
            if ctx.return_to is not None or ctx.return_var != RESULT_VAR:
                return ctx.return_to  # ends the inlined subworkflow (returns null)
            return None
        if target == "break":
            if ctx.break_to is None and not ctx.in_loop:
                self.f.unsupported_("GCW_BREAK", "'break' outside a sequential for", path)
            return ctx.break_to
        if target == "continue":
            if not ctx.in_loop:
                self.f.unsupported_("GCW_CONTINUE", "'continue' outside a sequential for", path)
            return ctx.continue_to
        if isinstance(target, str) and target in ctx.labels:
            return ctx.labels[target]
        self.f.unsupported_("GCW_NEXT_UNKNOWN", f"next step {target!r} is not defined", path)
        return ctx.after

    def _target(self, sid: str | None) -> str | None:
        seen = set()
        while sid is not None and sid in self.aliases and sid not in seen:
            seen.add(sid)
            sid = self.aliases[sid]
        return sid

    def _resolve_aliases(self) -> None:
        """Replace ids that stand for another step (nested ``steps``) by that step."""
        ends: dict[str, str] = {}

        def fix(sid: str) -> str:
            target = self._target(sid)
            if target is None:
                if sid not in ends:
                    ends[sid] = self.f.new_id(f"{sid}_end")
                return ends[sid]
            return target

        for step in self.steps:
            step["nextSteps"] = list(dict.fromkeys(fix(s) for s in step["nextSteps"]))
            config = step["config"]
            if step["type"] == "branch":
                for case in config["cases"]:
                    case["next"] = fix(case["next"])
                if config.get("default"):
                    config["default"] = fix(config["default"])
            if step["type"] in ("map",):
                config["start"] = fix(config["start"])
            if step["type"] == "parallel":
                for branch in config["branches"]:
                    branch["start"] = fix(branch["start"])
            fallback = step.get("onError", {}).get("fallbackStep")
            if fallback:
                step["onError"]["fallbackStep"] = fix(fallback)
        for end in ends.values():
            self.steps.append(
                {"id": end, "type": "transform", "config": {"set": {}}, "nextSteps": []}
            )

    # -- lists and steps -----------------------------------------------------------------

    def compile_list(self, items: Any, path: str, ctx: _Ctx) -> str | None:
        """Compile a list of named steps; return the id of its first step."""
        if not isinstance(items, list) or not items:
            self.f.unsupported_("GCW_STEPS", "'steps' must be a non-empty list", path)
            return ctx.after
        named: list[tuple[str, Any, str]] = []
        labels = dict(ctx.labels)
        for index, item in enumerate(items):
            if not isinstance(item, Mapping) or len(item) != 1:
                self.f.unsupported_(
                    "GCW_STEP_SHAPE", "a step is a map with exactly one name", f"{path}/{index}"
                )
                continue
            ((label, body),) = item.items()
            sid = self.f.new_id(ctx.prefix + str(label))
            labels[str(label)] = sid
            named.append((sid, body, f"{path}/{index}/{_tok(label)}"))
        inner = replace(ctx, labels=labels)
        for index, (sid, body, step_path) in enumerate(named):
            cont = named[index + 1][0] if index + 1 < len(named) else ctx.after
            self.compile_step(sid, body, step_path, cont, inner)
        return named[0][0] if named else ctx.after

    def compile_step(self, sid: str, body: Any, path: str, cont: str | None, ctx: _Ctx) -> None:
        if not isinstance(body, Mapping):
            self.f.unsupported_("GCW_STEP_SHAPE", "a step's body must be a map", path)
            self.aliases[sid] = cont
            return
        if "next" in body:
            cont = self.resolve_next(body["next"], f"{path}/next", ctx)
        kinds = [k for k in body if k in _STEP_KEYS]
        unknown = [
            k for k in body if k not in _STEP_KEYS | {"next", "args", "result", "retry", "except"}
        ]
        for key in unknown:
            self.f.unsupported_("GCW_STEP_FIELD", f"step field {key!r} is not translated", path)
        if not kinds:
            self.aliases[sid] = cont  # a step with only `next`
            return
        kind = kinds[0]
        if len(kinds) > 1 and kinds != ["assign"]:
            self.f.unsupported_(
                "GCW_STEP_SHAPE", f"step combines {', '.join(kinds)}; only {kind} kept", path
            )
        handler = getattr(self, f"_{kind}")
        handler(sid, body, path, cont, ctx)

    # -- step kinds ----------------------------------------------------------------------

    def _assign(
        self, sid: str, body: Mapping[str, Any], path: str, cont: str | None, ctx: _Ctx
    ) -> None:
        entries = body["assign"]
        if not isinstance(entries, list):
            self.f.unsupported_("GCW_ASSIGN", "'assign' must be a list", f"{path}/assign")
            self.aliases[sid] = cont
            return
        groups: list[dict[str, Any]] = [{}]
        for index, entry in enumerate(entries):
            where = f"{path}/assign/{index}"
            if not isinstance(entry, Mapping) or len(entry) != 1:
                self.f.unsupported_("GCW_ASSIGN", "an assignment is a one-entry map", where)
                continue
            ((target, value),) = entry.items()
            target = str(target)
            if not target.isidentifier():
                self.f.unsupported_(
                    "GCW_ASSIGN_PATH",
                    f"assigning into {target!r} (a map key or list index) has no equivalent: "
                    "our transform sets whole variables",
                    where,
                )
                continue
            name = ctx.prefix + target
            if name in groups[-1]:
                groups.append({})
            groups[-1][name] = self.value(value, f"{where}/{_tok(target)}", ctx)
        ids = [sid] + [self.f.new_id(f"{sid}_{i}") for i in range(1, len(groups))]
        for index, group in enumerate(groups):
            after = ids[index + 1] if index + 1 < len(ids) else cont
            self.emit(
                {
                    "id": ids[index],
                    "type": "transform",
                    "config": {"set": group},
                    "nextSteps": _nexts(after),
                }
            )

    def _steps(
        self, sid: str, body: Mapping[str, Any], path: str, cont: str | None, ctx: _Ctx
    ) -> None:
        self.aliases[sid] = self.compile_list(
            body["steps"], f"{path}/steps", replace(ctx, after=cont)
        )

    def _return(
        self, sid: str, body: Mapping[str, Any], path: str, cont: str | None, ctx: _Ctx
    ) -> None:
        if ctx.in_body:
            self.f.unsupported_(
                "GCW_RETURN_IN_PARALLEL",
                "'return' inside a parallel branch or loop has no equivalent (a body of ours "
                "cannot end the execution); it sets the result and ends the branch",
                f"{path}/return",
            )
        value = self.value(body["return"], f"{path}/return", ctx)
        config: dict[str, Any] = {"set": {ctx.return_var: value}} if ctx.return_var else {"set": {}}
        self.emit(
            {"id": sid, "type": "transform", "config": config, "nextSteps": _nexts(ctx.return_to)}
        )

    def _raise(
        self, sid: str, body: Mapping[str, Any], path: str, cont: str | None, ctx: _Ctx
    ) -> None:
        self.f.warn(
            "GCW_RAISE",
            "raise becomes a step that fails with EXPRESSION_ERROR; the raised value is kept "
            f"in vars.{RAISED_VAR} (an except block receives it as its error variable)",
            f"{path}/raise",
        )
        fail = self.f.new_id(f"{sid}_fail")
        self.emit(
            {
                "id": sid,
                "type": "transform",
                "config": {"set": {RAISED_VAR: self.value(body["raise"], f"{path}/raise", ctx)}},
                "nextSteps": [fail],
            }
        )
        self.emit(
            {
                "id": fail,
                "type": "transform",
                "config": {
                    "set": {},
                    "output": "${int('raised error, see vars." + RAISED_VAR + "')}",
                },
            }
        )

    def _switch(
        self, sid: str, body: Mapping[str, Any], path: str, cont: str | None, ctx: _Ctx
    ) -> None:
        conditions = body["switch"]
        if not isinstance(conditions, list) or not conditions:
            self.f.unsupported_(
                "GCW_SWITCH", "'switch' needs a list of conditions", f"{path}/switch"
            )
            self.aliases[sid] = cont
            return
        cases = []
        targets: list[str] = []
        for index, case in enumerate(conditions):
            where = f"{path}/switch/{index}"
            if not isinstance(case, Mapping) or "condition" not in case:
                self.f.unsupported_("GCW_SWITCH", "a switch case needs a condition", where)
                continue
            when = self.cel(case["condition"], f"{where}/condition", ctx)
            after = (
                self.resolve_next(case["next"], f"{where}/next", ctx) if "next" in case else cont
            )
            rest = {k: v for k, v in case.items() if k not in ("condition", "next")}
            if not rest:
                target = after
            else:
                target = self.f.new_id(f"{sid}_case{index}")
                self.compile_step(target, rest, where, after, ctx)
            target = target or self.noop(f"{sid}_end", None)
            cases.append({"when": when, "next": target})
            targets.append(target)
        default = cont or self.noop(f"{sid}_end", None)
        self.emit(
            {
                "id": sid,
                "type": "branch",
                "config": {"cases": cases, "default": default},
                "nextSteps": list(dict.fromkeys([*targets, default])),
            }
        )

    def _call(
        self, sid: str, body: Mapping[str, Any], path: str, cont: str | None, ctx: _Ctx
    ) -> None:
        function = body["call"]
        args = body.get("args") or {}
        result = body.get("result")
        if not isinstance(args, Mapping):
            self.f.unsupported_("GCW_CALL_ARGS", "'args' must be a map", f"{path}/args")
            args = {}
        if result is not None and not (isinstance(result, str) and result.isidentifier()):
            self.f.unsupported_(
                "GCW_RESULT", f"result {result!r} is not a variable name", f"{path}/result"
            )
            result = None
        out = ctx.prefix + result if result else None
        if not isinstance(function, str):
            self.f.unsupported_("GCW_CALL", "'call' must name a function", f"{path}/call")
            self.aliases[sid] = cont
        elif function.startswith("http.") and (
            function[5:] in HTTP_METHODS or function == "http.request"
        ):
            self._http(sid, function, args, out, path, cont, ctx)
        elif function == "sys.sleep":
            seconds = self.value(args.get("seconds", 0), f"{path}/args/seconds", ctx)
            self.emit(
                {
                    "id": sid,
                    "type": "wait",
                    "config": {"seconds": seconds},
                    "nextSteps": _nexts(cont),
                }
            )
        elif function == "sys.log":
            data = args.get("data", args.get("text", args.get("json")))
            self.emit(
                {
                    "id": sid,
                    "type": "transform",
                    "config": {"set": {}, "output": self.value(data, f"{path}/args", ctx)},
                    "nextSteps": _nexts(cont),
                }
            )
        elif function == "events.create_callback_endpoint":
            self.f.warn(
                "GCW_CALLBACK_ENDPOINT",
                "our executions receive callbacks on POST /api/v1/executions/{id}/events/"
                "callback; the endpoint URL is not known at import time (url is empty)",
                f"{path}/call",
            )
            value = {"url": "", "event": "callback"}
            self.emit(
                {
                    "id": sid,
                    "type": "transform",
                    "config": {"set": {out: value} if out else {}, "output": value},
                    "nextSteps": _nexts(cont),
                }
            )
        elif function == "events.await_callback":
            timeout = args.get("timeout", 43200)
            if not isinstance(timeout, (int, float)) or not 0 < timeout <= 365 * 86400:
                self.f.unsupported_(
                    "GCW_CALLBACK_TIMEOUT",
                    "the timeout must be a number of seconds",
                    f"{path}/args/timeout",
                )
                timeout = 43200
            step: dict[str, Any] = {
                "id": sid,
                "type": "wait_for_event",
                "config": {"event": "callback", "timeoutSeconds": timeout},
                "nextSteps": _nexts(cont),
            }
            if out:
                # Cloud Workflows' callback result is {http_request: {body, ...}}
                step["nextSteps"] = [self.f.new_id(f"{sid}_result")]
                self.emit(step)
                self.emit(
                    {
                        "id": step["nextSteps"][0],
                        "type": "transform",
                        "config": {"set": {out: {"http_request": {"body": "${prev.payload}"}}}},
                        "nextSteps": _nexts(cont),
                    }
                )
                return
            self.emit(step)
        elif function in self.subworkflows:
            self._inline(sid, function, args, out, path, cont, ctx)
        else:
            self.f.unsupported_(
                "GCW_CONNECTOR",
                f"{function} (a connector or standard library call) has no equivalent; a "
                "placeholder http step stands in its place: point it at a service",
                f"{path}/call",
            )
            self.emit(
                {
                    "id": sid,
                    "type": "http",
                    "name": f"PLACEHOLDER for {function}"[:200],
                    "config": {
                        "method": "POST",
                        "url": "https://placeholder.invalid/" + function[:200],
                        "body": self.value(dict(args), f"{path}/args", ctx),
                    },
                    "outputVar": out,
                    "nextSteps": _nexts(cont),
                }
                if out
                else {
                    "id": sid,
                    "type": "http",
                    "name": f"PLACEHOLDER for {function}"[:200],
                    "config": {
                        "method": "POST",
                        "url": "https://placeholder.invalid/" + function[:200],
                        "body": self.value(dict(args), f"{path}/args", ctx),
                    },
                    "nextSteps": _nexts(cont),
                }
            )

    def _http(
        self,
        sid: str,
        function: str,
        args: Mapping[str, Any],
        out: str | None,
        path: str,
        cont: str | None,
        ctx: _Ctx,
    ) -> None:
        where = f"{path}/args"
        method = HTTP_METHODS.get(function[5:])
        if method is None:
            raw = args.get("method", "GET")
            method = str(raw).upper()
            if method not in ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"):
                self.f.unsupported_("GCW_HTTP_METHOD", f"method {raw!r}", f"{where}/method")
                method = "GET"
        if "url" not in args:
            self.f.unsupported_("GCW_HTTP_URL", "an http call needs a url", where)
        config: dict[str, Any] = {
            "method": method,
            "url": self.value(args.get("url", "https://placeholder.invalid"), f"{where}/url", ctx),
        }
        if "headers" in args:
            headers = self.value(args["headers"], f"{where}/headers", ctx)
            config["headers"] = (
                {str(k): v if isinstance(v, str) else str(v) for k, v in headers.items()}
                if isinstance(headers, Mapping)
                else {}
            )
        if "query" in args:
            config["query"] = self.value(args["query"], f"{where}/query", ctx)
        if "body" in args:
            config["body"] = self.value(args["body"], f"{where}/body", ctx)
        if "timeout" in args:
            timeout = args["timeout"]
            if isinstance(timeout, (int, float)) and 0 < timeout <= 900:
                config["timeoutSeconds"] = timeout
            else:
                self.f.warn(
                    "GCW_HTTP_TIMEOUT",
                    "timeout above 900 s (our limit) or not a number; 900 used",
                    f"{where}/timeout",
                )
                config["timeoutSeconds"] = 900
        if "auth" in args:
            self.f.warn(
                "GCW_HTTP_AUTH",
                "auth (OIDC/OAuth2 with the workflow's service account) is not translated: "
                "declare the credential in the step's secrets and send it in a header",
                f"{where}/auth",
            )
        for key in args:
            if key not in ("url", "method", "headers", "query", "body", "timeout", "auth"):
                self.f.unsupported_(
                    "GCW_HTTP_ARG",
                    f"http argument {key!r} is not translated",
                    f"{where}/{_tok(key)}",
                )
        step: dict[str, Any] = {
            "id": sid,
            "type": "http",
            "config": config,
            "nextSteps": _nexts(cont),
        }
        self.emit(step)
        if out:
            shape = self.f.new_id(f"{sid}_result")
            step["nextSteps"] = [shape]
            self.emit(
                {
                    "id": shape,
                    "type": "transform",
                    "config": {
                        "set": {
                            out: {
                                "body": "${prev.body}",
                                "code": "${prev.status}",
                                "headers": "${prev.headers}",
                            }
                        }
                    },
                    "nextSteps": _nexts(cont),
                }
            )

    def _inline(
        self,
        sid: str,
        function: str,
        args: Mapping[str, Any],
        out: str | None,
        path: str,
        cont: str | None,
        ctx: _Ctx,
    ) -> None:
        sub = self.subworkflows[function]
        if function in ctx.calls or len(ctx.calls) >= MAX_INLINE_DEPTH:
            self.f.unsupported_(
                "GCW_RECURSION",
                f"{function} calls itself (or nests deeper than {MAX_INLINE_DEPTH}); "
                "subworkflows are inlined",
                f"{path}/call",
            )
            self.aliases[sid] = cont
            return
        if not isinstance(sub, Mapping) or not isinstance(sub.get("steps"), list):
            self.f.unsupported_("GCW_SUBWORKFLOW", f"{function} has no steps", f"/{_tok(function)}")
            self.aliases[sid] = cont
            return
        self.loops += 1
        prefix = f"{function}{self.loops}_"
        values: dict[str, Any] = {}
        for index, param in enumerate(sub.get("params") or []):
            if isinstance(param, Mapping) and len(param) == 1:
                ((pname, default),) = param.items()
                has_default = True
            else:
                pname, default, has_default = param, None, False
            pname = str(pname)
            if pname in args:
                values[prefix + pname] = self.value(args[pname], f"{path}/args/{_tok(pname)}", ctx)
            elif has_default:
                values[prefix + pname] = self.value(
                    default, f"/{_tok(function)}/params/{index}", ctx
                )
            else:
                self.f.unsupported_(
                    "GCW_MISSING_ARG",
                    f"argument {pname!r} of {function} is missing",
                    f"{path}/args",
                )
        sub_ctx = _Ctx(
            after=cont,
            prefix=prefix,
            return_var=out,
            return_to=cont,
            in_body=ctx.in_body,
            calls=(*ctx.calls, function),
        )
        entry = self.compile_list(sub["steps"], f"/{_tok(function)}/steps", sub_ctx)
        if out:
            values.setdefault(out, None)  # a subworkflow that ends without return gives null
        self.emit(
            {
                "id": sid,
                "type": "transform",
                "name": f"call {function}",
                "config": {"set": values},
                "nextSteps": _nexts(entry),
            }
        )

    def _for(
        self, sid: str, body: Mapping[str, Any], path: str, cont: str | None, ctx: _Ctx
    ) -> None:
        spec = body["for"]
        where = f"{path}/for"
        if not isinstance(spec, Mapping) or "steps" not in spec:
            self.f.unsupported_("GCW_FOR", "'for' needs value, in or range, and steps", where)
            self.aliases[sid] = cont
            return
        self.loops += 1
        n = self.loops
        counter, items, end = f"wfLoop{n}I", f"wfLoop{n}Items", f"wfLoop{n}End"
        value_name = ctx.prefix + str(spec.get("value", "value"))
        index_name = ctx.prefix + str(spec["index"]) if spec.get("index") else None
        check, bind, step_up = (self.f.new_id(f"{sid}_{k}") for k in ("check", "bind", "next"))
        inner_scope = {
            k: v for k, v in ctx.scope.items() if k not in (spec.get("value"), spec.get("index"))
        }
        inner = replace(
            ctx, after=step_up, break_to=cont, continue_to=step_up, in_loop=True, scope=inner_scope
        )
        if "range" in spec:
            bounds = spec["range"]
            if is_expression(bounds):
                pair = self.cel(bounds, f"{where}/range", ctx)
                start, last = f"${{({pair})[0]}}", f"${{({pair})[1]}}"
            else:
                if not isinstance(bounds, list) or len(bounds) != 2:
                    self.f.unsupported_("GCW_FOR_RANGE", "range is [start, end]", f"{where}/range")
                    bounds = [0, -1]
                start = self.value(bounds[0], f"{where}/range/0", ctx)
                last = self.value(bounds[1], f"{where}/range/1", ctx)
            init_set: dict[str, Any] = {counter: start, end: last}
            when = f"vars.{counter} <= vars.{end}"
            bind_set: dict[str, Any] = {value_name: f"${{vars.{counter}}}"}
        else:
            init_set = {
                counter: 0,
                items: "${" + self.cel(spec.get("in"), f"{where}/in", ctx) + "}",
            }
            when = f"vars.{counter} < size(vars.{items})"
            bind_set = {value_name: f"${{vars.{items}[vars.{counter}]}}"}
            if index_name:
                bind_set[index_name] = f"${{vars.{counter}}}"
        first = self.compile_list(spec["steps"], f"{where}/steps", inner) or step_up
        done = cont or self.noop(f"{sid}_end", None)
        self.emit(
            {"id": sid, "type": "transform", "config": {"set": init_set}, "nextSteps": [check]}
        )
        self.emit(
            {
                "id": check,
                "type": "branch",
                "maxIterations": MAX_LOOP_VISITS,
                "config": {"cases": [{"when": when, "next": bind}], "default": done},
                "nextSteps": [bind, done],
            }
        )
        self.emit(
            {"id": bind, "type": "transform", "config": {"set": bind_set}, "nextSteps": [first]}
        )
        self.emit(
            {
                "id": step_up,
                "type": "transform",
                "config": {"set": {counter: f"${{vars.{counter} + 1}}"}},
                "nextSteps": [check],
            }
        )

    def _parallel(
        self, sid: str, body: Mapping[str, Any], path: str, cont: str | None, ctx: _Ctx
    ) -> None:
        spec = body["parallel"]
        where = f"{path}/parallel"
        if not isinstance(spec, Mapping):
            self.f.unsupported_("GCW_PARALLEL", "'parallel' must be a map", where)
            self.aliases[sid] = cont
            return
        if "exception_policy" in spec:
            self.f.unsupported_(
                "GCW_EXCEPTION_POLICY",
                "exception_policy (continueAll) has no equivalent: "
                "the first failing branch fails the step",
                f"{where}/exception_policy",
            )
        body_ctx = replace(
            ctx, after=None, break_to=None, continue_to=None, in_loop=False, in_body=True, labels={}
        )
        if "branches" in spec:
            if "concurrency_limit" in spec:
                self.f.warn(
                    "GCW_CONCURRENCY_LIMIT",
                    "our parallel step runs every branch at once (concurrency_limit ignored)",
                    f"{where}/concurrency_limit",
                )
            branches = []
            for index, item in enumerate(spec["branches"] or []):
                bwhere = f"{where}/branches/{index}"
                if not isinstance(item, Mapping) or len(item) != 1:
                    self.f.unsupported_("GCW_BRANCH", "a branch is a one-entry map", bwhere)
                    continue
                ((bname, bbody),) = item.items()
                steps = bbody.get("steps") if isinstance(bbody, Mapping) else None
                start = self._in_body(steps, f"{bwhere}/{_tok(bname)}/steps", body_ctx)
                if start is None:
                    continue
                name = self.f.new_id(f"{bname}")[:64]
                branches.append({"name": name, "start": start})
            if not branches:
                self.aliases[sid] = cont
                return
            self.emit(
                {
                    "id": sid,
                    "type": "parallel",
                    "config": {"branches": branches},
                    "nextSteps": _nexts(cont),
                }
            )
            return
        loop = spec.get("for")
        if not isinstance(loop, Mapping) or "steps" not in loop:
            self.f.unsupported_("GCW_PARALLEL", "'parallel' needs branches or for", where)
            self.aliases[sid] = cont
            return
        scope = dict(ctx.scope)
        scope[str(loop.get("value", "value"))] = "item"
        if loop.get("index"):
            scope[str(loop["index"])] = "index"
        if "range" in loop:
            bounds = loop["range"]
            if (
                isinstance(bounds, list)
                and len(bounds) == 2
                and all(isinstance(b, int) and not isinstance(b, bool) for b in bounds)
                and 0 <= bounds[1] - bounds[0] < 1000
            ):
                items = "[" + ", ".join(str(i) for i in range(bounds[0], bounds[1] + 1)) + "]"
            else:
                self.f.unsupported_(
                    "GCW_FOR_RANGE",
                    "a parallel range must be two integer constants at most 1000 apart",
                    f"{where}/for/range",
                )
                items = "[]"
        else:
            items = self.cel(loop.get("in"), f"{where}/for/in", ctx)
        start = self._in_body(loop["steps"], f"{where}/for/steps", replace(body_ctx, scope=scope))
        if start is None:
            self.aliases[sid] = cont
            return
        limit = spec.get("concurrency_limit", 20)
        concurrency = limit if isinstance(limit, int) and 1 <= limit <= 100 else 100
        self.emit(
            {
                "id": sid,
                "type": "map",
                "config": {"items": items, "start": start, "concurrency": concurrency},
                "nextSteps": _nexts(cont),
            }
        )

    def _in_body(self, steps: Any, path: str, ctx: _Ctx) -> str | None:
        outer = self.body
        self.bodies += 1
        self.body = self.bodies
        try:
            return self.compile_list(steps, path, ctx)
        finally:
            self.body = outer

    def _try(
        self, sid: str, body: Mapping[str, Any], path: str, cont: str | None, ctx: _Ctx
    ) -> None:
        block = body["try"]
        where = f"{path}/try"
        first = len(self.steps)
        if isinstance(block, Mapping) and "steps" in block and len(block) == 1:
            self.aliases[sid] = self.compile_list(
                block["steps"], f"{where}/steps", replace(ctx, after=cont)
            )
            several = True
        elif isinstance(block, Mapping):
            self.compile_step(sid, block, where, cont, ctx)
            several = len(self.steps) - first > 2
        else:
            self.f.unsupported_("GCW_TRY", "'try' must be a map", where)
            self.aliases[sid] = cont
            return
        inside = [s for s in self.steps[first:] if self.body_of[s["id"]] == self.body]
        on_error: dict[str, Any] = {"strategy": "fail"}
        if "retry" in body:
            policy = self._retry(body["retry"], f"{path}/retry", ctx)
            if policy is not None:
                on_error = {"strategy": "retry", "retry": policy}
                if several:
                    self.f.warn(
                        "GCW_RETRY_PER_STEP",
                        "a retry over several steps retries the failing step, "
                        "not the whole try block",
                        f"{path}/retry",
                    )
        if "except" in body:
            handler = body["except"]
            hwhere = f"{path}/except"
            if not isinstance(handler, Mapping) or "steps" not in handler:
                self.f.unsupported_("GCW_EXCEPT", "'except' needs steps", hwhere)
            else:
                name = str(handler.get("as", "e"))
                bind = self.f.new_id(f"{sid}_except")
                entry = self.compile_list(
                    handler["steps"], f"{hwhere}/steps", replace(ctx, after=cont)
                )
                self.emit(
                    {
                        "id": bind,
                        "type": "transform",
                        "config": {"set": {ctx.prefix + name: _ERROR_BINDING}},
                        "nextSteps": _nexts(entry),
                    }
                )
                on_error = {**on_error, "strategy": "fallback", "fallbackStep": bind}
                self.f.warn(
                    "GCW_ERROR_SHAPE",
                    "the error variable holds {message, code, tags}: code is the HTTP status for "
                    "common HTTP errors (4xx/5xx), otherwise our error code (e.g. HTTP_TIMEOUT); "
                    "tags is HttpError, TimeoutError, ConnectionError or [code]; the message "
                    "and other tags differ from Cloud Workflows'",
                    hwhere,
                )
        if on_error["strategy"] == "fail":
            return
        for step in inside:
            if "onError" not in step:
                step["onError"] = dict(on_error)

    def _retry(self, spec: Any, path: str, ctx: _Ctx) -> dict[str, Any] | None:
        if isinstance(spec, str) and is_expression(spec):
            name = expression_text(spec).strip()
            if name == "http.default_retry":
                return _policy(5, 1.0, 60.0, 1.25, _RETRY_HTTP)
            if name == "http.default_retry_non_idempotent":
                return _policy(5, 1.0, 60.0, 1.25, _RETRY_HTTP_NON_IDEMPOTENT)
            self.f.unsupported_("GCW_RETRY_POLICY", f"retry policy {name!r} is not known", path)
            return None
        if not isinstance(spec, Mapping):
            self.f.unsupported_("GCW_RETRY_POLICY", "retry must be a policy map", path)
            return None
        predicate = spec.get("predicate")
        retry_on: list[str] | None
        pname = expression_text(predicate).strip() if isinstance(predicate, str) else None
        if pname == "http.default_retry_predicate":
            retry_on = _RETRY_HTTP
        elif pname == "http.default_retry_predicate_non_idempotent":
            retry_on = _RETRY_HTTP_NON_IDEMPOTENT
        else:
            retry_on = None
            self.f.warn(
                "GCW_RETRY_PREDICATE",
                f"custom predicate {pname!r} is not translated: every retryable error (timeouts, "
                "connection errors, HTTP 408/425/429/5xx) is retried",
                f"{path}/predicate",
            )
        backoff = spec.get("backoff") or {}
        try:
            retries = int(spec.get("max_retries", 5))
            initial = float(backoff.get("initial_delay", 1))
            maximum = float(backoff.get("max_delay", 60))
            multiplier = float(backoff.get("multiplier", 1.25))
        except (TypeError, ValueError, AttributeError):
            self.f.unsupported_("GCW_RETRY_POLICY", "max_retries and backoff must be numbers", path)
            return None
        if retries > 99 or multiplier > 10 or multiplier < 1:
            self.f.warn(
                "GCW_RETRY_BOUNDS",
                "retry policy clamped to our limits (100 attempts, multiplier 1-10)",
                path,
            )
        return _policy(retries, initial, maximum, multiplier, retry_on)


def _policy(
    retries: int, initial: float, maximum: float, multiplier: float, retry_on: list[str] | None
) -> dict[str, Any]:
    policy: dict[str, Any] = {
        "maxAttempts": max(1, min(retries + 1, 100)),
        "initialDelaySeconds": max(0.0, min(initial, 86_400)),
        "multiplier": max(1.0, min(multiplier, 10.0)),
        "maxDelaySeconds": max(0.0, min(maximum, 30 * 86_400)),
        "jitter": 0.0,
    }
    if retry_on is not None:
        policy["retryOn"] = list(retry_on)
    return policy


def _nexts(target: str | None) -> list[str]:
    return [target] if target else []


def _tok(value: Any) -> str:
    return pointer(value)[1:]


def _prefixed(cel_text: str, prefix: str) -> str:
    if not prefix:
        return cel_text
    import re

    return re.sub(
        r"(?<![\w.])vars\.([A-Za-z_]\w*)", lambda m: f"vars.{prefix}{m.group(1)}", cel_text
    )
