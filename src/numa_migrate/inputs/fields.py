"""A typed reader of parsed documents whose errors carry the path of the field.

::

    doc = root(data, source="cases.jsonl line 3", label="case", error=InvalidCaseError)
    flavor = doc.obj().req("flavor").obj(known=("vcpus", "memory_mib", ...))
    vcpus = flavor.req("vcpus").integer(minimum=1, maximum=MAX_GUEST_VCPUS,
                                        why="QEMU's maximum vCPUs")

fails with ``cases.jsonl line 3: flavor.vcpus: 100000 is more than 4096 (QEMU's maximum
vCPUs)``; a wrong type with ``inventory.toml: hosts.cmp-1.uri: expected a string, got 3``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Final, NoReturn, TypeVar

from numa_migrate.core.errors import ParseError

_T = TypeVar("_T")
_MISSING: Final = object()
_UNPRINTABLE: Final = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069"
                                 "\ud800-\udfff]")
"""Control characters (line breaks, tabs, escapes), bidi overrides and lone surrogates."""


def one_line(text: str) -> str:
    """``text`` fit for one line of a terminal: line breaks and tabs become spaces, other
    control characters, bidi overrides and lone surrogates U+FFFD."""
    text = re.sub("[\r\n\t]+", " ", text)
    return _UNPRINTABLE.sub("\ufffd", text)


def show(value: object, limit: int = 40) -> str:
    """``repr`` of ``value``, shortened to about ``limit`` characters."""
    if isinstance(value, int) and not isinstance(value, bool):
        text = str(value) if value.bit_length() < 200 else f"<an integer of about " \
            f"{int(value.bit_length() * 0.30103) + 1} digits>"
    else:
        text = repr(value) if not isinstance(value, dict | list) else \
            f"<{kind(value)} of {len(value)}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def kind(value: object) -> str:
    """The JSON name of ``value``'s type (object, list, string, integer, ...)."""
    names = {dict: "object", list: "list", str: "string", bool: "boolean", int: "integer",
             float: "number", type(None): "null"}
    for typ, name in names.items():
        if type(value) is typ:
            return name
    return "object" if isinstance(value, dict) else type(value).__name__


@dataclass(frozen=True, slots=True)
class _Ctx:
    source: str | None
    error: type[ParseError]


def root(value: Any, *, source: str | None = None, label: str = "",
         error: type[ParseError] = ParseError) -> Node:
    """The reader of a whole document; ``label`` starts every field path ("case")."""
    return Node(value, label, _Ctx(source, error))


