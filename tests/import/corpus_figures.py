"""Import every corpus file and measure the outcomes; ``--write`` records them in the
manifest that ``test_import_corpus.py`` checks.

    .venv/bin/python tests/import/corpus_figures.py           # print figures
    .venv/bin/python tests/import/corpus_figures.py --write   # re-record manifest.json

Outcome per file: ``clean`` (valid, no finding), ``warnings`` (valid, warnings only),
``unsupported`` (valid, with unsupported constructs reported), ``invalid`` (the
translation does not pass our validation), ``refused`` (the source was refused).
"""

from __future__ import annotations

import json
import sys
from collections import Counter, defaultdict
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent.parent))

from shared.errors import WorkflowError  # noqa: E402
from shared.importers import translate  # noqa: E402
from shared.importers.result import load_source  # noqa: E402

CORPUS = ROOT / "corpus"
MANIFEST = ROOT / "manifest.json"


def corpus_files() -> list[tuple[str, Path]]:
    return [
        (fmt, path)
        for fmt in ("gcw", "asl")
        for path in sorted((CORPUS / fmt).iterdir())
        if path.is_file()
    ]


def outcome(fmt: str, path: Path) -> dict[str, Any]:
    try:
        result = translate(fmt, path.read_text(encoding="utf-8"))
    except WorkflowError as exc:
        return {"outcome": "refused", "code": exc.code}
    if not result.valid:
        status = "invalid"
    elif result.unsupported:
        status = "unsupported"
    elif result.warnings:
        status = "warnings"
    else:
        status = "clean"
    return {
        "outcome": status,
        "unsupported": sorted({f.code for f in result.unsupported}),
        "warnings": sorted({f.code for f in result.warnings}),
        "issues": sorted({i.code for i in result.issues}),
    }


def _walk(value: Any) -> Iterator[tuple[str, Any]]:
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, Mapping):
            for key, item in node.items():
                yield str(key), item
                stack.append(item)
        elif isinstance(node, list):
            stack.extend(node)


def constructs(fmt: str, path: Path) -> set[str]:
    """The source constructs a file uses (what the figures are broken down by)."""
    found: set[str] = set()
    source = load_source(path.read_text(encoding="utf-8"), allow_list=True)
    for key, value in _walk(source):
        if fmt == "gcw":
            if key == "call" and isinstance(value, str):
                found.add(
                    "call http.*"
                    if value.startswith("http.")
                    else "call sys.*"
                    if value.startswith("sys.")
                    else "call events.*"
                    if value.startswith("events.")
                    else "call connector/other"
                )
            elif key in (
                "assign",
                "switch",
                "for",
                "parallel",
                "try",
                "retry",
                "except",
                "raise",
                "return",
                "next",
                "steps",
            ):
                found.add(key)
            elif key == "params":
                found.add("subworkflow/params")
        else:
            if (
                key == "Type"
                and isinstance(value, str)
                and value
                in ("Pass", "Task", "Choice", "Wait", "Succeed", "Fail", "Parallel", "Map")
            ):
                found.add(value)
            elif key in (
                "Retry",
                "Catch",
                "InputPath",
                "Parameters",
                "ResultSelector",
                "ResultPath",
                "OutputPath",
                "ItemsPath",
                "ItemSelector",
                "MaxConcurrency",
                "Arguments",
                "Output",
                "Assign",
            ):
                found.add(key)
            elif key == "Resource" and isinstance(value, str):
                found.add("Task http:invoke" if ":::http:invoke" in value else "Task other ARN")
                if value.endswith(".waitForTaskToken"):
                    found.add(".waitForTaskToken")
            elif key == "QueryLanguage" and value == "JSONata":
                found.add("JSONata")
    return found


def main(argv: list[str]) -> int:
    results = {f"{fmt}/{path.name}": outcome(fmt, path) for fmt, path in corpus_files()}
    if "--write" in argv:
        MANIFEST.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    for fmt in ("gcw", "asl"):
        mine = {k: v for k, v in results.items() if k.startswith(fmt + "/")}
        totals = Counter(v["outcome"] for v in mine.values())
        print(
            f"\n## {fmt}: {len(mine)} files: "
            + ", ".join(f"{k} {n}" for k, n in sorted(totals.items()))
        )
        by_construct: dict[str, Counter[str]] = defaultdict(Counter)
        for name, result in mine.items():
            for construct in constructs(fmt, CORPUS / name):
                by_construct[construct][result["outcome"]] += 1
        print("| construct | files | clean | warnings | unsupported | invalid |")
        print("|---|---|---|---|---|---|")
        for construct, counts in sorted(by_construct.items()):
            print(
                f"| {construct} | {sum(counts.values())} | {counts['clean']} | "
                f"{counts['warnings']} | {counts['unsupported']} | {counts['invalid']} |"
            )
        codes: Counter[str] = Counter()
        for result in mine.values():
            codes.update(f"unsupported {c}" for c in result.get("unsupported", []))
            codes.update(f"warning {c}" for c in result.get("warnings", []))
        print("\n| finding | files |\n|---|---|")
        for code, count in sorted(codes.items(), key=lambda kv: (-kv[1], kv[0])):
            print(f"| {code} | {count} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
