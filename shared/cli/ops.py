"""What ``wfe`` does besides printing: load files, register workflows, wait for runs."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shared.app import WorkflowApp
from shared.cli.format import SourceIssue
from shared.composition import LocalRuntime, build_local, build_registry
from shared.engine.steps import StepRegistry
from shared.engine.validation import parse_documents, validate_definition
from shared.errors import DefinitionInvalid, WorkflowError
from shared.models import ExecutionStatus, WorkflowDefinition, WorkflowExecution
from shared.settings import Settings

CLI_DB = ".wfe/cli.db"
"""The database of ``wfe run``, ``executions``, ``workflows`` and ``resume-all`` without
``--db``: not ``wfe dev``'s (``$WFE_DB_PATH`` or ``.wfe/wfe.db``), so a run from the
command line never writes a version into the dev server's workflows."""


def cli_db(args: argparse.Namespace) -> str:
    """The database a command works on: ``--db`` or the CLI's own."""
    return str(args.db or CLI_DB)


def cli_settings(args: argparse.Namespace) -> Settings:
    """Settings from the environment, on ``--db`` or the CLI's own database."""
    return Settings.from_env(db_path=cli_db(args))


_LIVE = (ExecutionStatus.PENDING, ExecutionStatus.RUNNING, ExecutionStatus.WAITING)


@dataclass
class CheckedFile:
    """A definition file after parsing and validation (nothing stored)."""

    path: str
    documents: list[dict[str, Any]] = field(default_factory=list)
    names: list[str | None] = field(default_factory=list)
    definitions: list[WorkflowDefinition] = field(default_factory=list)
    """The valid documents, parsed."""
    issues: list[SourceIssue] = field(default_factory=list)


def check_file(path: str, registry: StepRegistry | None = None) -> CheckedFile:
    """Parse every document of ``path`` and validate it; OSError if it cannot be read."""
    checked = CheckedFile(path)
    registry = registry or build_registry()
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        checked.issues.append(
            SourceIssue(
                path, 1, None, "INVALID_FORMAT", "", f"{path} is not UTF-8 text: {exc.reason}"
            )
        )
        return checked
    try:
        checked.documents = parse_documents(text, path)
    except WorkflowError as exc:
        message = exc.message + _yaml_position(exc.__cause__)
        checked.issues.append(SourceIssue(path, 1, None, exc.code, exc.path, message))
        return checked
    for number, raw in enumerate(checked.documents, start=1):
        name = raw.get("name") if isinstance(raw.get("name"), str) else None
        try:
            definition = validate_definition(raw, registry)
        except DefinitionInvalid as exc:
            checked.issues.extend(
                SourceIssue(path, number, name, i.code, i.path, i.message) for i in exc.issues
            )
        else:
            if name in checked.names:
                checked.issues.append(
                    SourceIssue(
                        path,
                        number,
                        name,
                        "DUPLICATE_WORKFLOW_NAME",
                        "/name",
                        f"another document of this file is also named {name!r}",
                    )
                )
            checked.definitions.append(definition)
        checked.names.append(name)
    return checked


def _yaml_position(cause: BaseException | None) -> str:
    """`` (line 3, column 5)`` for a YAML syntax error, else nothing."""
    mark = getattr(cause, "problem_mark", None)
    if mark is None:
        return ""
    return f" (line {mark.line + 1}, column {mark.column + 1})"


# -- runtime ------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def read_only_app(settings: Settings) -> AsyncIterator[WorkflowApp | None]:
    """The app over an existing database without running anything; None if there is none."""
    db_path = settings.local.db_path
    if db_path != ":memory:" and not Path(db_path).exists():
        yield None
        return
    runtime = build_local(settings)
    try:
        yield runtime.app
    finally:
        await runtime.stop()


async def wait_until_done(
    app: WorkflowApp, execution_id: str, ended: asyncio.Event, timeout: float
) -> tuple[WorkflowExecution, bool]:
    """Wait for the execution to end; returns it and whether ``timeout`` ran out first."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        execution = await app.get_execution(execution_id)
        if execution.status.terminal:
            return execution, False
        remaining = deadline - loop.time()
        if remaining <= 0:
            return execution, True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ended.wait(), min(remaining, 0.5))


async def live_executions(app: WorkflowApp) -> list[WorkflowExecution]:
    """Executions that are pending, running or waiting."""
    found: list[WorkflowExecution] = []
    for status in _LIVE:
        cursor: str | None = None
        while True:
            page = await app.list_executions(status=status, limit=200, cursor=cursor)
            found.extend(page.items)
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
    return found


async def drain(runtime: LocalRuntime, timeout: float) -> bool:
    """Run the dispatcher until no task is due before ``timeout`` ends.

    Returns False when work that was due within the timeout is still outstanding.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    queue = runtime.queue
    while True:
        if await queue.join(timeout=min(0.2, max(deadline - loop.time(), 0.0))):
            return True
        if loop.time() >= deadline:
            return False
        due = queue.next_due()
        horizon = runtime.engine.clock.now().timestamp() + (deadline - loop.time())
        if queue.in_flight_count() == 0 and (due is None or due.timestamp() > horizon):
            return True


def runtime_for(
    db: str | None, allowed_hosts: list[str] | None = None, recordings_dir: Path | None = None
) -> LocalRuntime:
    """A local runtime on ``db`` (default from settings), allowing extra http hosts, and
    replaying the model recordings of ``recordings_dir`` unless settings name a folder."""
    settings = Settings.from_env(db_path=db)
    if allowed_hosts:
        hosts = [*settings.engine.http_allowed_hosts, *allowed_hosts]
        settings = settings.with_overrides(http_allowed_hosts=hosts)
    if recordings_dir is not None and not settings.ai.recordings_dir:
        settings = settings.with_overrides(ai_recordings_dir=str(recordings_dir))
    return build_local(settings)
