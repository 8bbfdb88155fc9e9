"""``wfe import --from gcw|asl FILE``: translate a Cloud Workflows or Step Functions
definition into ours and print it with its warnings; ``--save`` stores it.

Without ``--save`` it is a dry run that touches no database. ``--save`` stores the
translation only when it passes our validation and nothing was unsupported (or with
``--accept-unsupported``, when it still validates).
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

from shared.errors import WorkflowError
from shared.importers import FORMATS, ImportResult, translate
from shared.importers.result import MAX_SOURCE_BYTES

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def read_source(path: str) -> str:
    """The file's text, refusing files larger than the import limit before reading them."""
    file = Path(path)
    size = file.stat().st_size
    if size > MAX_SOURCE_BYTES:
        raise WorkflowError(
            f"{path} is {size} bytes; at most {MAX_SOURCE_BYTES}", code="IMPORT_TOO_LARGE"
        )
    return file.read_text(encoding="utf-8")


def _print_text(result: ImportResult, out: Any) -> None:
    print(json.dumps(result.definition, indent=2, ensure_ascii=False), file=out)
    for label, findings in (("warning", result.warnings), ("unsupported", result.unsupported)):
        for finding in findings:
            print(
                f"{label:12} {finding.code:28} {finding.path or '/'}  {finding.message}", file=out
            )
    for issue in result.issues:
        print(f"{'invalid':12} {issue.code:28} {issue.path or '/'}  {issue.message}", file=out)
    state = "valid" if result.valid else "NOT valid"
    print(
        f"{state}: {len(result.warnings)} warning(s), {len(result.unsupported)} unsupported, "
        f"{len(result.issues)} validation issue(s)",
        file=out,
    )


async def _save(args: argparse.Namespace, definition: dict[str, Any]) -> str:
    from shared.cli.ops import cli_db, runtime_for

    runtime = runtime_for(cli_db(args))
    async with runtime:
        created = await runtime.app.create_workflow(definition)
    return f"saved workflow {created.name} v{created.version} ({created.id})"


def cmd_import(args: argparse.Namespace) -> int:
    import sys

    try:
        text = read_source(args.file)
    except OSError as exc:
        print(f"wfe import: error: cannot read {args.file}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE
    except UnicodeDecodeError:
        print(f"wfe import: error: {args.file} is not UTF-8 text", file=sys.stderr)
        return EXIT_USAGE
    try:
        result = translate(args.source_format, text, name=args.name)
    except WorkflowError as exc:
        print(f"{exc.code}  {exc.message}", file=sys.stderr)
        return EXIT_FAILED
    if args.json:
        print(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
    else:
        _print_text(result, sys.stdout)
    if not args.save:
        return EXIT_OK if result.valid else EXIT_FAILED
    if not result.valid:
        print("not saved: the translation does not pass validation", file=sys.stderr)
        return EXIT_FAILED
    if result.unsupported and not args.accept_unsupported:
        print(
            "not saved: some constructs are unsupported (see above); pass "
            "--accept-unsupported to save it anyway",
            file=sys.stderr,
        )
        return EXIT_FAILED
    print(asyncio.run(_save(args, result.definition)), file=sys.stderr)
    return EXIT_OK


def add_parser(commands: Any, command: Any, common: Any) -> None:
    """Register ``import`` on the ``wfe`` sub-command parser."""
    parser = command(commands, "import", "translate a Cloud Workflows or Step Functions definition")
    parser.add_argument("file", metavar="FILE")
    parser.add_argument(
        "--from", dest="source_format", choices=FORMATS, required=True, help="source format"
    )
    parser.add_argument("--name", help="name of the workflow (default: imported-...)")
    parser.add_argument("--save", action="store_true", help="store it (default: dry run)")
    parser.add_argument(
        "--accept-unsupported",
        action="store_true",
        help="with --save: store a valid translation even with unsupported constructs",
    )
    common(parser)
    parser.set_defaults(handler=cmd_import)
