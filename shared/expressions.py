"""CEL expressions and ``${...}`` templates, compiled once and never ``eval``-ed.

Expressions see these roots: ``vars`` (execution variables), ``input`` (execution
input), ``prev`` (output of the previous step in the scope), ``item`` and ``index``
(inside a map body), ``execution`` (id, workflowId, version), and in trigger
filters ``data`` and ``attributes``. The CEL runtime is the Rust core of the
``common-expression-language`` package; Python objects are passed as values only.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import cel

from shared.errors import Issue, StepFailed, pointer_token

STEP_ROOTS = frozenset({"vars", "input", "prev", "item", "index", "execution"})
"""Variables a step expression may reference."""
TRIGGER_ROOTS = frozenset({"data", "attributes", "topic"})
MAX_EXPRESSION_LENGTH = 4096
MAX_COMPREHENSION_NESTING = 2
"""Deepest nesting of ``map/filter/all/exists/exists_one`` refused at save time beyond."""
EXPRESSION_COST_BUDGET = 4_000_000
"""Estimated work (about 0.2 s of CEL) an evaluation may take; see ``_Cost``."""
_MACRO_CALL = re.compile(r"\.\s*(?:map|filter|all|exists|exists_one)\s*(\()")
_STRING = re.compile(r"""[rRbB]*('\'\'|\"\"\"|'|")(?:\\.|(?!\1).)*?\1""", re.DOTALL)
_TEMPLATE = re.compile(r"\$\{(.+?)\}(?!\})", re.DOTALL)
_MACRO_VAR = re.compile(r"\.(?:map|filter|all|exists|exists_one)\(\s*([A-Za-z_]\w*)\s*,")


@dataclass(frozen=True)
class _Cost:
    """A static bound on what evaluating an expression with comprehensions may cost.

    The CEL runtime is neither interruptible nor cost-tracked (``common-expression-language``
    0.10 has no limit option) and holds the GIL, so a thread cannot keep the event loop
    free either. Measured there, a comprehension over ``n`` items costs about
    ``n**2 * 55 ns`` (the accumulated result is copied at every step), two nested ones
    ``n**3 * 300 ns``: a unit of estimate is about 55 ns.
    So before evaluating, the widest collection the expression could range over is
    bounded from its data, its literal list items and its ``+`` concatenations.
    """

    nesting: int = 0
    comprehensions: int = 0
    literal_items: int = 0
    concatenations: int = 0

    def estimate(self, env: Mapping[str, Any]) -> int:
        widest = _widest_collection(env.values())
        reach = (widest + self.literal_items) * (1 + self.concatenations)
        sequential = self.comprehensions - self.nesting + 1
        weight = sequential * math.prod([6] * (self.nesting - 1))
        return weight * math.prod([reach] * (self.nesting + 1))


def _cost_of(source: str) -> _Cost:
    code = _STRING.sub(lambda m: " " * len(m.group(0)), source)
    opens = {m.start(1) for m in _MACRO_CALL.finditer(code)}
    if not opens:
        return _Cost()
    stack: list[bool] = []
    nesting = 0
    plus_depths: list[int] = []
    for position, char in enumerate(code):
        if char in "([{":
            stack.append(position in opens)
            nesting = max(nesting, sum(stack))
        elif char in ")]}" and stack:
            stack.pop()
        elif char == "+":
            plus_depths.append(sum(stack))
    # a ``+`` at comprehension depth k can only lengthen what depth k + 1 ranges over
    concatenations = sum(1 for depth in plus_depths if depth < nesting)
    return _Cost(nesting, len(opens), code.count(",") - len(opens) + 1, concatenations)


def _widest_collection(values: Any) -> int:
    """The longest list or map anywhere in ``values`` (strings cannot be ranged over)."""
    widest = 0
    stack: list[Any] = list(values)
    while stack:
        node = stack.pop()
        if isinstance(node, Mapping):
            widest = max(widest, len(node))
            stack.extend(node.values())
        elif isinstance(node, list | tuple):
            widest = max(widest, len(node))
            stack.extend(node)
    return widest


@dataclass(frozen=True)
class Expression:
    """A compiled CEL expression."""

    source: str
    program: Any
    roots: frozenset[str] = frozenset()
    """The variables it references: only those are converted into CEL values."""
    cost: _Cost = _Cost()
    """Its comprehensions, from which an evaluation's cost is bounded before it runs."""

    def evaluate(self, env: Mapping[str, Any]) -> Any:
        """Evaluate against ``env``; runtime errors become a non-retryable step failure.

        An expression with comprehensions whose estimated cost on this data exceeds
        ``EXPRESSION_COST_BUDGET`` fails with EXPRESSION_LIMIT instead of running.
        """
        context = {k: env[k] for k in self.roots if k in env}
        if self.cost.nesting and self.cost.estimate(context) > EXPRESSION_COST_BUDGET:
            raise StepFailed(
                f"expression {self.source!r} would exceed the evaluation budget on this data"
                " (comprehensions over too many items)",
                code="EXPRESSION_LIMIT",
                retryable=False,
                details={"budget": EXPRESSION_COST_BUDGET},
            )
        try:
            return self.program.execute(context)
        except Exception as exc:  # the CEL runtime raises several builtin types
            raise StepFailed(
                f"expression {self.source!r} failed: {exc}",
                code="EXPRESSION_ERROR",
                retryable=False,
            ) from exc


