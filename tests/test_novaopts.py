"""One grammar per Nova option: page sizes, reserved_huge_pages entries, CPU set options.

The table says what Nova 34 does with each value; the ``oracle`` test checks the table
against Nova's own parsing code in the oracle venv.
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from numa_migrate.core.errors import InvalidRequestError, ParseError
from numa_migrate.core.model.guest import PageSizeKind
from numa_migrate.core.novaopts import (
    OptionError,
    ReservedPages,
    cpu_set_option,
    iec_size_kib,
    page_size,
    reserved_huge_pages,
    reserved_huge_pages_entry,
)
from tests.differential import oracle_python

NINES = "9" * 400

# (value, KiB as Nova reads it, or None when Nova refuses it)
PAGE_SIZES: list[tuple[str, float | None]] = [
    ("2048", 2048), ("4", 4), ("0", 0), ("1048576", 1048576),
    ("2MB", 2048), ("2MiB", 2048), ("1GB", 1048576), ("1GiB", 1048576), ("2048KB", 2048),
    ("2048KiB", 2048), ("1.5MB", 1536), (".5GB", 524288), ("+2MB", 2048), ("16Mbit", 2048),
    ("2M", None), ("2Mi", None), ("2mb", None), ("2 MB", None), (" 2MB", None),
    ("1e3MB", None), ("huge", None), ("-2048", None), ("", None), ("2kB", None),
]


@pytest.mark.parametrize(("text", "kib"), PAGE_SIZES)
def test_page_size_table(text: str, kib: float | None) -> None:
    if kib is None:
        with pytest.raises(InvalidRequestError) as info:
            page_size(text)
        assert info.value.nova_type == "MemoryPageSizeInvalid"
        assert info.value.key == "hw:mem_page_size"
    else:
        request = page_size(text)
        assert request.kind is PageSizeKind.EXPLICIT and request.size_kib == kib


@pytest.mark.parametrize("text", ["small", "large", "any"])
def test_page_size_words(text: str) -> None:
    assert page_size(text).kind is PageSizeKind(text)


@pytest.mark.parametrize("text", [
    f"{NINES}GB",  # Nova 34 lets an OverflowError escape here
    f"{NINES}B", NINES, "1" * 5000, "1PB", "32GB", "\u00b2",
])
def test_page_size_overflow_and_bounds_give_novas_error_type(text: str) -> None:
    start = time.perf_counter()
    with pytest.raises(InvalidRequestError) as info:
        page_size(text, key="hw_mem_page_size")
    assert info.value.nova_type == "MemoryPageSizeInvalid"
    assert len(str(info.value)) < 300 and "hw_mem_page_size" in str(info.value)
    assert time.perf_counter() - start < 0.05


def test_iec_sizes_round_like_nova() -> None:
    assert iec_size_kib("1.1KB") == 1127 / 1024  # ceil(1126.4 bytes) / 1024
    with pytest.raises(ValueError):
        iec_size_kib(f"{NINES}GB")


# (entry, (node, size KiB, count) or a fragment of the error)
RESERVED: list[tuple[str, tuple[int, int, int] | str]] = [
    ("node:0,size:2048,count:64", (0, 2048, 64)),
    ("node:1,size:1GB,count:1", (1, 1048576, 1)),
    ("node:1,size:1GiB,count:1", (1, 1048576, 1)),
    ("node:0,size:2MB,count:2", (0, 2048, 2)),
    (" node : 0 , size : 2048 , count : 3 ", (0, 2048, 3)),
    ("count:3,size:2048,node:2", (2, 2048, 3)),
    ("node:0,size:2048,count:1,extra:x", (0, 2048, 1)),  # Nova ignores other keys
    ("node:+1,size:2048,count:1", (1, 2048, 1)),
    ("node:0,size:2M,count:1", "size '2M' is not a page size"),
    ("node:0,size:2mb,count:1", "size '2mb' is not a page size"),
    ("node:0,size:2048", "lacks count"),
    ("node:0,sz:2048,count:1", "is not node:N,size:SIZE,count:N"),
    ("node:0,node:1,size:2048,count:1", "gives 'node' twice"),
    ("node:0,size", "part 'size' is not KEY:VALUE"),
    ("", "lacks node, size, count"),
    ("node:x,size:2048,count:1", "node 'x' is not a non-negative integer"),
    ("node:0,size:2048,count:1;node:1,size:2048,count:1", "gives 'size' twice"),
    # Nova accepts these and then never matches a pool, or reserves a negative count:
    ("node:-1,size:2048,count:1", "node '-1' is not a non-negative integer"),
    ("node:0,size:2048,count:-1", "count '-1' is not a non-negative integer"),
    ("node:0,size:0,count:1", "size must be more than 0 KiB"),
    ("node:0,size:1.1KB,count:1", "is not a whole number of KiB"),
    ("node:5000,size:2048,count:1", "node 5000 is beyond the bound (1023)"),
    ("node:0,size:2048,count:" + "9" * 30, "is beyond the bound"),
    ("node:0,size:2048,count:" + "9" * 70, "is not a non-negative integer"),
    ("node:0,size:2048,count:99999999999999", "count 99999999999999 is beyond the bound"),
    ("node:0,size:" + NINES + "GB,count:1", "is not a page size"),
    ("node:0,size:1PB,count:1", "beyond the largest page size"),
]


@pytest.mark.parametrize(("entry", "expected"), RESERVED)
def test_reserved_huge_pages_table(entry: str, expected: tuple[int, int, int] | str) -> None:
    if isinstance(expected, str):
        with pytest.raises(OptionError) as info:
            reserved_huge_pages_entry(entry)
        assert expected in str(info.value)
        assert str(info.value).startswith("reserved_huge_pages: ")
    else:
        assert reserved_huge_pages_entry(entry) == ReservedPages(*expected)


def test_reserved_huge_pages_refuses_one_pool_twice() -> None:
    with pytest.raises(OptionError, match="node 0 size 2048 KiB is given twice"):
        reserved_huge_pages(["node:0,size:2048,count:1", "node:0,size:2MB,count:2"])
    assert reserved_huge_pages(["node:1,size:2048,count:1", "node:0,size:2048,count:2"]) == (
        ReservedPages(0, 2048, 2), ReservedPages(1, 2048, 1))


def test_a_long_entry_is_refused_quickly() -> None:
    start = time.perf_counter()
    with pytest.raises(OptionError, match="longer than"):
        reserved_huge_pages_entry("node:0," * 100_000)
    assert time.perf_counter() - start < 0.05


def test_cpu_set_options() -> None:
    assert cpu_set_option("2-7,^4", option="cpu_dedicated_set") == {2, 3, 5, 6, 7}
    with pytest.raises(OptionError, match=r"cpu_shared_set: '1,\^1' names no CPU"):
        cpu_set_option("1,^1", option="cpu_shared_set")
    with pytest.raises(ParseError, match=r"vcpu_pin_set: CPU id 8 .* \(ids are 0-7\)"):
        cpu_set_option("0-8", option="vcpu_pin_set", bound=8)


# --------------------------------------------------------------------------- against Nova

_NOVA_SCRIPT = r"""
import json, sys
from oslo_config import types
from oslo_utils import strutils, units
from nova import exception
out = {"pages": [], "reserved": []}
data = json.load(sys.stdin)
for text in data["pages"]:
    if text.isdigit():
        out["pages"].append(int(text)); continue
    try:
        out["pages"].append(strutils.string_to_bytes(text, return_int=True) / units.Ki)
    except ValueError:
        out["pages"].append(None)
