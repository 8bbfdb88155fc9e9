"""Every shell block of README.md and docs/*.md, run as written against a real ``wfe dev``.

The server runs on a free port (the README says 8080) in a scratch folder that links
``examples``, ``.venv`` and ``README.md``, so nothing here touches the checkout's
``.wfe``. The commands run in order in one bash (the variables one block sets, the
next uses), with ``pipefail`` and ``curl --fail-with-body``: each must exit 0, so each
HTTP answer must be 2xx. A block that cannot run here carries
``<!-- not-run: why -->``; the test counts those, so a new one is a decision.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from _doc_blocks import Block, shell_blocks
from processes import ROOT, ServiceProcess

pytestmark = pytest.mark.slow

README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
NOT_RUN_IN_README = 3
"""Quick start (make test/make dev), the websocat streams, the broken-file report."""
NOT_RUN_IN_DOCS = 23
"""gcloud, terraform and docker (deploy, gcp), functions run alone (rest, streams,
triggers), streams that stay open, an API key, sessions shown with their answers."""

_PREAMBLE = """\
set -o pipefail
curl() { command curl --show-error --fail-with-body --max-time 30 "$@"; }
"""


def _script(blocks: list[Block], port: int, scratch: Path) -> str:
    """One bash script running every command, reporting each one that fails."""
    parts = [_PREAMBLE]
    for block in blocks:
        if block.not_run is not None:
            continue
        for number, command in enumerate(block.commands, start=1):
            text = command.replace("127.0.0.1:8080", f"127.0.0.1:{port}")
            text = text.replace("localhost:8080", f"127.0.0.1:{port}")
            text = text.replace("/tmp/", f"{scratch}/")
            label = f"{block.where} command {number}"
            parts.append(
                f"printf '\\n>>> %s\\n' '{label}'\n{{ {text}\n}}\n__rc=$?\n"
                f"[ $__rc -eq 0 ] || printf '\\nFAILED %s (exit %s)\\n' '{label}' $__rc\n"
            )
    return "\n".join(parts)


def _scratch(folder: Path) -> Path:
    """A folder that looks like a fresh checkout to the commands (links, no state)."""
    for name in ("examples", ".venv", "README.md"):
        (folder / name).symlink_to(ROOT / name)
    return folder


@contextlib.contextmanager
def _dev(scratch: Path) -> Iterator[ServiceProcess]:
    """``wfe dev`` as ``make dev`` runs it: default demo port, examples, its own key."""
    argv = [str(ROOT / ".venv/bin/wfe"), "dev", "--port", "{port}", "--db", ".wfe/wfe.db"]
    env = {k: "" for k in os.environ if k.startswith("WFE_")}
    process = ServiceProcess(argv, scratch, env, cwd=scratch)
    try:
        process.wait_healthy()
        yield process
    finally:
        output = process.stop()
        assert "Traceback" not in output, output[-4000:]


def _run(blocks: list[Block], scratch: Path) -> str:
    """Run the blocks against a fresh ``wfe dev``; the output, with no command failed."""
    missing = [tool for tool in ("bash", "curl", "jq", "base64", "sed") if not shutil.which(tool)]
    assert not missing, f"the documented commands need {missing} (make test runs them)"
    with _dev(scratch) as dev:
        demo = httpx.get(f"{dev.base}/").json()["demoService"]
        assert demo == f"http://127.0.0.1:{dev.port + 1}" or dev.port == 65535
        script = scratch / "blocks.sh"
        script.write_text(_script(blocks, dev.port, scratch))
        env = {k: v for k, v in os.environ.items() if not k.startswith("WFE_")}
        done = subprocess.run(
            ["bash", str(script)],
            cwd=scratch,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,  # in order: a curl error under its command
            text=True,
            timeout=240,
            check=False,
        )
    output = done.stdout
    failed = re.findall(r"^FAILED (.+)$", output, flags=re.MULTILINE)
    assert not failed, f"{failed}\n{output[-6000:]}"
    return output


def test_readme_blocks_are_found_and_not_run_ones_say_why() -> None:
    blocks = shell_blocks(README)
    skipped = [b for b in blocks if b.not_run is not None]
    assert len(skipped) == NOT_RUN_IN_README, [(b.where, b.not_run) for b in skipped]
    assert all(len(b.not_run or "") > 10 for b in skipped)
    assert sum(len(b.commands) for b in blocks if b.not_run is None) >= 30


@pytest.mark.timeout(300)  # about 60 s alone; a loaded 2-core machine doubles it
def test_every_readme_command_works_against_wfe_dev(tmp_path: Path) -> None:
    output = _run(shell_blocks(README), _scratch(tmp_path))
    assert output.count(">>> ") >= 30
    # What the blocks say happens does: the headline workflow ships (CLI and server), the
    # approval posted through the API calls the demo service and takes maria's decision.
    assert "succeeded  ship-order v1" in output
    assert '"tracking": "1Z' in output
    assert '"decidedBy": "maria"' in output
    assert "succeeded  order-fulfilment v1" in output


@pytest.mark.timeout(300)
def test_every_docs_command_works_against_wfe_dev(tmp_path: Path) -> None:
    blocks = [block for path in DOCS for block in shell_blocks(path)]
    skipped = [b for b in blocks if b.not_run is not None]
    assert len(skipped) == NOT_RUN_IN_DOCS, [(b.where, b.not_run) for b in skipped]
    output = _run(blocks, _scratch(tmp_path))
    assert output.count(">>> ") >= 30
    assert "succeeded  order-fulfilment v1" in output
