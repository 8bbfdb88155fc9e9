"""``wfe retention sweep [--dry-run]``: delete finished executions past their retention.

Local (default): on the SQLite file of ``wfe dev`` (``--db``, else ``$WFE_DB_PATH`` or
``.wfe/wfe.db``), with the settings of the environment (``WFE_EXECUTION_RETENTION_DAYS``,
``WFE_AUDIT_RETENTION_DAYS``) and each tenant's ``retentionDays``. Remote (``--url``):
``POST /api/v1/admin/retention:sweep`` on a deployment, with a platform admin's key in
``$WFE_API_KEY``. The counts are printed as JSON on stdout; an error's code and message
go to stderr with exit code 1.

    wfe retention sweep --dry-run     # how many executions would go, per tenant
    wfe retention sweep               # delete them (and old audit entries)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable
from typing import Any

from shared.app.retention import SweepRequest
from shared.errors import WorkflowError
from shared.settings import Settings

__all__ = ["add_parser"]

EXIT_OK, EXIT_FAILED = 0, 1
DEV_DB = ".wfe/wfe.db"


async def _local(args: argparse.Namespace) -> Any:
    from shared.composition.local import build_local

    path = args.db or os.environ.get("WFE_DB_PATH") or DEV_DB
    if not os.path.exists(path):
        raise WorkflowError(f"no database at {path}", code="NOT_FOUND")
    runtime = build_local(Settings.from_env(db_path=path))
    try:
        report = await runtime.retention().sweep(SweepRequest(subject="cli", dry_run=args.dry_run))
    finally:
        await runtime.stop()
    return report.to_json()


async def _remote(args: argparse.Namespace) -> Any:
    import httpx

    headers = {"X-API-Key": os.environ.get("WFE_API_KEY", "")}
    params = {"dryRun": "true"} if args.dry_run else {}
    try:
        async with httpx.AsyncClient(base_url=args.url, timeout=600.0) as client:
            answer = await client.post(
                "/api/v1/admin/retention:sweep", params=params, headers=headers
            )
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise WorkflowError(f"{args.url}: {exc}", code="UNREACHABLE") from exc
    try:
        payload = answer.json()
    except ValueError as exc:  # not JSON: a proxy's error page
        raise WorkflowError(f"HTTP {answer.status_code}: not JSON", code="BAD_ANSWER") from exc
    if answer.status_code >= 400:
        error = payload.get("error", {}) if isinstance(payload, dict) else {}
        raise WorkflowError(str(error.get("message", answer.text)), code=error.get("code"))
    return payload


def cmd_retention(args: argparse.Namespace) -> int:
    try:
        result = asyncio.run(_remote(args) if args.url else _local(args))
    except WorkflowError as exc:
        print(f"{exc.code}: {exc.message}", file=sys.stderr)
        return EXIT_FAILED
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return EXIT_OK


def add_parser(
    commands: Any,
    command: Callable[[Any, str, str], argparse.ArgumentParser],
    common: Callable[..., None],
) -> None:
    """Register ``wfe retention`` on the ``wfe`` parser's sub-commands."""
    retention = command(commands, "retention", "delete finished executions past their retention")
    actions = retention.add_subparsers(dest="action", required=True, metavar="ACTION")
    sweep = command(actions, "sweep", "one retention pass: executions, audit log, idle buckets")
    sweep.add_argument("--dry-run", action="store_true", help="count; delete nothing")
    sweep.add_argument("--db", metavar="PATH", help=f"SQLite file (default: {DEV_DB})")
    sweep.add_argument("--url", help="a deployment's base URL: use its admin API ($WFE_API_KEY)")
    sweep.set_defaults(handler=cmd_retention)
