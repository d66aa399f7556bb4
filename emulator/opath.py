"""A small OPATH filter language: parse once into a predicate, then run it over stored objects.

Supported: `-eq -ne -like -notlike -and -or -not`, parentheses, an optional outer `{ }`, `$true $false $null`,
single/double-quoted strings ('' and "" escape a quote) and barewords. Property names are case-insensitive;
string comparison is case-insensitive. A multi-valued property matches `-eq`/`-like` when any element matches;
`-ne`/`-notlike` are their negations (so `PersistedCapabilities -ne 'M365Auditing'` excludes holders of it).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

Predicate = Callable[[dict[str, Any]], bool]

_NULL = object()  # the $null literal
_TOKEN = re.compile(
    r"""
    \s*(?:
      (?P<lp>\() | (?P<rp>\)) |
      (?P<op>-(?:eq|ne|like|notlike|and|or|not))(?![\w-]) |
      '(?P<sq>(?:[^']|'')*)' |
      "(?P<dq>(?:[^"]|"")*)" |
      (?P<var>\$(?:true|false|null))(?!\w) |
      (?P<word>[^\s()'"$-][^\s()'"]*)
    )""",
    re.VERBOSE | re.IGNORECASE,
)


class OpathError(ValueError):
    """The filter text is not valid OPATH (or names a property that cannot be filtered)."""


def _tokenize(text: str) -> list[tuple[str, Any]]:
    tokens: list[tuple[str, Any]] = []
    pos, end = 0, len(text.rstrip())
    while pos < end:
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise OpathError(f"Invalid filter syntax near position {pos}: {text[pos : pos + 20]!r}")
        kind = match.lastgroup
        raw = match.group(kind)
        if kind == "op":
            tokens.append(("op", raw.lower()))
        elif kind == "sq":
            tokens.append(("value", raw.replace("''", "'")))
        elif kind == "dq":
            tokens.append(("value", raw.replace('""', '"')))
        elif kind == "var":
            tokens.append(("value", {"$true": True, "$false": False, "$null": _NULL}[raw.lower()]))
        else:
            tokens.append((kind, raw))
        pos = match.end()
    return tokens


def _matches_eq(literal: Any) -> Callable[[Any], bool]:
    """Build an equality test against one literal, case-insensitive, element-wise for lists."""
    if literal is _NULL:
        return lambda v: v is None or v in ("", [])
    if isinstance(literal, bool):
        text = str(literal).lower()

        def scalar(v: Any) -> bool:
            return v is literal if isinstance(v, bool) else isinstance(v, str) and v.lower() == text
    else:
        text = str(literal).lower()

        def scalar(v: Any) -> bool:
            return v is not None and str(v).lower() == text

    def test(v: Any) -> bool:
        if isinstance(v, list):
            return any(scalar(item) for item in v)
        return scalar(v)

    return test


def _matches_like(literal: Any) -> Callable[[Any], bool]:
    if literal is _NULL or isinstance(literal, bool):
        return _matches_eq(literal)
    pattern = re.compile(
        "".join(".*" if ch == "*" else re.escape(ch) for ch in str(literal)), re.IGNORECASE | re.DOTALL
    )

    def test(v: Any) -> bool:
        if isinstance(v, list):
            return any(item is not None and pattern.fullmatch(str(item)) is not None for item in v)
        return v is not None and pattern.fullmatch(str(v)) is not None

    return test


class _Parser:
    def __init__(self, tokens: list[tuple[str, Any]], properties: dict[str, str]) -> None:
        self.tokens = tokens
        self.pos = 0
        self.properties = properties

    def peek(self) -> tuple[str, Any] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> tuple[str, Any]:
        token = self.peek()
        if token is None:
            raise OpathError("Invalid filter syntax: the filter ends unexpectedly.")
        self.pos += 1
        return token

    def parse(self) -> Predicate:
        predicate = self.or_expr()
        if self.peek() is not None:
            raise OpathError(f"Invalid filter syntax: unexpected {self.peek()[1]!r}.")
        return predicate

    def or_expr(self) -> Predicate:
        parts = [self.and_expr()]
        while self.peek() == ("op", "-or"):
            self.take()
            parts.append(self.and_expr())
        return parts[0] if len(parts) == 1 else (lambda o: any(p(o) for p in parts))

    def and_expr(self) -> Predicate:
        parts = [self.not_expr()]
        while self.peek() == ("op", "-and"):
            self.take()
            parts.append(self.not_expr())
        return parts[0] if len(parts) == 1 else (lambda o: all(p(o) for p in parts))

    def not_expr(self) -> Predicate:
        if self.peek() == ("op", "-not"):
            self.take()
            inner = self.not_expr()
            return lambda o: not inner(o)
        return self.primary()

    def primary(self) -> Predicate:
        kind, value = self.take()
        if kind == "lp":
            inner = self.or_expr()
            if self.take()[0] != "rp":
                raise OpathError("Invalid filter syntax: missing ')'.")
            return inner
        if kind != "word":
            raise OpathError(f"Invalid filter syntax: expected a property name, got {value!r}.")
        name = self.properties.get(value.lower())
        if name is None:
            raise OpathError(f"'{value}' is not a recognized filterable property.")
        op_kind, op = self.take()
        if op_kind != "op" or op not in ("-eq", "-ne", "-like", "-notlike"):
            raise OpathError(f"Invalid filter syntax: expected a comparison operator after '{value}'.")
        lit_kind, literal = self.take()
        if lit_kind not in ("value", "word"):
            raise OpathError(f"Invalid filter syntax: expected a value after '{op}'.")
        test = _matches_like(literal) if op in ("-like", "-notlike") else _matches_eq(literal)
        if op in ("-ne", "-notlike"):
            return lambda o: not test(o.get(name))
        return lambda o: test(o.get(name))


def compile_filter(text: str, properties: Iterable[str]) -> Predicate:
    """Parse `text` into a predicate over dicts keyed by the canonical names in `properties`."""
    stripped = text.strip()
    if stripped.startswith("{") and stripped.endswith("}"):
        stripped = stripped[1:-1]
    tokens = _tokenize(stripped)
    if not tokens:
        raise OpathError("Invalid filter syntax: the filter is empty.")
    return _Parser(tokens, {p.lower(): p for p in properties}).parse()
