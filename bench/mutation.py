"""Sampled mutation testing of the engine core (issue 11): ``make mutation``.

Usage::

    .venv/bin/python bench/mutation.py [--sample 150] [--seed 11] [--ref HEAD]
                                       [--max-children 2] [--workdir build/mutation]

mutmut (configured in ``[tool.mutmut]`` of pyproject.toml: the six engine-core
modules, against ``tests/engine`` and ``tests/unit``) makes every mutant, but running
all of them takes hours on two cores. This driver copies the tree into ``--workdir``
(the working tree's files, or a commit's with ``--ref``, so edits in progress elsewhere
do not count), has mutmut generate the mutants there, draws a seeded sample of
``--sample`` of them, runs mutmut on that sample (each mutant against the tests that
cover its function) and prints one JSON object: killed, survived, timeouts (counted as
killed: the tests did not pass), no-tests, the score ``killed / (killed + survived +
no tests)`` and the survivors' names (``mutmut show NAME`` in the workdir shows each).
Tests that already fail on the unmutated tree are left out, and listed.
``score_behaviour_changing`` leaves out the survivors listed, each with its reason, in
bench/mutation_equivalent.txt (reviewed by hand: text of messages, dead branches);
mutant names follow the code, so a changed function needs its entries reviewed again.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
KILLED = {1, 3, 24, -24, 36, 152, 255}
"""mutmut exit codes that mean the tests failed (a kill, or a timeout)."""
SURVIVED = {0}
NO_TESTS = {5, 33}

_GENERATE = """
import sys
from pathlib import Path
from mutmut.__main__ import create_mutants
from mutmut.utils.file_utils import copy_also_copy_files, copy_src_dir, setup_source_paths
Path("mutants").mkdir(exist_ok=True)
copy_src_dir()
copy_also_copy_files()
setup_source_paths()
create_mutants(int(sys.argv[1]))
"""


def copy_tree(workdir: Path, ref: str | None) -> None:
    """Fill ``workdir`` with the project's files: a commit's, or the working tree's."""
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    if ref is not None:
        with tempfile.TemporaryFile() as archive:
            subprocess.run(["git", "archive", ref], cwd=ROOT, stdout=archive, check=True)
            archive.seek(0)
            subprocess.run(["tar", "-x", "-C", str(workdir)], stdin=archive, check=True)
        return
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            target = workdir / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def deselect_failing(workdir: Path) -> list[str]:
    """Leave out the tests that fail without any mutant (work in progress elsewhere):
    mutmut refuses to start on a red suite, and they could kill nothing anyway.

    They run where mutmut runs them, in ``mutants/``: it holds only the source paths and
    the tests, so a test that reads another part of the tree (a bench script) fails there
    though it passes in the full copy."""
    selection = tomllib.loads((workdir / "pyproject.toml").read_text())["tool"]["mutmut"][
        "pytest_add_cli_args_test_selection"
    ]
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-rf", *selection],
        cwd=workdir / "mutants",
        capture_output=True,
        text=True,
    )
    failing = sorted(
        {line.split()[1] for line in run.stdout.splitlines() if line.startswith("FAILED ")}
    )
    if failing:
        pyproject = workdir / "pyproject.toml"
        extra = "".join(f'  "--deselect", "{nodeid}",\n' for nodeid in failing)
        text = pyproject.read_text().replace(
            "pytest_add_cli_args = [", "pytest_add_cli_args = [\n" + extra, 1
        )
        pyproject.write_text(text)
    return failing


def mutant_names(workdir: Path) -> list[str]:
    """Every mutant mutmut generated, in a stable order."""
    names: list[str] = []
    for meta in sorted((workdir / "mutants").rglob("*.py.meta")):
        names.extend(sorted(json.loads(meta.read_text())["exit_code_by_key"]))
    return names


def results(workdir: Path, sample: list[str]) -> dict[str, int | None]:
    codes: dict[str, int | None] = {}
    for meta in (workdir / "mutants").rglob("*.py.meta"):
        codes.update(json.loads(meta.read_text())["exit_code_by_key"])
    return {name: codes.get(name) for name in sample}


def equivalents(path: Path) -> dict[str, str]:
    """Survivors judged not to change behaviour: ``name  # why`` per line."""
    if not path.exists():
        return {}
    found: dict[str, str] = {}
    for line in path.read_text().splitlines():
        name, _, why = line.partition("#")
        if name.strip():
            found[name.strip()] = why.strip()
    return found


def report(
    codes: dict[str, int | None], total: int, seed: int, equivalent: dict[str, str]
) -> dict[str, Any]:
    killed = sorted(n for n, c in codes.items() if c in KILLED)
    survived = sorted(n for n, c in codes.items() if c in SURVIVED)
    untested = sorted(n for n, c in codes.items() if c in NO_TESTS)
    other = sorted(n for n, c in codes.items() if c not in KILLED | SURVIVED | NO_TESTS)
    judged = len(killed) + len(survived) + len(untested)
    same = [n for n in survived + untested if n in equivalent]
    changing = judged - len(same)
    return {
        "mutants_total": total,
        "sampled": len(codes),
        "seed": seed,
        "killed": len(killed),
        "survived": len(survived),
        "no_tests": len(untested),
        "not_judged": len(other),
        "score": round(len(killed) / judged, 4) if judged else None,
        "equivalent_survivors": len(same),
        "score_behaviour_changing": round(len(killed) / changing, 4) if changing else None,
        "survivors": [n for n in survived + untested if n not in equivalent],
        "equivalent": same,
        "not_judged_names": other,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sample", type=int, default=150)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--ref", help="test this commit instead of the working tree")
    parser.add_argument("--max-children", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=ROOT / "build" / "mutation")
    parser.add_argument(
        "--equivalent",
        type=Path,
        default=ROOT / "bench" / "mutation_equivalent.txt",
        help="survivors reviewed as not changing behaviour, left out of score_behaviour_changing",
    )
    parser.add_argument(
        "--report-only", action="store_true", help="score the last run in --workdir again"
    )
    args = parser.parse_args(argv)

    workdir = args.workdir.resolve()
    if args.report_only:
        names = mutant_names(workdir)
        sample = sorted(random.Random(args.seed).sample(names, min(args.sample, len(names))))
        summary = report(
            results(workdir, sample), len(names), args.seed, equivalents(args.equivalent)
        )
        print(json.dumps(summary, indent=2))
        return 0
    copy_tree(workdir, args.ref)
    mutmut = [sys.executable, "-c", "from mutmut.__main__ import cli; cli()"]
    subprocess.run(
        [sys.executable, "-c", _GENERATE, str(args.max_children)],
        cwd=workdir,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    failing = deselect_failing(workdir)
    names = mutant_names(workdir)
    sample = sorted(random.Random(args.seed).sample(names, min(args.sample, len(names))))
    run = subprocess.run(
        [*mutmut, "run", "--max-children", str(args.max_children), *sample],
        cwd=workdir,
        stdout=sys.stderr,
    )
    summary = report(results(workdir, sample), len(names), args.seed, equivalents(args.equivalent))
    summary["mutmut_exit_code"] = run.returncode
    summary["deselected_failing_tests"] = failing
    print(json.dumps(summary, indent=2))
    return 0 if run.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