class Node:
    """One value of a document and the path to it."""

    __slots__ = ("ctx", "path", "value")

    def __init__(self, value: Any, path: str, ctx: _Ctx) -> None:
        self.value = value
        self.path = path
        self.ctx = ctx

    # ------------------------------------------------------------------ errors

    def error(self, message: str) -> ParseError:
        """The error for this field: ``SOURCE: PATH: message``."""
        text = f"{self.path}: {message}" if self.path else message
        return self.ctx.error(text, source=self.ctx.source)

    def fail(self, message: str) -> NoReturn:
        raise self.error(message)

    def expected(self, what: str) -> NoReturn:
        self.fail(f"expected {what}, got {kind(self.value)} {show(self.value)}"
                  if not isinstance(self.value, dict | list) else
                  f"expected {what}, got {kind(self.value)}")

    def renamed(self, path: str) -> Node:
        """The same value under another path (a part that is named on its own: "host")."""
        return Node(self.value, path, self.ctx)

    def child(self, value: Any, step: str) -> Node:
        if step.startswith("["):
            path = f"{self.path}{step}"
        else:
            path = f"{self.path}.{step}" if self.path else step
        return Node(value, path, self.ctx)

    # ------------------------------------------------------------------ types

    @property
    def is_null(self) -> bool:
        return self.value is None

    def obj(self, *, known: Iterable[str] | None = None) -> Obj:
        if not isinstance(self.value, dict):
            self.expected("an object")
        return Obj(self, known)

    def items(self, *, max_items: int | None = None, what: str = "a list") -> list[Node]:
        if not isinstance(self.value, list):
            self.expected(what)
        if max_items is not None and len(self.value) > max_items:
            self.fail(f"{len(self.value)} items, more than {max_items}")
        return [self.child(v, f"[{i}]") for i, v in enumerate(self.value)]

    def text(self, *, max_chars: int | None = None, non_empty: bool = False,
             one_line: bool = False) -> str:
        """A string; ``one_line``: no control character (line break, tab, escape), bidi
        override or lone surrogate, as for names and notes that are printed."""
        if not isinstance(self.value, str):
            self.expected("a string")
        if non_empty and not self.value.strip():
            self.fail("must not be empty")
        if max_chars is not None and len(self.value) > max_chars:
            self.fail(f"{len(self.value)} characters, more than {max_chars}")
        bad = _UNPRINTABLE.search(self.value) if one_line else None
        if bad is not None:
            self.fail(f"character U+{ord(bad.group()):04X} at position {bad.start()} is not "
                      "allowed (one line of printable text: no line break, tab, control "
                      "character or bidi override)")
        return self.value

    def boolean(self) -> bool:
        if not isinstance(self.value, bool):
            self.expected("true or false")
        return self.value

    def integer(self, *, minimum: int | None = 0, maximum: int | None = None,
                why: str = "") -> int:
        """An integer in ``minimum .. maximum``; ``why`` explains the maximum."""
        value = self.value
        if isinstance(value, bool) or not isinstance(value, int):
            self.expected("an integer")
        if minimum is not None and value < minimum:
            self.fail(f"{show(value)} is less than {minimum}")
        if maximum is not None and value > maximum:
            self.fail(f"{show(value)} is more than {maximum}" + (f" ({why})" if why else ""))
        return int(value)

    def number(self, *, minimum: float | None = None, maximum: float | None = None,
               above: float | None = None) -> float:
        value = self.value
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.expected("a number")
        if isinstance(value, int) and value.bit_length() > 1000:
            self.fail(f"{show(value)} is out of range")
        result = float(value)
        if not math.isfinite(result):
            self.fail(f"{show(value)} is not a finite number")
        if above is not None and result <= above:
            self.fail(f"{show(value)} must be more than {above:g}")
        if minimum is not None and result < minimum:
            self.fail(f"{show(value)} is less than {minimum:g}")
        if maximum is not None and result > maximum:
            self.fail(f"{show(value)} is more than {maximum:g}")
        return result

    def choice(self, allowed: Iterable[str]) -> str:
        options = tuple(allowed)
        if not isinstance(self.value, str) or self.value not in options:
            self.fail(f"one of {', '.join(options)} (got {show(self.value)})")
        return self.value

    def int_list(self, *, minimum: int = 0, maximum: int | None = None, why: str = "",
                 max_items: int | None = None, what: str = "a list of integers") -> list[int]:
        if not isinstance(self.value, list):
            self.expected(what)
        return [n.integer(minimum=minimum, maximum=maximum, why=why)
                for n in self.items(max_items=max_items)]

    def str_map(self, *, max_chars: int | None = None) -> dict[str, str]:
        return {k: v.text(max_chars=max_chars) for k, v in self.obj().items()}

    def int_key_map(self, read: Callable[[Node], _T], *, maximum: int | None = None,
                    why: str = "") -> dict[int, _T]:
        """An object whose keys are non-negative integers written as strings."""
        out: dict[int, _T] = {}
        for key, node in self.obj().items():
            if not (key.isascii() and key.isdigit()) or (len(key) > 1 and key[0] == "0") \
                    or len(key) > 20:
                self.fail(f"keys must be integers written as strings ('0', '12'), "
                          f"got {show(key)}")
            number = int(key)
            if maximum is not None and number > maximum:
                self.fail(f"key {number} is more than {maximum}" + (f" ({why})" if why else ""))
            out[number] = read(node)
        return out


class Obj:
    """An object being read: fields by name, unknown keys refused by :meth:`done`."""

    __slots__ = ("known", "node", "seen")

    def __init__(self, node: Node, known: Iterable[str] | None = None) -> None:
        self.node = node
        self.known = None if known is None else tuple(known)
        self.seen: set[str] = set()
        if self.known is not None:
            unknown = sorted(str(k) for k in node.value if k not in self.known)
            if unknown:
                node.child(None, unknown[0]).fail(
                    f"unknown field (allowed: {', '.join(self.known)})")

    @property
    def path(self) -> str:
        return self.node.path

    def __contains__(self, key: str) -> bool:
        return key in self.node.value

    def req(self, key: str) -> Node:
        """The field ``key``; missing is an error."""
        self.seen.add(key)
        if key not in self.node.value:
            raise self.node.ctx.error(f"{self.node.child(None, key).path} is missing",
                                      source=self.node.ctx.source)
        return self.node.child(self.node.value[key], key)

    def opt(self, key: str) -> Node | None:
        """The field ``key``, or None when it is missing or null."""
        self.seen.add(key)
        value = self.node.value.get(key)
        return None if value is None else self.node.child(value, key)

    def get(self, key: str, read: Callable[[Node], _T], default: _T) -> _T:
        """``read`` of the field, or ``default`` when it is missing or null."""
        node = self.opt(key)
        return default if node is None else read(node)

    def list(self, key: str, *, max_items: int | None = None) -> list[Node]:
        """The members of the list field ``key``; none when it is missing or null."""
        node = self.opt(key)
        return [] if node is None else node.items(max_items=max_items)

    def items(self) -> Iterator[tuple[str, Node]]:
        for key, value in self.node.value.items():
            yield str(key), self.node.child(value, str(key))

    def done(self) -> None:
        """Refuse keys that no getter asked for."""
        unknown = sorted(str(k) for k in self.node.value if k not in self.seen)
        if unknown:
            self.node.child(None, unknown[0]).fail(
                f"unknown field (known: {', '.join(sorted(self.seen))})")
