"""Cloud Workflows expressions (the text inside ``${...}``) translated into our CEL.

A small tokenizer and recursive-descent parser that emits CEL text; nothing is
evaluated. Variables become ``vars.NAME`` unless the scope maps the name (the main
workflow's params become ``input``, a parallel loop's value ``item``). A function or
construct without a CEL equivalent raises ``Unsupported``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from shared.importers.result import Unsupported

MAX_GCW_EXPRESSION = 4096
_TOKEN = re.compile(
    r"""\s*(?:
    (?P<num>\d+\.\d*(?:[eE][-+]?\d+)?|\d+(?:[eE][-+]?\d+)?|\.\d+)
    |(?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
    |(?P<name>[A-Za-z_][A-Za-z0-9_]*)
    |(?P<op>==|!=|<=|>=|//|[-+*/%<>()\[\]{},:.])
    )""",
    re.VERBOSE | re.DOTALL,
)
_KEYWORDS = {"and", "or", "not", "in", "true", "false", "null", "True", "False"}
_CASTS = {"int": "int", "double": "double", "string": "string"}
_UNARY_FUNCTIONS = {"len": "size({})", "keys": "{}.map(k, k)"}


def _tokens(source: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    position = 0
    text = source.rstrip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise Unsupported(
                "GCW_EXPRESSION_SYNTAX",
                f"cannot read the expression at character {position}: {text[position:][:20]!r}",
            )
        kind = match.lastgroup or "op"
        out.append((kind, match.group(kind)))
        position = match.end()
    return out


def _string_literal(token: str) -> str:
    body = token[1:-1]
    try:
        value = json.loads('"' + body.replace('"', '\\"').replace("\\'", "'") + '"')
    except ValueError:
        value = body
    return json.dumps(value, ensure_ascii=False)


class _Parser:
    def __init__(self, source: str, scope: Mapping[str, str]) -> None:
        if len(source) > MAX_GCW_EXPRESSION:
            raise Unsupported("GCW_EXPRESSION_TOO_LONG", "expression is too long")
        self.tokens = _tokens(source)
        self.position = 0
        self.scope = scope
        self.depth = 0

    def peek(self, offset: int = 0) -> tuple[str, str]:
        index = self.position + offset
        return self.tokens[index] if index < len(self.tokens) else ("end", "")

    def take(self, value: str | None = None) -> tuple[str, str]:
        token = self.peek()
        if value is not None and token[1] != value:
            raise Unsupported(
                "GCW_EXPRESSION_SYNTAX", f"expected {value!r}, found {token[1] or 'the end'!r}"
            )
        self.position += 1
        return token

    def parse(self) -> str:
        result = self.disjunction()
        if self.peek()[0] != "end":
            raise Unsupported("GCW_EXPRESSION_SYNTAX", f"unexpected {self.peek()[1]!r}")
        return result

    def _nested(self) -> None:
        self.depth += 1
        if self.depth > 50:
            raise Unsupported("GCW_EXPRESSION_TOO_DEEP", "expression nested too deeply")

    def disjunction(self) -> str:
        left = self.conjunction()
        while self.peek() == ("name", "or"):
            self.take()
            left = f"({left} || {self.conjunction()})"
        return left

    def conjunction(self) -> str:
        left = self.negation()
        while self.peek() == ("name", "and"):
            self.take()
            left = f"({left} && {self.negation()})"
        return left

    def negation(self) -> str:
        if self.peek() == ("name", "not"):
            self.take()
            self._nested()
            return f"!({self.negation()})"
        return self.comparison()

    def comparison(self) -> str:
        left = self.additive()
        while self.peek()[1] in ("==", "!=", "<", ">", "<=", ">=") or self.peek() == (
            "name",
            "in",
        ):
            op = self.take()[1]
            left = f"({left} {op} {self.additive()})"
        return left

    def additive(self) -> str:
        left = self.multiplicative()
        while self.peek()[1] in ("+", "-") and self.peek()[0] == "op":
            op = self.take()[1]
            right, left = _mixed(self.multiplicative(), left)
            left, right = _mixed(left, right)
            left = f"({left} {op} {right})"
        return left

    def multiplicative(self) -> str:
        left = self.unary()
        while self.peek()[1] in ("*", "/", "//", "%") and self.peek()[0] == "op":
            op = self.take()[1]
            right = self.unary()
            if op == "/":  # Cloud Workflows' / always gives a double
                left = f"(double({left}) / double({right}))"
            elif op == "//":
                left = f"({left} / {right})"
            else:
                right, left = _mixed(right, left)
                left, right = _mixed(left, right)
                left = f"({left} {op} {right})"
        return left

    def unary(self) -> str:
        if self.peek() == ("op", "-"):
            self.take()
            self._nested()
            return f"(-{self.unary()})"
        return self.postfix(self.primary())

    def postfix(self, base: str) -> str:
        while True:
            kind, value = self.peek()
            if value == "." and kind == "op":
                self.take()
                kind, name = self.take()
                if kind != "name":
                    raise Unsupported("GCW_EXPRESSION_SYNTAX", "expected a name after '.'")
                base = f"{base}.{name}" if name.isidentifier() else f'{base}["{name}"]'
            elif value == "[" and kind == "op":
                self.take()
                self._nested()
                index = self.disjunction()
                self.take("]")
                base = f"{base}[{index}]"
            else:
                return base

    def arguments(self) -> list[str]:
        self.take("(")
        self._nested()
        args: list[str] = []
        while self.peek()[1] != ")":
            args.append(self.disjunction())
            if self.peek()[1] == ",":
                self.take()
            elif self.peek()[1] != ")":
                raise Unsupported("GCW_EXPRESSION_SYNTAX", "expected ',' or ')'")
        self.take(")")
        return args

    def primary(self) -> str:
        kind, value = self.take()
        if kind == "num":
            return value
        if kind == "str":
            return _string_literal(value)
        if kind == "op" and value == "(":
            self._nested()
            inner = self.disjunction()
            self.take(")")
            return f"({inner})"
        if kind == "op" and value == "[":
            self._nested()
            items = []
            while self.peek()[1] != "]":
                items.append(self.disjunction())
                if self.peek()[1] == ",":
                    self.take()
            self.take("]")
            return "[" + ", ".join(items) + "]"
        if kind == "op" and value == "{":
            self._nested()
            entries = []
            while self.peek()[1] != "}":
                key = self.disjunction()
                self.take(":")
                entries.append(f"{key}: {self.disjunction()}")
                if self.peek()[1] == ",":
                    self.take()
            self.take("}")
            return "{" + ", ".join(entries) + "}"
        if kind == "name":
            return self.name(value)
        raise Unsupported("GCW_EXPRESSION_SYNTAX", f"unexpected {value or 'end'!r}")

    def name(self, first: str) -> str:
        if first in ("true", "True"):
            return "true"
        if first in ("false", "False"):
            return "false"
        if first == "null":
            return "null"
        if first in _KEYWORDS:
            raise Unsupported("GCW_EXPRESSION_SYNTAX", f"unexpected {first!r}")
        # a dotted function name: text.match_regex(...), map.get(...), sys.now()
        parts = [first]
        offset = 0
        while self.peek(offset) == ("op", ".") and self.peek(offset + 1)[0] == "name":
            parts.append(self.peek(offset + 1)[1])
            offset += 2
        if self.peek(offset)[1] == "(":
            self.position += offset
            return self.call(".".join(parts))
        if first in self.scope:
            return self.scope[first]
        return f"vars.{first}"

    def call(self, function: str) -> str:
        args = self.arguments()
        if function in _UNARY_FUNCTIONS and len(args) == 1:
            return _UNARY_FUNCTIONS[function].format(args[0])
        if function in _CASTS and len(args) == 1:
            return f"{_CASTS[function]}({args[0]})"
        if function == "map.get" and len(args) == 2:
            if args[1].startswith("["):
                raise Unsupported(
                    "GCW_FUNCTION", "map.get with a list of keys has no CEL equivalent"
                )
            return f"({args[1]} in {args[0]} ? {args[0]}[{args[1]}] : null)"
        if function == "default" and len(args) == 2:
            found = re.fullmatch(r"\((.+) in (.+) \? .+ : null\)", args[0])
            if found:
                return f"({found.group(1)} in {found.group(2)} ? {args[0]} : {args[1]})"
            raise Unsupported(
                "GCW_FUNCTION",
                "default() is translated only around map.get (CEL has no 'is defined' test "
                "for an arbitrary expression)",
            )
        if function == "text.match_regex" and len(args) == 2:
            return f"{args[0]}.matches({args[1]})"
        if function == "text.to_lower" or function == "text.to_upper":
            raise Unsupported("GCW_FUNCTION", f"{function} has no equivalent in our CEL")
        raise Unsupported(
            "GCW_FUNCTION", f"function {function}() has no equivalent in our CEL expressions"
        )


_INT = re.compile(r"^-?\d+$")


def _is_double(text: str) -> bool:
    if text.startswith("(double("):
        return True
    code = re.sub(r'"(?:[^"\\]|\\.)*"', '""', text)
    return re.search(r"(?<![\w.])\d+\.\d+", code) is not None


def _mixed(literal: str, other: str) -> tuple[str, str]:
    """Cloud Workflows mixes int and double in arithmetic; CEL does not: an integer
    literal next to a double operand becomes a double literal."""
    if _INT.match(literal) and _is_double(other):
        return literal + ".0", other
    return literal, other


def to_cel(source: str, scope: Mapping[str, str] | None = None) -> str:
    """The CEL text of a Cloud Workflows expression (without ``${`` and ``}``)."""
    return _Parser(source, scope or {}).parse()


WHOLE = re.compile(r"^\s*\$\{(.*)\}\s*$", re.DOTALL)


def is_expression(value: object) -> bool:
    return isinstance(value, str) and WHOLE.match(value) is not None


def expression_text(value: str) -> str:
    match = WHOLE.match(value)
    return match.group(1) if match else value
