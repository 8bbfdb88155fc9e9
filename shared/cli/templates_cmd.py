"""``wfe templates list|show ID|new ID``: the template gallery on the command line.

``new`` prints the instantiated definition (JSON) or writes it with ``--out``; it is
validated as ``wfe validate`` does, and ``--save`` stores it in the local database.
``--param k=v`` sets one parameter: ``v`` is read as JSON when it parses (``42``,
``true``, ``{"a": 1}``), else taken as a string; ``--params-file`` reads a JSON or YAML
object first, and ``--param`` values go over it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from shared.engine.validation import parse_document, validate_definition
from shared.errors import DefinitionInvalid, WorkflowError
from shared.templates import get_template, instantiate, list_templates

__all__ = ["add_parser"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _param(text: str) -> tuple[str, Any]:
    """``k=v`` of ``--param``."""
    name, sep, raw = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=VALUE")
    try:
        return name, json.loads(raw)
    except ValueError:
        return name, raw


def _parameters(args: argparse.Namespace) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if args.params_file:
        path = Path(args.params_file)
        values = parse_document(path.read_text(encoding="utf-8"), path.name)
    values.update(dict(args.param or []))
    return values


def cmd_list(args: argparse.Namespace) -> int:
    templates = list_templates()
    if args.json:
        print(json.dumps([t.summary() for t in templates], indent=2, ensure_ascii=False))
        return EXIT_OK
    for template in templates:
        print(f"{template.id:26} {template.name}")
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    template = get_template(args.template_id)
    if args.json:
        print(json.dumps(template.to_dict(), indent=2, ensure_ascii=False))
        return EXIT_OK
    print(f"{template.id}: {template.name}\n\n{template.description}\n")
    print(f"tags: {', '.join(template.tags)}\nparameters:")
    for name, schema in template.parameters.get("properties", {}).items():
        kind = schema.get("type", "any")
        default = json.dumps(schema.get("default"), ensure_ascii=False)
        print(f"  {name} ({kind}, default {default}): {schema.get('description', '')}")
    print("example: " + json.dumps(template.example, ensure_ascii=False))
    return EXIT_OK


async def _save(args: argparse.Namespace, definition: dict[str, Any]) -> str:
    from shared.cli.ops import cli_db, runtime_for

    runtime = runtime_for(cli_db(args))
    async with runtime:
        created = await runtime.app.create_workflow(definition)
    return f"saved workflow {created.name} v{created.version} ({created.id})"


def cmd_new(args: argparse.Namespace) -> int:
    from shared.composition import build_registry

    definition = instantiate(args.template_id, _parameters(args), args.name)
    validate_definition(definition, build_registry())
    text = json.dumps(definition, indent=2, ensure_ascii=False)
    if args.out:
        Path(args.out).write_text(text + "\n", encoding="utf-8")
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        print(text)
    if args.save:
        print(asyncio.run(_save(args, definition)), file=sys.stderr)
    return EXIT_OK


def _guarded(handler: Any) -> Any:
    """Template and validation errors as ``CODE  path  message`` lines, exit 1."""

    def run(args: argparse.Namespace) -> int:
        try:
            code: int = handler(args)
        except OSError as exc:
            print(f"wfe templates: error: {exc.strerror or exc}", file=sys.stderr)
            return EXIT_USAGE
        except DefinitionInvalid as exc:
            for issue in exc.issues:
                print(
                    f"{exc.code}  {issue.code}  {issue.path or '/'}  {issue.message}",
                    file=sys.stderr,
                )
            return EXIT_FAILED
        except WorkflowError as exc:
            print(f"{exc.code}  {exc.path or '/'}  {exc.message}", file=sys.stderr)
            return EXIT_FAILED
        return code

    return run


def add_parser(commands: Any, command: Any, common: Any) -> None:
    """Register ``templates`` on the ``wfe`` sub-command parser."""
    parser = command(commands, "templates", "list, show and instantiate workflow templates")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = command(actions, "list", "every template of the gallery")
    common(listing, db=False)
    listing.set_defaults(handler=_guarded(cmd_list))
    show = command(actions, "show", "one template: description, parameters, example")
    show.add_argument("template_id", metavar="ID")
    common(show, db=False)
    show.set_defaults(handler=_guarded(cmd_show))
    new = command(actions, "new", "instantiate a template into a definition")
    new.add_argument("template_id", metavar="ID")
    new.add_argument("--param", action="append", type=_param, metavar="NAME=VALUE")
    new.add_argument("--params-file", metavar="FILE", help="a JSON or YAML object of parameters")
    new.add_argument("--name", help="the workflow's name instead of the template's")
    new.add_argument("--out", metavar="FILE", help="write the definition here (default: stdout)")
    new.add_argument("--save", action="store_true", help="store it in the local database")
    common(new)
    new.set_defaults(handler=_guarded(cmd_new))
