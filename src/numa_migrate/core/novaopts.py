"""One grammar per Nova option value, as Nova 34 reads it, with bounds.

* ``hw:mem_page_size`` / ``hw_mem_page_size``: :func:`page_size` (``small``, ``large``,
  ``any``, a size in KiB or an IEC size string read like ``oslo_utils.strutils.string_to_bytes``:
  ``2MB``, ``1GiB``, ``2048KB``; ``b``/``bit`` count bits).
* ``[DEFAULT] reserved_huge_pages``: :func:`reserved_huge_pages_entry` (``node:0,size:2048,
  count:64``, oslo's ``Dict`` type: ``key:value`` pairs split on ``,``; ``size`` in KiB or an
  IEC size string as above, so ``2MB`` and ``1GiB`` are accepted and ``2M`` is not).
* ``[compute] cpu_dedicated_set``, ``[compute] cpu_shared_set``, ``[DEFAULT] vcpu_pin_set``:
  :func:`cpu_set_option` (Nova's CPU list syntax, see :class:`~numa_migrate.core.cpuset.CpuSet`;
  a list that names no CPU is refused, as nova-compute refuses it).

Where Nova accepts a value that can never mean anything (a negative node or count, a page
size of 0 or a fraction of a KiB, a size beyond any page size that exists, a number too big
for a float), the grammar refuses it with the bound named; the page size keeps Nova's error
type (``MemoryPageSizeInvalid``), also for the overflow that Nova 34 itself lets escape as an
``OverflowError``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from numa_migrate.core.cpuset import CpuSet
from numa_migrate.core.errors import InvalidRequestError, ParseError
from numa_migrate.core.limits import MAX_CPUS, MAX_NUMA_NODES, MAX_PAGE_COUNT, MAX_PAGE_SIZE_KIB
from numa_migrate.core.model.guest import PageSizeKind, PageSizeRequest

PAGE_SIZE_SYNTAX: Final = (
    "small, large, any, a size in KiB (2048) or with a unit (2MB, 1GB, 1GiB)"
)
RESERVED_PAGES_SYNTAX: Final = (
    "node:N,size:SIZE,count:N (SIZE in KiB, or with a unit: 2MB, 1GB, 1GiB)"
)
CPU_SET_OPTIONS: Final = ("cpu_dedicated_set", "cpu_shared_set", "vcpu_pin_set")

_MAX_TEXT: Final = 64
"""Longest page size or integer text read (longer ones are no page size and no count)."""
_MAX_ENTRY: Final = 1024
"""Longest ``reserved_huge_pages`` entry read."""
_IEC: Final = re.compile(r"(^[-+]?\d*\.?\d+)([KMGTPEZYRQ]i?)?(b|bit|B)$")
_IEC_EXPONENT: Final = dict(zip("KMGTPEZYRQ", range(1, 11), strict=True))


def _shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


class OptionError(ParseError):
    """A Nova option value outside its grammar or bounds; ``detail`` says what is wrong."""

    def __init__(self, option: str, value: str, detail: str) -> None:
        sep = "" if detail.startswith(":") else " "
        super().__init__(f"{option}: {_shorten(value)!r}{sep}{detail}")
        self.option = option
        self.value = value
        self.detail = detail


# --------------------------------------------------------------------------- sizes


def iec_size_kib(text: str) -> float:
    """An IEC size string (``2MB``, ``1GiB``, ``16bit``) in KiB, as Nova computes it.

    ``strutils.string_to_bytes(text, return_int=True) / units.Ki``: the bytes rounded up to
    a whole byte, then divided. Raises ``ValueError`` for another form and for a number that
    does not fit a float (Nova 34 lets the latter escape as ``OverflowError``).
    """
    if len(text) > _MAX_TEXT:
        raise ValueError(text)
    match = _IEC.match(text)
    if not match:
        raise ValueError(text)
    magnitude = float(match.group(1))
    if match.group(3) in ("b", "bit"):
        magnitude /= 8
    prefix = match.group(2)
    size = magnitude * 1024 ** _IEC_EXPONENT[prefix[0]] if prefix else magnitude
    if not math.isfinite(size):
        raise ValueError(text)
    return math.ceil(size) / 1024


def page_size(text: str, *, key: str = "hw:mem_page_size") -> PageSizeRequest:
    """``hw:mem_page_size`` (or the image's ``hw_mem_page_size``) as Nova reads it.

    Raises :class:`InvalidRequestError` with Nova's ``MemoryPageSizeInvalid``.
    """
    if text in ("small", "large", "any"):
        return PageSizeRequest(PageSizeKind(text))
    try:
        if text.isdigit():
            if len(text) > _MAX_TEXT:
                raise ValueError(text)
            size: float = int(text)
        else:
            size = iec_size_kib(text)
    except ValueError:
        raise InvalidRequestError(
            "MemoryPageSizeInvalid",
            f"{key}={_shorten(text)!r} is not a page size; allowed: {PAGE_SIZE_SYNTAX}",
            key=key,
        ) from None
    if size > MAX_PAGE_SIZE_KIB:
        raise InvalidRequestError(
            "MemoryPageSizeInvalid",
            f"{key}={_shorten(text)!r} is beyond the largest page size there is "
            f"({MAX_PAGE_SIZE_KIB} KiB, 16 GiB)",
            key=key,
        )
    return PageSizeRequest.explicit(size)


# --------------------------------------------------------------------------- reserved pages


@dataclass(frozen=True, slots=True)
class ReservedPages:
    """One ``reserved_huge_pages`` entry: ``count`` pages of ``size_kib`` on host ``node``."""

    node: int
    size_kib: int
    count: int


def _oslo_dict(text: str) -> dict[str, str] | str:
    """oslo.config's ``Dict()`` of strings: the pairs, or why the text is not one."""
    result: dict[str, str] = {}
    s = text.strip()
    if not s:
        return result
    pairs = s.split(",")
    while pairs:
        pair = pairs.pop(0)
        # a part without ':' is joined to the next one, as oslo does
        while ":" not in pair:
            if not pairs:
                return f"part {_shorten(pair.strip())!r} is not KEY:VALUE"
            pair += "," + pairs.pop(0)
        key, value = (p.strip() for p in pair.split(":", 1))
        if not key:
            return "has an empty key"
        if key in result:
            return f"gives {key!r} twice"
        result[key] = value
    return result


def _int(text: str) -> int | None:
    """Python's ``int()`` (which Nova uses) on short ASCII text, else None."""
    if len(text) > _MAX_TEXT or not text.isascii():
        return None
    try:
        return int(text)
    except ValueError:
        return None


def _bounded(option: str, item: str, key: str, text: str, top: int) -> int:
    value = _int(text)
    if value is None or value < 0:
        raise OptionError(option, item, f": {key} {_shorten(text)!r} is not a non-negative integer")
    if value > top:
        raise OptionError(option, item, f": {key} {value} is beyond the bound ({top})")
    return value


def _reserved_size_kib(option: str, item: str, text: str) -> int:
    value = _int(text)
    if value is None:
        try:
            size = iec_size_kib(text)
        except ValueError:
            raise OptionError(
                option, item,
                f": size {_shorten(text)!r} is not a page size in KiB or with a unit "
                "(2048, 2MB, 1GB)",
            ) from None
        if size != int(size):
            raise OptionError(
                option, item, f": size {_shorten(text)!r} is not a whole number of KiB"
            )
        value = int(size)
    if value <= 0:
        raise OptionError(option, item, ": size must be more than 0 KiB")
    if value > MAX_PAGE_SIZE_KIB:
        raise OptionError(
            option, item,
            f": size {value} KiB is beyond the largest page size ({MAX_PAGE_SIZE_KIB} KiB)",
        )
    return value


def reserved_huge_pages_entry(
    item: str, *, option: str = "reserved_huge_pages"
) -> ReservedPages:
    """One ``reserved_huge_pages`` value (``node:0,size:2048,count:64``) as Nova reads it.

    Keys besides ``node``, ``size`` and ``count`` are ignored, as Nova ignores them. Raises
    :class:`OptionError`.
    """
    if len(item) > _MAX_ENTRY:
        raise OptionError(option, item, f"is longer than {_MAX_ENTRY} characters")
    parts = _oslo_dict(item)
    if isinstance(parts, str):
        raise OptionError(option, item, f"is not {RESERVED_PAGES_SYNTAX}: it {parts}")
    missing = [k for k in ("node", "size", "count") if k not in parts]
    if missing:
        unknown = sorted(set(parts) - {"node", "size", "count"})
        if unknown:
            raise OptionError(
                option, item,
                f"is not {RESERVED_PAGES_SYNTAX}: it lacks {', '.join(missing)} "
                f"(unknown keys: {', '.join(unknown)})",
            )
        raise OptionError(option, item, f"lacks {', '.join(missing)} ({RESERVED_PAGES_SYNTAX})")
    node = _bounded(option, item, "node", parts["node"], MAX_NUMA_NODES - 1)
    count = _bounded(option, item, "count", parts["count"], MAX_PAGE_COUNT)
    size = _reserved_size_kib(option, item, parts["size"])
    return ReservedPages(node=node, size_kib=size, count=count)


def reserved_huge_pages(
    items: Iterable[str], *, option: str = "reserved_huge_pages"
) -> tuple[ReservedPages, ...]:
    """Every value of the multi-valued option; one (node, size) given twice is refused
    (Nova would silently keep the last one)."""
    out: dict[tuple[int, int], ReservedPages] = {}
    for item in items:
        entry = reserved_huge_pages_entry(item, option=option)
        key = (entry.node, entry.size_kib)
        if key in out:
            raise OptionError(
                option, item, f"reserves node {entry.node} size {entry.size_kib} KiB again "
                f"(node {entry.node} size {entry.size_kib} KiB is given twice)"
            )
        out[key] = entry
    return tuple(out[k] for k in sorted(out))


# --------------------------------------------------------------------------- CPU sets


def cpu_set_option(text: str, *, option: str, bound: int = MAX_CPUS) -> CpuSet:
    """``cpu_dedicated_set`` / ``cpu_shared_set`` / ``vcpu_pin_set``: a non-empty CPU list.

    ``bound`` is the host's CPU count when the caller knows the host. Raises
    :class:`ParseError` naming ``option``.
    """
    cpus = CpuSet.parse(text, field=option, bound=bound)
    if not cpus:
        raise OptionError(option, text, "names no CPU (nova-compute refuses it)")
    return cpus
