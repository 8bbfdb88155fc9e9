"""``wfe``: validate and run workflow files locally, and inspect what ran.

Exit codes: 0 success; 1 invalid definition, execution not ``succeeded``, timeout or
unknown id; 2 usage error (bad arguments, unreadable file, bad ``--input``); 130
interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import sys
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from shared.app import WorkflowApp
from shared.app.registration import all_workflows, register
from shared.app.service import StartRequest
from shared.cli import format as fmt
from shared.cli.ops import (
    CLI_DB,
    CheckedFile,
    check_file,
    cli_db,
    cli_settings,
    drain,
    live_executions,
    read_only_app,
    runtime_for,
    wait_until_done,
)
from shared.dev.demo_service import DemoServer
from shared.errors import NotFound, WorkflowError
from shared.models import ExecutionStatus, StepRun, WorkflowDefinition, WorkflowExecution
from shared.observability import configure_logging
from shared.settings import Settings

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

_EPILOG = """exit codes:
  0    success (every file valid; the execution succeeded)
  1    a definition is invalid, the execution failed, was cancelled or timed out,
       --timeout elapsed first, or the id is unknown
  2    usage error: bad arguments, unreadable file, --input not a JSON object
  130  interrupted (unfinished executions resume with `wfe resume-all`)

examples:
  wfe validate examples/*.yaml
  wfe run examples/order_fulfilment.yaml
  wfe run examples/approval.yaml --json --db /tmp/wfe.db
  wfe executions list --status failed
"""


class UsageError(Exception):
    """Bad command-line input: reported on stderr, exit code 2."""


def _out(text: str) -> None:
    """Print a result line on stdout."""
    print(text, flush=True)


def _err(text: str) -> None:
    """Print a progress or diagnostic line on stderr."""
    print(text, file=sys.stderr, flush=True)


# -- validate ---------------------------------------------------------------------------


def _check_files(paths: Sequence[str]) -> list[CheckedFile]:
    """Parse and validate each file; an unreadable one is a usage error."""
    checked = []
    for path in paths:
        try:
            checked.append(check_file(path))
        except OSError as exc:
            raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return checked


def _report(files: list[CheckedFile], as_json: bool) -> bool:
    """Print the validation result; True when every document is valid."""
    issues = [issue for checked in files for issue in checked.issues]
    if as_json:
        _out(fmt.dumps([issue.to_dict() for issue in issues]))
    else:
        for checked in files:
            lines = fmt.file_report(
                checked.path, len(checked.documents), checked.names, checked.issues
            )
            _out("\n".join(lines))
    return not issues


def cmd_validate(args: argparse.Namespace) -> int:
    """Parse and validate definition files; never touches a database."""
    return EXIT_OK if _report(_check_files(args.files), args.json) else EXIT_FAILED


# -- run --------------------------------------------------------------------------------


def _parse_input(raw: str | None) -> dict[str, Any]:
    """``--input``: inline JSON or ``@file.json``, which must hold an object."""
    if raw is None:
        return {}
    try:
        text = Path(raw[1:]).read_text(encoding="utf-8") if raw.startswith("@") else raw
        value = json.loads(text)
    except OSError as exc:
        raise UsageError(f"cannot read --input file {raw[1:]}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise UsageError(f"--input is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise UsageError("--input must be a JSON object")
    return value


def cmd_run(args: argparse.Namespace) -> int:
    """Validate, register and run the first workflow of a file, showing progress."""
    data = _parse_input(args.input)
    checked = _check_files([args.file])
    if checked[0].issues:
        _report(checked, args.json)
        return EXIT_FAILED
    demo = None if args.no_demo else DemoServer()
    try:
        url = demo.start() if demo else None
        return asyncio.run(_run(args, checked[0], data, url))
    finally:
        if demo is not None:
            demo.stop()


async def _run(
    args: argparse.Namespace, checked: CheckedFile, data: dict[str, Any], demo_url: str | None
) -> int:
    """Register the file's workflows, start the first one and follow it to the end."""
    recordings = Path(args.file).resolve().parent  # <name>.recording.json beside the file
    demo_host = [demo_url.removeprefix("http://")] if demo_url else None  # its port only
    runtime = runtime_for(cli_db(args), demo_host, recordings)
    ended = asyncio.Event()
    steps = {step.id: step for d in reversed(checked.definitions) for step in d.steps}
    progress = fmt.ProgressPrinter(sys.stderr, steps, on_end=lambda _: ended.set())
    runtime.store.add_listener(progress)
    async with runtime:
        definition = await _register_all(runtime.app, checked.documents)
        _add_demo_url(definition.variables, data, demo_url)
        execution_id = str(uuid.uuid4())
        progress.track(execution_id)
        request = StartRequest(definition.id, data, execution_id=execution_id)
        await runtime.app.start_execution(request)
        _err(f"started execution {execution_id}")
        execution, late = await wait_until_done(runtime.app, execution_id, ended, args.timeout)
        runs = await runtime.app.step_history(execution_id)
    _print_outcome(execution, definition.name, runs, args.json)
    if late:
        _err(
            f"--timeout {args.timeout:g}s elapsed while the execution was "
            f"{execution.status.value}; continue it with `wfe resume-all`"
        )
        return EXIT_FAILED
    return EXIT_OK if execution.status == ExecutionStatus.SUCCEEDED else EXIT_FAILED


async def _register_all(app: WorkflowApp, documents: list[dict[str, Any]]) -> WorkflowDefinition:
    """Register the supporting workflows (documents 2..n), then the first; return it."""
    for raw in [*documents[1:], documents[0]]:
        definition, action = await register(app, raw)
        _err(f"{action} workflow {definition.name} v{definition.version} ({definition.id})")
    return definition


def _print_outcome(
    execution: WorkflowExecution, name: str, runs: list[StepRun], as_json: bool
) -> None:
    """The final execution: JSON with its steps, or a summary line and the result."""
    if as_json:
        _out(fmt.dumps(fmt.execution_document(execution, runs)))
        return
    _out(fmt.summary_line(execution, name, runs))
    if execution.result is not None:
        _out("result: " + json.dumps(execution.result, ensure_ascii=False, default=str))


def _add_demo_url(variables: dict[str, Any], data: dict[str, Any], url: str | None) -> None:
    """Pass the demo service URL as ``demoUrl`` when the workflow declares that variable."""
    if "demoUrl" not in variables or "demoUrl" in data:
        return
    if url is not None:
        data["demoUrl"] = url
    elif not variables["demoUrl"]:
        _err("note: the workflow expects `demoUrl`; pass it with --input or drop --no-demo")


# -- executions, workflows ----------------------------------------------------------------


async def _names(app: WorkflowApp) -> dict[str, str]:
    """Workflow names by id."""
    return {w.id: w.name for w in await all_workflows(app)}


async def cmd_executions_list(args: argparse.Namespace) -> int:
    """``wfe executions list``: newest first, without running anything."""
    async with read_only_app(cli_settings(args)) as app:
        items, names = [], {}
        if app is not None:
            status = ExecutionStatus(args.status) if args.status else None
            page = await app.list_executions(
                workflow_id=args.workflow, status=status, limit=args.limit
            )
            items, names = page.items, await _names(app)
    if args.json:
        _out(fmt.dumps([e.to_json_dict() for e in items]))
    else:
        _out(fmt.executions_table(items, names) if items else "no executions")
    return EXIT_OK


async def cmd_executions_show(args: argparse.Namespace) -> int:
    """``wfe executions show``: the execution and its step history."""
    async with read_only_app(cli_settings(args)) as app:
        if app is None:
            raise NotFound(f"execution {args.execution_id} not found")
        execution = await app.get_execution(args.execution_id)
        runs = await app.step_history(args.execution_id)
        names = await _names(app)
    if args.json:
        _out(fmt.dumps(fmt.execution_document(execution, runs)))
    else:
        name = names.get(execution.workflow_id, execution.workflow_id)
        _out(fmt.execution_details(execution, name) + "\n\n" + fmt.history_table(runs))
    return EXIT_OK


async def cmd_workflows_list(args: argparse.Namespace) -> int:
    """``wfe workflows list``: the head version of every workflow."""
    async with read_only_app(cli_settings(args)) as app:
        items = await all_workflows(app) if app is not None else []
    if args.json:
        _out(fmt.dumps([w.to_json_dict() for w in items]))
    else:
        _out(fmt.workflows_table(items) if items else "no workflows")
    return EXIT_OK


async def cmd_resume_all(args: argparse.Namespace) -> int:
    """``wfe resume-all``: recover unfinished executions and run until nothing is due."""
    settings = cli_settings(args)
    if not Path(settings.local.db_path).exists():
        _err(f"no database at {settings.local.db_path}; nothing to resume")
        return EXIT_OK
    runtime = runtime_for(cli_db(args))
    progress = fmt.ProgressPrinter(sys.stderr)
    runtime.store.add_listener(progress)
    async with runtime:
        before = await live_executions(runtime.app)
        _err(f"resuming {len(before)} unfinished execution(s)")
        for execution in before:
            progress.track(execution.id, prefix=execution.id[:8])
        finished = await drain(runtime, args.timeout)
        after = [await runtime.app.get_execution(e.id) for e in before]
        names = await _names(runtime.app)
    if args.json:
        _out(fmt.dumps([e.to_json_dict() for e in after]))
    elif after:
        _out(fmt.executions_table(after, names))
    if not finished:
        _err(f"--timeout {args.timeout:g}s elapsed with work still due")
    bad = [e for e in after if e.status.terminal and e.status != ExecutionStatus.SUCCEEDED]
    return EXIT_OK if finished and not bad else EXIT_FAILED


def _async(handler: Callable[[argparse.Namespace], Any]) -> Callable[[argparse.Namespace], int]:
    """A command handler that runs the coroutine function ``handler`` in a new loop."""

    def run(args: argparse.Namespace) -> int:
        result: int = asyncio.run(handler(args))
        return result

    return run


# -- parser -------------------------------------------------------------------------------


def _positive(text: str) -> float:
    """argparse type: a number greater than 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("must be greater than 0")
    return value


def _positive_int(text: str) -> int:
    """argparse type: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _common(parser: argparse.ArgumentParser, *, db: bool = True) -> None:
    """``--json`` and (unless ``db`` is false) ``--db``."""
    parser.add_argument("--json", action="store_true", help="print JSON on stdout")
    if db:
        parser.add_argument("--db", metavar="PATH", help=f"SQLite database (default: {CLI_DB})")


def _command(commands: Any, name: str, help_text: str) -> argparse.ArgumentParser:
    """A sub-command parser sharing the exit-code epilog."""
    parser: argparse.ArgumentParser = commands.add_parser(
        name,
        help=help_text,
        description=help_text,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    return parser


def build_parser() -> argparse.ArgumentParser:
    """The ``wfe`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="wfe",
        description="Validate, run and inspect workflows on the local engine.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    validate = _command(commands, "validate", "validate definition files (JSON or YAML)")
    validate.add_argument("files", nargs="+", metavar="FILE")
    _common(validate, db=False)
    validate.set_defaults(handler=cmd_validate)

    run = _command(commands, "run", "register and run the first workflow of a file")
    run.add_argument(
        "file", metavar="FILE", help="definition file; extra documents are supporting workflows"
    )
    run.add_argument("--input", metavar="JSON|@FILE", help="execution input (a JSON object)")
    run.add_argument(
        "--timeout",
        type=_positive,
        default=120.0,
        metavar="SECONDS",
        help="give up waiting after this long (default: 120)",
    )
    run.add_argument(
        "--no-demo", action="store_true", help="do not start the built-in demo HTTP service"
    )
    _common(run)
    run.set_defaults(handler=cmd_run)

    executions = _command(commands, "executions", "list or show executions")
    sub = executions.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = _command(sub, "list", "recent executions, newest first")
    listing.add_argument("--workflow", metavar="ID", help="only this workflow")
    listing.add_argument("--status", choices=[s.value for s in ExecutionStatus])
    listing.add_argument("--limit", type=_positive_int, default=20, metavar="N")
    _common(listing)
    listing.set_defaults(handler=_async(cmd_executions_list))
    show = _command(sub, "show", "one execution and its step history")
    show.add_argument("execution_id", metavar="EXECUTION_ID")
    _common(show)
    show.set_defaults(handler=_async(cmd_executions_show))

    workflows = _command(commands, "workflows", "list registered workflows")
    wsub = workflows.add_subparsers(dest="action", required=True, metavar="ACTION")
    wlist = _command(wsub, "list", "every workflow (latest version)")
    _common(wlist)
    wlist.set_defaults(handler=_async(cmd_workflows_list))

    from shared.cli.import_cmd import add_parser as add_import

    add_import(commands, _command, _common)

    from shared.cli.tenants_cmd import add_parser as add_tenants

    add_tenants(commands, _command, _common)

    from shared.cli.retention_cmd import add_parser as add_retention

    add_retention(commands, _command, _common)

    from shared.cli.templates_cmd import add_parser as add_templates

    add_templates(commands, _command, _common)

    from shared.cli.diff_cmd import add_parser as add_diff

    add_diff(commands, _command, _common)

    resume = _command(commands, "resume-all", "finish executions a stopped process left unfinished")
    resume.add_argument("--timeout", type=_positive, default=120.0, metavar="SECONDS")
    _common(resume)
    resume.set_defaults(handler=_async(cmd_resume_all))

    dev = _command(commands, "dev", "serve the four functions locally on one port (make dev)")
    dev.add_argument("--host", default="127.0.0.1")
    dev.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8080")))
    dev.add_argument(
        "--demo-port",
        type=int,
        default=None,
        help="port of the demo service (default: --port + 1, or a free port when that is "
        "taken); 0 disables it",
    )
    dev.add_argument("--no-examples", action="store_true", help="do not load examples/")
    _common(dev, db=False)
    dev.add_argument(
        "--db", metavar="PATH", help="SQLite database (default: $WFE_DB_PATH or .wfe/wfe.db)"
    )
    dev.set_defaults(handler=cmd_dev)

    token = _command(
        commands,
        "dev-token",
        "print an ID token the dev verifier accepts (the key of $WFE_DEV_KEY_FILE)",
    )
    token.add_argument(
        "--kind",
        choices=["tasks", "sweep", "scheduler", "pubsub"],
        default="scheduler",
        help="the internal caller to sign for (default: scheduler)",
    )
    token.add_argument("--email", help="an end user's email instead (with --audience)")
    token.add_argument("--audience", help="the token's audience (default: the caller's)")
    token.set_defaults(handler=cmd_dev_token)
    return parser


DEV_KEY = ".wfe/dev-key.pem"
"""The dev verifier's key of ``wfe dev`` and ``wfe dev-token`` without ``WFE_DEV_KEY_FILE``
(made by ``wfe dev`` when missing), so tokens minted here are the ones it accepts."""


def _with_dev_key(settings: Settings, *, create: bool) -> Settings:
    """``settings`` on ``DEV_KEY`` when local mode's dev verifier has no key file set."""
    from shared.api.identity import verifier_mode

    if settings.dev_key_file or verifier_mode(settings) != "dev":
        return settings
    path = Path(DEV_KEY)
    if create and not path.exists():
        _write_new_key(path)
    if not path.exists():
        return settings
    return settings.model_copy(update={"dev_key_file": str(path)})


def _write_new_key(path: Path) -> None:
    """A new private key at ``path`` (mode 0600); a key another process wrote first stays."""
    from shared.api.identity import generate_private_pem

    path.parent.mkdir(parents=True, exist_ok=True)
    draft = path.with_name(f".{path.name}.{os.getpid()}")
    descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(generate_private_pem())
    try:
        os.link(draft, path)  # never replaces a key a running server already uses
    except FileExistsError:
        pass
    finally:
        draft.unlink()


def cmd_dev_token(args: argparse.Namespace) -> int:
    """``wfe dev-token``: ``curl -H "Authorization: Bearer $(wfe dev-token)" ...``."""
    from shared.api.identity import identity_from_settings, verifier_mode

    settings = _with_dev_key(Settings.from_env(), create=False)
    if not settings.dev_key_file or verifier_mode(settings) != "dev":
        raise UsageError(
            f"needs WFE_DEV_KEY_FILE or {DEV_KEY} (the key `wfe dev` verifies with; "
            "`wfe dev` writes it) in local mode"
        )
    identity = identity_from_settings(settings)
    assert identity.minter is not None
    if args.email:
        if not args.audience:
            raise UsageError("--email needs --audience (one of WFE_ID_TOKEN_AUDIENCE)")
        print(identity.minter.mint(args.audience, args.email))
    else:
        print(identity.token_for(args.kind, audience=args.audience))
    return 0


def cmd_dev(args: argparse.Namespace) -> int:
    """``wfe dev``: REST, GraphQL, streams, triggers and tasks on one port."""
    from shared.dev.server import DevOptions, run

    examples = None if args.no_examples else Path("examples")
    pinned = args.demo_port is not None
    options = DevOptions(
        host=args.host,
        port=args.port,
        examples=examples,
        demo_port=(args.demo_port or None) if pinned else (args.port + 1) % 65536,
        demo_port_fallback=not pinned,
    )
    return run(_with_dev_key(Settings.from_env(db_path=args.db), create=True), options)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``wfe`` console script."""
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="replace")
    # The one logging setup of every entry point: JSON lines (warnings and worse here,
    # on stderr, apart from the command's own output; ``wfe dev`` sets its own level).
    configure_logging("wfe", level="WARNING", stream=sys.stderr)
    args = build_parser().parse_args(argv)
    try:
        code: int = args.handler(args)
        return code
    except UsageError as exc:
        _err(f"wfe {args.command}: error: {exc}")
        return EXIT_USAGE
    except WorkflowError as exc:
        _err(f"{exc.code}  {exc.message}")
        return EXIT_USAGE if exc.code == "INVALID_SETTINGS" else EXIT_FAILED
    except (OSError, sqlite3.Error) as exc:
        _err(f"wfe {args.command}: error: {exc}")
        return EXIT_FAILED
    except KeyboardInterrupt:
        _err("interrupted; unfinished executions resume with `wfe resume-all`")
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
