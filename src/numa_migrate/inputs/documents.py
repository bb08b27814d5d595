"""Bounded JSON and TOML documents (YAML: :mod:`numa_migrate.inputs.yamldoc`).

Each reader returns plain Python values (dict with str keys, list, str, int, float, bool,
None) that are checked against :class:`~numa_migrate.inputs.bounds.DocBounds`: nesting
depth, integer digits, string length and list/object size; ``NaN`` and infinities are
refused in every format, and so are duplicate keys. YAML is read without anchors and
aliases (an alias bomb is refused at its first anchor, never expanded) and without
explicit tags other than the standard scalar, list and mapping ones.
"""

from __future__ import annotations

import json
import math
import tomllib
from pathlib import Path
from typing import Any, NoReturn

from numa_migrate.core.errors import ParseError
from numa_migrate.inputs.bounds import DEFAULT, MAX_FLOAT_CHARS, DocBounds
from numa_migrate.inputs.files import decode_utf8, read_bytes


def short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _Refused(Exception):
    """Raised inside a parser's hook; turned into a ParseError at the edge."""


def check_bounds(value: Any, bounds: DocBounds, fail: type[ParseError], source: str | None) -> Any:
    """Walk ``value`` (iteratively) and check it against ``bounds``."""

    def refuse(path: str, message: str) -> NoReturn:
        where = path if len(path) <= 60 else path[:57] + "..."
        raise fail(f"{where or 'the document'}: {message}", source=source)

    limit = 10 ** bounds.max_int_digits
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack:
        item, path, depth = stack.pop()
        if isinstance(item, bool) or item is None:
            continue
        if isinstance(item, int):
            if not -limit < item < limit:
                refuse(path, f"integer of more than {bounds.max_int_digits} digits")
        elif isinstance(item, float):
            if not math.isfinite(item):
                refuse(path, f"{item} is not a finite number")
        elif isinstance(item, str):
            if len(item) > bounds.max_string_chars:
                refuse(path, f"string of {len(item)} characters, more than "
                             f"{bounds.max_string_chars}")
        elif isinstance(item, dict | list):
            if depth >= bounds.max_depth:
                refuse(path, f"nested more than {bounds.max_depth} levels deep")
            if len(item) > bounds.max_items:
                refuse(path, f"{len(item)} members, more than {bounds.max_items}")
            if isinstance(item, dict):
                for key, member in item.items():
                    if not isinstance(key, str):
                        refuse(path, f"key {short(repr(key))} is not a string")
                    if len(key) > bounds.max_string_chars:
                        refuse(path, "key too long")
                    stack.append((member, f"{path}.{key}" if path else key, depth + 1))
            else:
                for i, member in enumerate(item):
                    stack.append((member, f"{path}[{i}]", depth + 1))
        else:
            refuse(path, f"unsupported value of type {type(item).__name__}")
    return value


# --------------------------------------------------------------------------- JSON


def _json_int(bounds: DocBounds) -> Any:
    def parse(text: str) -> int:
        digits = len(text.lstrip("-"))
        if digits > bounds.max_int_digits:
            raise _Refused(f"integer of {digits} digits ({short(text, 24)}), more than "
                           f"{bounds.max_int_digits}")
        return int(text)

    return parse


def _json_float(text: str) -> float:
    if len(text) > MAX_FLOAT_CHARS:
        raise _Refused(f"number {short(text, 24)} has more than {MAX_FLOAT_CHARS} characters")
    value = float(text)
    if not math.isfinite(value):
        raise _Refused(f"number {short(text, 24)} is out of range (not a finite number)")
    return value


def _json_constant(text: str) -> NoReturn:
    raise _Refused(f"{text} is not allowed (only finite numbers)")


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _Refused(f"key {short(repr(key))} is given twice")
        out[key] = value
    return out


def bounded_text(
    text: str | bytes,
    *,
    source: str | None,
    bounds: DocBounds,
    error: type[ParseError],
) -> str:
    """A document's text within ``bounds.max_bytes`` (bytes checked before they are decoded,
    as strict UTF-8)."""
    if isinstance(text, bytes):
        if len(text) > bounds.max_bytes:
            raise error(f"document of {len(text)} bytes, more than {bounds.max_bytes}",
                        source=source)
        return decode_utf8(text, source=source, error=error)
    if len(text) > bounds.max_bytes:
        raise error(f"document of {len(text)} characters, more than {bounds.max_bytes}",
                    source=source)
    return text


def parse_json(
    text: str | bytes,
    *,
    source: str | None = None,
    bounds: DocBounds = DEFAULT,
    error: type[ParseError] = ParseError,
) -> Any:
    """One JSON document (text, or bytes read as strict UTF-8)."""
    text = bounded_text(text, source=source, bounds=bounds, error=error)
    try:
        value = json.loads(text, parse_int=_json_int(bounds), parse_float=_json_float,
                           parse_constant=_json_constant, object_pairs_hook=_json_object)
    except _Refused as exc:
        raise error(f"not accepted JSON: {exc}", source=source) from None
    except json.JSONDecodeError as exc:
        raise error(f"not JSON: line {exc.lineno}, column {exc.colno}: {exc.msg}",
                    source=source) from None
    except RecursionError:
        raise error(f"not accepted JSON: nested more than {bounds.max_depth} levels deep",
                    source=source) from None
    except ValueError as exc:  # e.g. an integer beyond Python's own conversion limit
        raise error(f"not accepted JSON: {short(str(exc), 80)}", source=source) from None
    return check_bounds(value, bounds, error, source)


def load_json(path: Path | str, *, what: str = "JSON file", bounds: DocBounds = DEFAULT,
              error: type[ParseError] = ParseError) -> Any:
    """The JSON document in the regular file ``path``."""
    data = read_bytes(path, what=what, max_bytes=bounds.max_bytes, error=error)
    return parse_json(data, source=str(path), bounds=bounds, error=error)


# --------------------------------------------------------------------------- TOML


def _toml_message(message: str) -> str:
    head, sep, tail = message.rpartition(" (at line ")
    if sep and tail.endswith(")"):
        line, _, column = tail[:-1].partition(", column ")
        return f"line {line}, column {column}: {head}"
    if message.endswith(" (at end of document)"):
        return f"at the end of the file: {message.removesuffix(' (at end of document)')}"
    return message


def parse_toml(
    text: str | bytes,
    *,
    source: str | None = None,
    bounds: DocBounds = DEFAULT,
    error: type[ParseError] = ParseError,
) -> dict[str, Any]:
    """One TOML document; dates and times are refused (no format of ours has them)."""
    text = bounded_text(text, source=source, bounds=bounds, error=error)
    try:
        value = tomllib.loads(text, parse_float=_json_float)
    except _Refused as exc:
        raise error(f"not accepted TOML: {exc}", source=source) from None
    except tomllib.TOMLDecodeError as exc:
        raise error(f"not valid TOML: {_toml_message(str(exc))}", source=source) from None
    except RecursionError:
        raise error(f"not accepted TOML: nested more than {bounds.max_depth} levels deep",
                    source=source) from None
    except ValueError as exc:
        raise error(f"not accepted TOML: {short(str(exc), 80)}", source=source) from None
    return check_bounds(value, bounds, error, source)  # type: ignore[no-any-return]


def load_toml(path: Path | str, *, what: str = "TOML file", bounds: DocBounds = DEFAULT,
              error: type[ParseError] = ParseError) -> dict[str, Any]:
    data = read_bytes(path, what=what, max_bytes=bounds.max_bytes, error=error)
    return parse_toml(data, source=str(path), bounds=bounds, error=error)
