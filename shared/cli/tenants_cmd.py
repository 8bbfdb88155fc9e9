"""``wfe tenants ...``: manage tenants, their quotas and API keys.

Local (default): on the SQLite file of ``wfe dev`` (``--db``, else ``$WFE_DB_PATH`` or
``.wfe/wfe.db``), whose server reads the same tables. Remote (``--url``): through a
deployment's admin API, with the key in ``$WFE_API_KEY`` (a platform admin's; a
tenant owner's for its own keys). Every answer is printed as JSON on stdout; an
error's code and message go to stderr with exit code 1.

    wfe tenants create acme --name "Acme" --quota maxWorkflows=50 --quota stepsPerSecond=20
    wfe tenants keys issue acme --subject ci --role editor   # prints the secret once
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable
from typing import Any

from shared.adapters.clock import SystemClock
from shared.adapters.sqlite_tenants import SqliteTenantStore
from shared.app.tenants import TenantAdmin, TenantDirectory
from shared.errors import WorkflowError
from shared.models.tenant import ApiKey

__all__ = ["add_parser"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
DEV_DB = ".wfe/wfe.db"


def _quota(text: str) -> tuple[str, float | int]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=VALUE (maxWorkflows=10)")
    try:
        number: float | int = float(value) if "." in value else int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
    return name, number


def _key(key: ApiKey) -> dict[str, Any]:
    return key.model_dump(mode="json", by_alias=True, exclude_none=True, exclude={"secret_sha256"})


async def _local(args: argparse.Namespace) -> Any:
    """The command's answer, on the local SQLite file."""
    path = args.db or os.environ.get("WFE_DB_PATH") or DEV_DB
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    store = SqliteTenantStore(path)
    admin = TenantAdmin(TenantDirectory(store), SystemClock())
    quotas = dict(args.quota or [])
    try:
        match args.action:
            case "list":
                return [t.to_json_dict() for t in await admin.list_tenants(1000)]
            case "create":
                raw = {"id": args.tenant_id, "displayName": args.name or "", "quotas": quotas}
                return (await admin.create_tenant(raw)).to_json_dict()
            case "show":
                return (await admin.get_tenant(args.tenant_id)).to_json_dict()
            case "rename":
                changes = {"displayName": args.name}
                return (await admin.update_tenant(args.tenant_id, changes)).to_json_dict()
            case "quotas":
                return (await admin.set_quotas(args.tenant_id, quotas)).to_json_dict()
            case "disable" | "enable":
                disabled = args.action == "disable"
                return (await admin.set_disabled(args.tenant_id, disabled)).to_json_dict()
            case "keys-list":
                return [_key(k) for k in await admin.list_keys(args.tenant_id)]
            case "keys-issue":
                key, secret = await admin.issue_key(
                    args.tenant_id, args.subject, args.role, created_by="cli"
                )
                return {"key": _key(key), "secret": secret}
            case "keys-revoke":
                return _key(await admin.revoke_key(args.tenant_id, args.key_id))
    finally:
        await store.close()
    raise ValueError(args.action)


def _remote_call(args: argparse.Namespace) -> tuple[str, str, Any]:
    """Method, path and JSON body of the admin API call for the command."""
    base = "/api/v1/admin/tenants"
    one = f"{base}/{getattr(args, 'tenant_id', '')}"
    quotas = dict(args.quota or [])
    calls: dict[str, tuple[str, str, Any]] = {
        "list": ("GET", base, None),
        "create": (
            "POST",
            base,
            {
                "id": getattr(args, "tenant_id", ""),
                "displayName": args.name or "",
                "quotas": quotas,
            },
        ),
        "show": ("GET", one, None),
        "rename": ("PATCH", one, {"displayName": args.name}),
        "quotas": ("PUT", f"{one}/quotas", quotas),
        "disable": ("POST", f"{one}/disable", None),
        "enable": ("POST", f"{one}/enable", None),
        "keys-list": ("GET", f"{one}/keys", None),
        "keys-issue": (
            "POST",
            f"{one}/keys",
            {"subject": getattr(args, "subject", ""), "role": getattr(args, "role", "viewer")},
        ),
        "keys-revoke": ("DELETE", f"{one}/keys/{getattr(args, 'key_id', '')}", None),
    }
    return calls[args.action]


async def _remote(args: argparse.Namespace) -> Any:
    import httpx

    method, path, body = _remote_call(args)
    headers = {"X-API-Key": os.environ.get("WFE_API_KEY", "")}
    async with httpx.AsyncClient(base_url=args.url, timeout=30.0) as client:
        answer = await client.request(method, path, json=body, headers=headers)
    payload = answer.json()
    if answer.status_code >= 400:
        error = payload.get("error", {}) if isinstance(payload, dict) else {}
        raise WorkflowError(str(error.get("message", answer.text)), code=error.get("code"))
    return payload


def cmd_tenants(args: argparse.Namespace) -> int:
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
    """Register ``wfe tenants`` on the ``wfe`` parser's sub-commands."""
    tenants = command(commands, "tenants", "manage tenants, their quotas and API keys")
    actions = tenants.add_subparsers(dest="action", required=True, metavar="ACTION")

    def sub(parent: Any, name: str, help_text: str, action: str, *, tenant: bool = True) -> Any:
        parser = command(parent, name, help_text)
        if tenant:
            parser.add_argument("tenant_id", metavar="TENANT_ID")
        parser.add_argument("--db", metavar="PATH", help=f"SQLite file (default: {DEV_DB})")
        parser.add_argument(
            "--url", help="a deployment's base URL: use its admin API ($WFE_API_KEY)"
        )
        parser.set_defaults(handler=cmd_tenants, action=action, quota=None, name=None)
        return parser

    sub(actions, "list", "every tenant", "list", tenant=False)
    create = sub(actions, "create", "create a tenant", "create")
    create.add_argument("--name", help="display name")
    create.add_argument("--quota", type=_quota, action="append", metavar="NAME=VALUE")
    sub(actions, "show", "one tenant and its quotas", "show")
    rename = sub(actions, "rename", "change a tenant's display name", "rename")
    rename.add_argument("--name", required=True)
    quotas = sub(actions, "quotas", "replace a tenant's quotas (unset: no limit)", "quotas")
    quotas.add_argument("--quota", type=_quota, action="append", metavar="NAME=VALUE")
    sub(actions, "disable", "refuse every key of a tenant", "disable")
    sub(actions, "enable", "enable a disabled tenant", "enable")
    keys = command(actions, "keys", "a tenant's API keys")
    key_actions = keys.add_subparsers(dest="key_action", required=True, metavar="ACTION")
    sub(key_actions, "list", "the tenant's keys (never their secrets)", "keys-list")
    issue = sub(key_actions, "issue", "issue a key; its secret is printed once", "keys-issue")
    issue.add_argument("--subject", required=True)
    issue.add_argument("--role", choices=["viewer", "editor", "admin", "owner"], default="viewer")
    revoke = sub(key_actions, "revoke", "revoke a key", "keys-revoke")
    revoke.add_argument("key_id", metavar="KEY_ID")