for entry in data["reserved"]:
    try:
        cfg = types.Dict()(entry)
        try:
            size = int(cfg["size"])
        except ValueError:
            size = strutils.string_to_bytes(cfg["size"], return_int=True) / units.Ki
        out["reserved"].append([int(cfg["node"]), size, int(cfg["count"])])
    except (ValueError, TypeError, KeyError):
        out["reserved"].append(None)
print(json.dumps(out))
"""


@pytest.mark.oracle
def test_grammars_agree_with_nova() -> None:
    python = oracle_python()
    if python is None:
        pytest.skip("no Nova oracle venv (run tests/oracle/setup_oracle.sh)")
    pages = [t for t, _ in PAGE_SIZES if t not in ("", "0")]
    reserved = [e for e, _ in RESERVED if len(e) < 200]
    proc = subprocess.run([python, "-c", _NOVA_SCRIPT], capture_output=True, text=True,
                          input=json.dumps({"pages": pages, "reserved": reserved}),
                          check=True, timeout=120)
    nova = json.loads(proc.stdout)
    ours = dict(PAGE_SIZES)
    for text, theirs in zip(pages, nova["pages"], strict=True):
        assert ours[text] == theirs, text
    refused_by_us_only = {
        "node:-1,size:2048,count:1", "node:0,size:2048,count:-1", "node:0,size:0,count:1",
        "node:0,size:1.1KB,count:1", "node:5000,size:2048,count:1",
        "node:0,size:2048,count:99999999999999", "node:0,size:1PB,count:1",
        "node:0,size:2048,count:" + "9" * 30, "node:0,size:2048,count:" + "9" * 70,
    }
    table = dict(RESERVED)
    for entry, theirs in zip(reserved, nova["reserved"], strict=True):
        expected = table[entry]
        if entry in refused_by_us_only:
            assert theirs is not None, entry  # Nova reads it; we refuse it on purpose
        elif isinstance(expected, str):
            assert theirs is None, entry
        else:
            assert theirs == list(expected), entry


# ------------------------------------------------------------------ one grammar, two readers


@pytest.mark.parametrize(("size", "accepted"), [
    ("2048", True), ("2MB", True), ("1GiB", True), ("1GB", True), ("2M", False), ("2mb", False),
])
def test_inventory_and_preflight_read_reserved_pages_alike(size: str, accepted: bool) -> None:
    from numa_migrate.adapters.inventory import InventoryError, parse_inventory
    from numa_migrate.preflight.checks import huge_pages
    from numa_migrate.preflight.sources import PreflightInputError
    from tests.test_preflight import compute

    entry = f"node:0,size:{size},count:1"
    inventory = f"[hosts.a]\nuri = 'test:///default'\nreserved_huge_pages = ['{entry}']\n"
    conf = f"[DEFAULT]\nreserved_huge_pages = {entry}\n"
    if accepted:
        parse_inventory(inventory)
        huge_pages(compute("x", "train", text=conf), None)
    else:
        with pytest.raises(InventoryError, match="is not a page size"):
            parse_inventory(inventory)
        with pytest.raises(PreflightInputError, match="is not a page size"):
            huge_pages(compute("x", "train", text=conf), None)
