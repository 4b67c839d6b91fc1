"""Metadata filters (equality, membership, ranges) and the reader's identity for access control.

Filters are parsed from the command line (``--filter lang=en``, ``--filter "tag=a|b"``,
``--filter year>=2020``) or given as a dict (``{"lang": "en", "tag": {"in": ["a", "b"]},
"year": {"gte": 2020}}``). Each store turns them into its own SQL; `matches` evaluates them in
Python (for tests and for stores without pushdown).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lmforge.errors import LmforgeError

OPS = ("eq", "in", "gt", "gte", "lt", "lte")
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
_CLI_FILTER = re.compile(r"^([A-Za-z_][A-Za-z0-9_.\-]*)\s*(>=|<=|!=|=|>|<)\s*(.*)$")

# Keys served by columns rather than by the document's metadata JSON.
BUILTIN_KEYS = {"source", "source_name", "doc_id", "title", "mtime", "page"}


@dataclass(frozen=True)
class Condition:
    key: str
    op: str
    value: Any


@dataclass(frozen=True)
class Principal:
    """Who is asking. A document with allowed groups is visible only to a principal in one of them
    (or named as ``user:NAME``); a document without allowed groups is public."""

    name: str | None = None
    groups: tuple[str, ...] = ()

    @property
    def tokens(self) -> list[str]:
        out = list(dict.fromkeys(self.groups))
        if self.name:
            out.append(f"user:{self.name}")
        return out


ANONYMOUS = Principal()


@dataclass
class Filters:
    conditions: list[Condition] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.conditions)


def coerce(value: str) -> Any:
    """Command-line values: numbers become numbers, true/false booleans, the rest stays text."""
    text = value.strip()
    if text.lower() in {"true", "false"}:
        return text.lower() == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_filters(spec: Mapping[str, Any] | Iterable[str] | Filters | None) -> Filters:
    """Build `Filters` from a dict, from ``key=value`` strings, or pass `Filters` through."""
    if spec is None:
        return Filters()
    if isinstance(spec, Filters):
        return spec
    conditions: list[Condition] = []
    if isinstance(spec, Mapping):
        for key, value in spec.items():
            _check_key(key)
            if isinstance(value, Mapping):
                for op, operand in value.items():
                    if op not in OPS:
                        raise LmforgeError(
                            f"filter {key}: unknown operator {op!r} (use {', '.join(OPS)})"
                        )
                    if op == "in":
                        operand = list(operand)
                    conditions.append(Condition(key, op, operand))
            elif isinstance(value, (list, tuple, set)):
                conditions.append(Condition(key, "in", list(value)))
            else:
                conditions.append(Condition(key, "eq", value))
        return Filters(conditions)
    for item in spec:
        match = _CLI_FILTER.match(item.strip())
        if not match:
            raise LmforgeError(
                f"bad filter {item!r}: use key=value, key=a|b, key>=x, key<=x, key>x or key<x"
            )
        key, op, raw = match.groups()
        if op == "!=":
            raise LmforgeError(f"bad filter {item!r}: != is not supported")
        if op == "=":
            values = [coerce(v) for v in raw.split("|")]
            conditions.append(
                Condition(key, "in", values) if len(values) > 1 else Condition(key, "eq", values[0])
            )
        else:
            conditions.append(
                Condition(key, {">": "gt", ">=": "gte", "<": "lt", "<=": "lte"}[op], coerce(raw))
            )
    return Filters(conditions)


def _check_key(key: str) -> None:
    if not _KEY.match(key):
        raise LmforgeError(f"bad filter key {key!r}: letters, digits, '_', '-' and '.' only")


def matches(filters: Filters, values: Mapping[str, Any]) -> bool:
    """Evaluate filters against a flat mapping of metadata (lists match if any element does)."""
    for cond in filters.conditions:
        value = values.get(cond.key)
        candidates = value if isinstance(value, list) else [value]
        if not any(_compare(c, cond) for c in candidates):
            return False
    return True


def _compare(value: Any, cond: Condition) -> bool:
    if value is None:
        return False
    try:
        if cond.op == "eq":
            return value == cond.value or str(value) == str(cond.value)
        if cond.op == "in":
            return value in cond.value or str(value) in {str(v) for v in cond.value}
        ops = {
            "gt": value > cond.value,
            "gte": value >= cond.value,
            "lt": value < cond.value,
            "lte": value <= cond.value,
        }
        return ops[cond.op]
    except TypeError:
        return False
