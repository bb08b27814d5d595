"""Why a guest cell does not fit a host cell: structured, with the numbers that matter."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum


class Code(StrEnum):
    TOO_FEW_HOST_CELLS = "too_few_host_cells"
    PAGE_SIZE_MISSING = "page_size_missing"
    PAGES_SHORT = "pages_short"
    PAGES_NOT_DIVISIBLE = "pages_not_divisible"
    MEMORY_SHORT = "memory_short"
    DEDICATED_CPUS_TOO_FEW = "dedicated_cpus_too_few"
    SHARED_CPUS_TOO_FEW = "shared_cpus_too_few"
    DEDICATED_CPUS_BUSY = "dedicated_cpus_busy"
    ISOLATE_NO_FREE_CORES = "isolate_no_free_cores"
    ISOLATE_SMT_DEDICATED_SET = "isolate_smt_dedicated_set"
    REQUIRE_NO_SMT = "require_no_smt"
    REQUIRE_NO_SIBLINGS = "require_no_siblings"
    EMULATOR_NO_SPARE = "emulator_no_spare"
    CPU_LIMIT = "cpu_limit"
    RAM_LIMIT = "ram_limit"
    NO_CELL_ASSIGNMENT = "no_cell_assignment"
    PCI_DEVICES_SHORT = "pci_devices_short"


@dataclass(frozen=True, slots=True)
class Reason:
    """One shortfall. ``host_cell``/``guest_cell`` are None for whole-host reasons."""

    code: Code
    message: str
    host_cell: int | None = None
    guest_cell: int | None = None
    need: float | None = None
    have: float | None = None
    details: tuple[tuple[str, object], ...] = field(default=())

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "code": self.code.value,
            "message": self.message,
            "host_cell": self.host_cell,
            "guest_cell": self.guest_cell,
        }
        if self.need is not None:
            out["need"] = self.need
        if self.have is not None:
            out["have"] = self.have
        out.update(dict(self.details))
        return out


# Short labels for the one-line summary ("3 not enough 2 MiB pages, ...").
SUMMARY_LABEL: dict[Code, str] = {
    Code.TOO_FEW_HOST_CELLS: "too few NUMA cells",
    Code.PAGE_SIZE_MISSING: "page size not offered",
    Code.PAGES_SHORT: "not enough free huge pages",
    Code.PAGES_NOT_DIVISIBLE: "memory not a multiple of the page size",
    Code.MEMORY_SHORT: "not enough memory",
    Code.DEDICATED_CPUS_TOO_FEW: "too few dedicated CPUs",
    Code.SHARED_CPUS_TOO_FEW: "too few shared CPUs",
    Code.DEDICATED_CPUS_BUSY: "not enough free dedicated CPUs",
    Code.ISOLATE_NO_FREE_CORES: "not enough whole free cores (isolate)",
    Code.ISOLATE_SMT_DEDICATED_SET: "isolate impossible on SMT with cpu_dedicated_set",
    Code.REQUIRE_NO_SMT: "no SMT (require)",
    Code.REQUIRE_NO_SIBLINGS: "not enough free thread siblings (require)",
    Code.EMULATOR_NO_SPARE: "no spare CPU for emulator threads",
    Code.CPU_LIMIT: "CPU allocation ratio exceeded",
    Code.RAM_LIMIT: "RAM allocation ratio exceeded",
    Code.NO_CELL_ASSIGNMENT: "guest cells compete for the same host cells",
    Code.PCI_DEVICES_SHORT: "not enough free PCI devices near the guest's cells",
}


def plural(count: int, noun: str, plural_form: str | None = None) -> str:
    """``"1 dedicated CPU"``, ``"2 dedicated CPUs"``: the count and the noun in its number."""
    return f"{count} {noun if count == 1 else plural_form or noun + 's'}"


def describe_pool(total: int, used: int, reserved: int) -> str:
    """A page pool's state for a reason: free pages (never below 0) and why so few.

    ``"0 free of 80 (48 in use, 64 reserved; 32 of the pages in use are reserved ones)"``
    """
    free = max(0, total - used - reserved)
    out = f"{free} free of {total}"
    held = []
    if used:
        held.append(f"{used} in use")
    if reserved:
        held.append(f"{reserved} reserved")
    if not held:
        return out
    overlap = used + reserved - total
    note = (
        f"; {plural(overlap, 'page')} in use {'is' if overlap == 1 else 'are'} counted "
        "against the reservation"
        if overlap > 0
        else ""
    )
    return f"{out} ({', '.join(held)}{note})"


def unique(messages: Iterable[str]) -> tuple[str, ...]:
    """The messages in order, each once."""
    return tuple(dict.fromkeys(messages))


def summarize_counts(labels: Iterable[str]) -> str:
    """'3 not enough memory, 1 too few NUMA cells' sorted by count, then label."""
    counts: dict[str, int] = {}
    for label in labels:
        counts[label] = counts.get(label, 0) + 1
    ordered = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return ", ".join(f"{n} {label}" for label, n in ordered)
