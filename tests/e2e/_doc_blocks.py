"""The shell blocks of the Markdown docs: what ``test_readme.py`` runs, and how.

A block is a fenced ``console``, ``bash``, ``sh`` or ``shell`` block. Its commands are
the lines after a ``$ `` prompt (with the lines that complete them: a trailing
backslash, an open quote); the other lines are output. A block without any prompt is
all commands. A block preceded by ``<!-- not-run: why -->`` is not run, and says why.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

SHELLS = frozenset({"console", "bash", "sh", "shell"})
_FENCE = re.compile(r"^```\s*([\w-]*)\s*$")
_NOT_RUN = re.compile(r"^<!--\s*not-run:\s*(.+?)\s*-->\s*$")


@dataclass
class Block:
    """One shell block: where it starts, its commands, and why it is not run (if so)."""

    path: Path
    line: int
    commands: list[str] = field(default_factory=list)
    not_run: str | None = None

    @property
    def where(self) -> str:
        return f"{self.path.name}:{self.line}"


def shell_blocks(path: Path) -> list[Block]:
    """Every shell block of the Markdown file ``path``, in order."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    index = 0
    while index < len(lines):
        match = _FENCE.match(lines[index])
        if match is None:
            index += 1
            continue
        end = next(i for i in range(index + 1, len(lines)) if lines[i].startswith("```"))
        if match.group(1) in SHELLS:
            before = next((lines[i] for i in range(index - 1, -1, -1) if lines[i].strip()), "")
            reason = _NOT_RUN.match(before)
            block = Block(path, index + 1, not_run=reason.group(1) if reason else None)
            block.commands = commands(lines[index + 1 : end])
            found.append(block)
        index = end + 1
    return found


def commands(body: list[str]) -> list[str]:
    """The commands of a block's lines (see the module docstring)."""
    prompted = any(line.startswith("$ ") for line in body)
    found: list[str] = []
    index = 0
    while index < len(body):
        line = body[index]
        index += 1
        if prompted and not line.startswith("$ "):
            continue  # output
        text = line[2:] if prompted else line
        if not text.strip() or text.lstrip().startswith("#"):
            continue
        while not complete(text) and index < len(body):
            text += "\n" + body[index]
            index += 1
        found.append(text)
    return found


def complete(command: str) -> bool:
    """Whether bash parses ``command`` as whole (no open quote, no trailing backslash)."""
    if command.rstrip().endswith("\\"):
        return False
    checked = subprocess.run(["bash", "-n", "-c", command], capture_output=True, check=False)
    return checked.returncode == 0