@lru_cache(maxsize=4096)
def _compile_cached(source: str) -> Expression:
    program = cel.compile(source)
    return Expression(source, program, frozenset(program.variables()), _cost_of(source))


def compile_expression(
    source: str, path: str = "", roots: frozenset[str] = STEP_ROOTS
) -> tuple[Expression | None, list[Issue]]:
    """Compile ``source`` and check the variables it references against ``roots``."""
    if not isinstance(source, str) or not source.strip():
        return None, [Issue("EXPRESSION_EMPTY", "expression must be a non-empty string", path)]
    if len(source) > MAX_EXPRESSION_LENGTH:
        return None, [
            Issue(
                "EXPRESSION_TOO_LONG",
                f"expression longer than {MAX_EXPRESSION_LENGTH} characters",
                path,
            )
        ]
    try:
        expression = _compile_cached(source)
    except Exception as exc:
        message = str(exc).splitlines()[0]
        return None, [Issue("EXPRESSION_SYNTAX", f"invalid CEL: {message}", path)]
    if expression.cost.nesting > MAX_COMPREHENSION_NESTING:
        return None, [
            Issue(
                "EXPRESSION_LIMIT",
                f"comprehensions (map, filter, all, exists, exists_one) nested"
                f" {expression.cost.nesting} deep; at most {MAX_COMPREHENSION_NESTING}",
                path,
            )
        ]
    bound = set(_MACRO_VAR.findall(source))
    unknown = sorted(set(expression.program.variables()) - roots - bound)
    if unknown:
        return None, [
            Issue(
                "EXPRESSION_UNKNOWN_VARIABLE",
                f"unknown variable(s) {', '.join(unknown)}; allowed: {', '.join(sorted(roots))}",
                path,
            )
        ]
    return expression, []


def expression(source: str, roots: frozenset[str] = STEP_ROOTS) -> Expression:
    """Compile an expression already validated at save time (raises on bad input).

    A step evaluates the same few expressions at every run: the checked result is
    kept (a failed check is not, and raises again each time)."""
    compiled = _checked.get((source, roots))
    if compiled is not None:
        return compiled
    compiled, issues = compile_expression(source, roots=roots)
    if compiled is None:
        raise StepFailed(issues[0].message, code=issues[0].code, retryable=False)
    if len(_checked) >= _CHECKED_MAX:
        _checked.clear()  # bounded; refilled by the expressions in use
    _checked[(source, roots)] = compiled
    return compiled


_CHECKED_MAX = 4096
_checked: dict[tuple[str, frozenset[str]], Expression] = {}
"""Expressions ``compile_expression`` accepted, by (source, roots)."""


def _whole_expression(text: str) -> str | None:
    """The source of the expression when ``text`` is exactly one ``${expr}`` (rendered to
    the expression's typed value), else None (expressions spliced into text).

    Templates are a definition's few strings, asked at every run: the answer is kept for
    those short enough to hold an expression (a long prompt is matched each time)."""
    if len(text) > MAX_EXPRESSION_LENGTH + 3:
        return _match_whole(text)
    return _whole_cached(text)


def _match_whole(text: str) -> str | None:
    matches = list(_TEMPLATE.finditer(text))
    if len(matches) == 1 and matches[0].span() == (0, len(text)):
        return matches[0].group(1)
    return None


_whole_cached = lru_cache(maxsize=4096)(_match_whole)


def walk_strings(value: Any, path: str) -> Iterator[tuple[str, str]]:
    """Every string inside ``value`` with its JSON pointer under ``path``."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from walk_strings(item, f"{path}/{pointer_token(str(key))}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from walk_strings(item, f"{path}/{index}")


def check_template(value: Any, path: str, roots: frozenset[str] = STEP_ROOTS) -> list[Issue]:
    """Compile every ``${...}`` inside ``value`` (any JSON); return the problems found."""
    issues: list[Issue] = []
    for sub_path, text in walk_strings(value, path):
        for match in _TEMPLATE.finditer(text):
            _, found = compile_expression(match.group(1), sub_path, roots)
            issues.extend(found)
        if "${" in text and not _TEMPLATE.search(text):
            issues.append(Issue("TEMPLATE_SYNTAX", "unterminated ${ in template", sub_path))
    return issues


def render(value: Any, env: Mapping[str, Any], roots: frozenset[str] = STEP_ROOTS) -> Any:
    """Substitute templates in ``value`` (expressions may reference ``roots``).

    A string that is exactly one ``${expr}`` becomes the expression's typed value; a
    string with text around expressions gets their string forms spliced in.
    """
    if isinstance(value, str):
        if "${" not in value:
            return value
        whole = _whole_expression(value)
        if whole is not None:
            return expression(whole, roots).evaluate(env)
        return _TEMPLATE.sub(lambda m: _to_text(expression(m.group(1), roots).evaluate(env)), value)
    if isinstance(value, Mapping):
        return {key: render(item, env, roots) for key, item in value.items()}
    if isinstance(value, list):
        return [render(item, env, roots) for item in value]
    return value


def _to_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
