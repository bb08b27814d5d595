"""CPU sets and CPU lists as libvirt and Nova write them: ``"0-5,34,46-48"``, ``"1-4,^3"``.

:class:`CpuSet` is a ``frozenset[int]`` (so set algebra and every place that takes a
``frozenset[int]`` keep working) that knows how to read and write the list syntax. Reading is
bounded: every id must be below ``bound`` (by default :data:`~numa_migrate.core.limits.MAX_CPUS`;
the host's own CPU count where the caller knows the host), and a range is checked against the
bound *before* anything is expanded, so ``"0-4000000000"`` is refused at once with the field, the
value and the bound named.
"""

from __future__ import annotations

from collections.abc import Iterable
from collections.abc import Set as AbstractSet
from typing import Final

from numa_migrate.core.errors import ParseError
from numa_migrate.core.limits import MAX_CPUS

MAX_CPU_LIST_CHARS: Final = 256 * 1024
"""The longest CPU list read (every id of :data:`MAX_CPUS` written out is about 90 KiB)."""
_MAX_ID_DIGITS: Final = 20
_SHOWN: Final = 60


class CpuBoundError(ParseError):
    """A CPU list naming an id at or beyond the bound (the list is otherwise well formed)."""


def _shorten(text: str) -> str:
    return text if len(text) <= _SHOWN else f"{text[:_SHOWN]}... ({len(text)} characters)"


class CpuSet(frozenset[int]):
    """A set of CPU (or vCPU) ids; ``str()`` gives the canonical list (``"0-3,8,10-11"``)."""

    __slots__ = ()

    @classmethod
    def of(cls, cpus: Iterable[int]) -> CpuSet:
        """``cpus`` as a :class:`CpuSet` (itself when it already is one)."""
        return cpus if isinstance(cpus, CpuSet) else cls(cpus)

    @classmethod
    def parse(cls, spec: str, *, field: str = "CPU list", bound: int = MAX_CPUS) -> CpuSet:
        """Read a CPU list such as ``"0-3,^2,8"``; ids must be ``0 .. bound - 1``.

        Ranges and single ids are included, ``^N`` and ``^N-M`` are excluded from the result;
        empty elements (``"1,,2"``) are skipped, as libvirt and Nova do. Raises
        :class:`ParseError` naming ``field``, the element, the list and the bound.
        """
        if len(spec) > MAX_CPU_LIST_CHARS:
            raise ParseError(
                f"{field}: the CPU list {_shorten(spec)!r} is longer than "
                f"{MAX_CPU_LIST_CHARS} characters"
            )
        include: list[tuple[int, int]] = []
        exclude: list[tuple[int, int]] = []
        for raw in spec.split(","):
            rule = raw.strip()
            if not rule:
                continue
            target = include
            if rule.startswith("^"):
                target = exclude
                rule = rule[1:].strip()
            start_s, sep, end_s = rule.partition("-")
            start = _cpu_id(start_s, raw, spec, field)
            end = _cpu_id(end_s, raw, spec, field) if sep else start
            if start > end:
                raise ParseError(
                    f"{field}: invalid range {rule!r} in {_shorten(spec)!r} (start above end)"
                )
            if end >= bound:
                allowed = f"ids are 0-{bound - 1}" if bound > 0 else "no CPU id is allowed"
                raise CpuBoundError(
                    f"{field}: CPU id {end} in {_shorten(spec)!r} is beyond the bound ({allowed})"
                )
            target.append((start, end))
        ids: set[int] = set()
        for start, end in _merged(include):
            ids.update(range(start, end + 1))
        for start, end in _merged(exclude):
            if ids:
                ids.difference_update(range(start, end + 1))
        return cls(ids)

    def format(self) -> str:
        """Canonical compact form: sorted, consecutive ids as ranges (``"0-3,8,10-11"``)."""
        return _format(self)

    def __str__(self) -> str:
        return self.format()

    def __repr__(self) -> str:
        return f"CpuSet({self.format()!r})"

    # Set algebra keeps the type (frozenset's own operators return a plain frozenset).
    def __or__(self, other: AbstractSet[int]) -> CpuSet:  # type: ignore[override]
        return _typed(frozenset.__or__(self, other))

    def __and__(self, other: AbstractSet[object]) -> CpuSet:
        return _typed(frozenset.__and__(self, other))

    def __sub__(self, other: AbstractSet[object]) -> CpuSet:
        return _typed(frozenset.__sub__(self, other))

    def __xor__(self, other: AbstractSet[int]) -> CpuSet:  # type: ignore[override]
        return _typed(frozenset.__xor__(self, other))

    __ror__ = __or__
    __rand__ = __and__
    __rxor__ = __xor__


def _typed(result: object) -> CpuSet:
    # NotImplemented passes through, so Python tries the other operand's operator
    return result if result is NotImplemented else CpuSet(result)  # type: ignore[call-overload]


EMPTY: Final = CpuSet()


def _cpu_id(text: str, raw: str, spec: str, field: str) -> int:
    """One id as Nova reads it (``int()`` of the stripped text), ASCII only and short."""
    digits = text.strip()
    if len(digits) <= _MAX_ID_DIGITS and digits.isascii():
        try:
            return int(digits)
        except ValueError:
            pass
    raise ParseError(
        f"{field}: {_shorten(raw.strip())!r} is not a CPU id, a range 'A-B' or an "
        f"exclusion '^N' (in {_shorten(spec)!r})"
    )


def _merged(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Overlapping and adjacent ranges joined, so nothing is expanded twice."""
    out: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        if out and start <= out[-1][1] + 1:
            if end > out[-1][1]:
                out[-1] = (out[-1][0], end)
        else:
            out.append((start, end))
    return out


def _format(cpus: Iterable[int]) -> str:
    """Canonical compact form: sorted, consecutive ids as ranges (``"0-3,8,10-11"``)."""
    ids = sorted(set(cpus))
    parts: list[str] = []
    i = 0
    while i < len(ids):
        j = i
        while j + 1 < len(ids) and ids[j + 1] == ids[j] + 1:
            j += 1
        parts.append(str(ids[i]) if i == j else f"{ids[i]}-{ids[j]}")
        i = j + 1
    return ",".join(parts)
