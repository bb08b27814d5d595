"""Bounds on documents (files, nesting, numbers, strings, lists).

Bounds on the *values* (CPU ids, vCPUs, memory, page sizes) are in
:mod:`numa_migrate.core.limits`; these bound the documents that carry them, so that the
worst document is refused in well under a second and a few MiB.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

MAX_FILE_BYTES: Final = 16 * 1024 * 1024
"""A document file (fleet, inventory, plan, report, nova.conf, charm YAML, XML)."""
MAX_LINE_BYTES: Final = 4 * 1024 * 1024
"""One line of a JSON Lines stream (one fit case)."""
MAX_DEPTH: Final = 32
"""Nesting of objects and lists (the deepest format, the matrix report, needs 9)."""
MAX_INT_DIGITS: Final = 20
"""Digits of an integer (2^64 has 20); a longer one is no count, id or size we know."""
MAX_FLOAT_CHARS: Final = 40
"""Characters of a number with a fraction or an exponent."""
MAX_STRING_CHARS: Final = 1024 * 1024
"""Characters of one string."""
MAX_ITEMS: Final = 1 << 20
"""Members of one list or object."""


@dataclass(frozen=True, slots=True)
class DocBounds:
    """The bounds one document is read with (the defaults suit every format we read)."""

    max_bytes: int = MAX_FILE_BYTES
    max_depth: int = MAX_DEPTH
    max_int_digits: int = MAX_INT_DIGITS
    max_string_chars: int = MAX_STRING_CHARS
    max_items: int = MAX_ITEMS


DEFAULT: Final = DocBounds()
