"""CPU lists as libvirt and Nova write them: ``"0-5,34,46-48"`` and exclusions ``"1-4,^3"``."""

from __future__ import annotations

from collections.abc import Iterable

from numa_migrate.core.errors import ParseError


def parse_cpu_spec(spec: str, *, field: str = "CPU list") -> frozenset[int]:
    """Parse a CPU list such as ``"0-3,^2,8"`` into a set of CPU ids.

    Ranges and single ids are included, ``^N`` and ``^N-M`` are excluded from the result;
    empty elements (``"1,,2"``) are skipped, as libvirt and Nova do.
    """
    include: set[int] = set()
    exclude: set[int] = set()
    for raw in spec.split(","):
        rule = raw.strip()
        if not rule:
            continue
        target = include
        if rule.startswith("^"):
            target = exclude
            rule = rule[1:].strip()
        start_s, sep, end_s = rule.partition("-")
        try:
            start = int(start_s.strip())
            end = int(end_s.strip()) if sep else start
        except ValueError:
            raise ParseError(
                f"{field}: {raw.strip()!r} is not a CPU id, a range 'A-B' or an exclusion '^N' "
                f"(in {spec!r})"
            ) from None
        if start > end or start < 0:
            raise ParseError(f"{field}: invalid range {raw.strip()!r} in {spec!r}")
        target.update(range(start, end + 1))
    return frozenset(include - exclude)


def format_cpu_spec(cpus: Iterable[int]) -> str:
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
