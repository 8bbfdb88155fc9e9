"""``wfe diff WORKFLOW A B``: what changed from version A to version B of a workflow.

Local (default): on the CLI's SQLite file (``--db``, default ``.wfe/cli.db``), with
WORKFLOW an id or a name. Remote (``--url``): a deployment's
``GET /api/v1/workflows/{id}/versions/{a}/diff/{b}`` with the key in ``$WFE_API_KEY``
(WORKFLOW is then an id). Human-readable by default (``+`` added, ``-`` removed,
``~`` changed, with JSON pointers); ``--json`` prints the diff document the API serves.
Exit 0 on success (also when the versions differ), 1 when the workflow or a version is
unknown or the call fails.

    wfe diff orders 1 2
    wfe diff 3f1c... 4 7 --url https://wfe.example.com --json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any
from urllib.parse import quote

from shared.app.version_diff import diff_definitions
from shared.errors import NotFound, WorkflowError

__all__ = ["add_parser", "render"]

EXIT_OK, EXIT_FAILED = 0, 1
MAX_VALUE_CHARS = 120
"""A value longer than this (as compact JSON) is cut with an ellipsis in the text form."""


def _value(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"


def _change(change: dict[str, Any], prefix: str = "") -> str:
    path = prefix + change["path"] or "/"
    match change["kind"]:
        case "added":
            return f"+ {path}: {_value(change.get('after'))}"
        case "removed":
            return f"- {path}: {_value(change.get('before'))}"
    return f"~ {path}: {_value(change.get('before'))} -> {_value(change.get('after'))}"


def _edge(edge: dict[str, Any]) -> str:
    label = f" {edge['label']!r}" if edge.get("label") else ""
    return f"edge {edge['source']} -> {edge['target']} ({edge['kind']}{label})"


def render(diff: dict[str, Any]) -> str:
    """The diff document (camelCase, as the API serves it) as text lines."""
    lines = [f"workflow {diff['workflowId']}: v{diff['fromVersion']} -> v{diff['toVersion']}"]
    if diff.get("identical"):
        lines.append("no differences")
        return "\n".join(lines)
    lines += [_change(c) for c in diff.get("fields", [])]
    steps = diff.get("steps", {})
    lines += [f"+ step {s['id']} ({s['type']})" for s in steps.get("added", [])]
    lines += [f"- step {s['id']} ({s['type']})" for s in steps.get("removed", [])]
    for step in steps.get("changed", []):
        lines.append(f"~ step {step['id']} ({step['type']})")
        lines += ["    " + _change(c) for c in step.get("changes", [])]
    edges = diff.get("edges", {})
    lines += ["+ " + _edge(e) for e in edges.get("added", [])]
    lines += ["- " + _edge(e) for e in edges.get("removed", [])]
    lines += [_change(c, "/variables") for c in diff.get("variables", [])]
    lines += [_change(c, "/trigger") for c in diff.get("trigger", [])]
    if diff.get("truncated"):
        lines.append("(truncated: the diff is larger than its limits; see --json)")
    return "\n".join(lines)


async def _local(args: argparse.Namespace) -> dict[str, Any]:
    from shared.app.registration import all_workflows
    from shared.cli.ops import cli_settings, read_only_app

    async with read_only_app(cli_settings(args)) as app:
        if app is None:
            raise NotFound(f"workflow {args.workflow} not found (no database)")
        workflow_id = args.workflow
        try:
            await app.get_workflow(workflow_id)
        except NotFound:
            named = [w.id for w in await all_workflows(app) if w.name == args.workflow]
            if not named:
                raise
            workflow_id = named[0]
        before = await app.get_version(workflow_id, args.a)
        after = await app.get_version(workflow_id, args.b)
    diff = diff_definitions(before, after)
    diff.workflow_id = workflow_id
    return diff.to_json_dict()


async def _remote(args: argparse.Namespace) -> dict[str, Any]:
    import httpx

    path = f"/api/v1/workflows/{quote(args.workflow, safe='')}/versions/{args.a}/diff/{args.b}"
    headers = {"X-API-Key": os.environ.get("WFE_API_KEY", "")}
    try:
        async with httpx.AsyncClient(base_url=args.url, timeout=30.0) as client:
            answer = await client.get(path, headers=headers)
    except httpx.HTTPError as exc:
        raise WorkflowError(f"cannot reach {args.url}: {exc}", code="UNAVAILABLE") from None
    try:
        payload = answer.json()
    except ValueError:
        payload = None
    if answer.status_code >= 400 or not isinstance(payload, dict):
        error = payload.get("error", {}) if isinstance(payload, dict) else {}
        raise WorkflowError(
            str(error.get("message", f"HTTP {answer.status_code}")), code=error.get("code")
        )
    return payload


def cmd_diff(args: argparse.Namespace) -> int:
    try:
        diff = asyncio.run(_remote(args) if args.url else _local(args))
    except WorkflowError as exc:
        print(f"{exc.code}: {exc.message}", file=sys.stderr)
        return EXIT_FAILED
    if args.json:
        print(json.dumps(diff, indent=2, ensure_ascii=False))
    else:
        print(render(diff))
    return EXIT_OK


def _version(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError("a version is at least 1")
    return value


def add_parser(commands: Any, command: Any, common: Any) -> None:
    """Register ``diff`` on the ``wfe`` sub-command parser."""
    parser = command(commands, "diff", "what changed between two versions of a workflow")
    parser.add_argument("workflow", metavar="WORKFLOW", help="the workflow's id (or name locally)")
    parser.add_argument("a", type=_version, metavar="A", help="the older version")
    parser.add_argument("b", type=_version, metavar="B", help="the newer version")
    parser.add_argument("--url", help="a deployment's base URL: use its REST API ($WFE_API_KEY)")
    common(parser)
    parser.set_defaults(handler=cmd_diff)
