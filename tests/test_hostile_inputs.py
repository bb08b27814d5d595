"""Random and hostile documents for every reader: only our ParseError family escapes, every
call returns within a time bound, and a small input costs a few MiB at most.

The readers: a fit-case line (``fit --batch``), a fleet file, a fleet snapshot, an
inventory, a plan file, a matrix report, a nova.conf, a charm configuration, and the
capabilities, domain and node-device XML readers. Each one is fed random bytes, random
JSON/TOML/YAML-ish values and valid documents with one field replaced by a hostile value;
the named attacks (alias bomb, deep nesting, huge integers, NaN/Infinity, non-UTF-8, a FIFO
and /dev/zero as the path) are checked by name, and a few of them through the command line
in a subprocess, with the fleet snapshot's names and the drain options."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from numa_migrate.adapters.capabilities import host_from_capabilities
from numa_migrate.adapters.casefmt import answer_lines
from numa_migrate.adapters.domain import domain_from_xml
from numa_migrate.adapters.fleet import load_fleet
from numa_migrate.adapters.inventory import load_inventory
from numa_migrate.adapters.nodedev import pci_functions_from_nodedevs
from numa_migrate.core.errors import ParseError
from numa_migrate.inputs.plans import load_plan
from numa_migrate.matrix.report import load_report
from numa_migrate.preflight.sources import parse_charm_config, parse_nova_conf, read_source

ROOT = Path(__file__).parent
FIX = ROOT / "fixtures"
TIME_BOUND_S = 3.0
MEMORY_BOUND = 8 * 1024 * 1024
SRC = str(ROOT.parent / "src")

# --------------------------------------------------------------------------- hostile values

DEEP = "[" * 50_000
HOSTILE_TOKENS = [
    "NaN", "Infinity", "-Infinity", "9" * 5000, "-" + "9" * 30, "1e999", "1" * 19,
    "100000", "-1", "0", "1.5", '""', '"' + "x" * 5000 + '"', "[]", "{}", "null", "true",
    '"0-4000"', '"\\udcff"', '"\\u0000"', '"²"', '{"a": 1, "a": 2}', "[" * 40 + "]" * 40,
]


def _mutations(value: Any) -> Iterator[list[Any]]:
    """Every path into ``value`` (lists of keys/indexes)."""
    yield []
    if isinstance(value, dict):
        for key, member in value.items():
            for rest in _mutations(member):
                yield [key, *rest]
    elif isinstance(value, list):
        for i, member in enumerate(value[:4]):
            for rest in _mutations(member):
                yield [i, *rest]


MARK = "\u2603HOSTILE\u2603"


def _replace(doc: Any, path: list[Any], token: str) -> bytes:
    """``doc`` as JSON with the value at ``path`` replaced by the raw JSON ``token``."""
    doc = json.loads(json.dumps(doc))
    if not path:
        return token.encode()
    target = doc
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = MARK
    return json.dumps(doc).replace(json.dumps(MARK), token).encode()


@st.composite
def mutated_json(draw: st.DrawFn, base: Any) -> bytes:
    paths = list(_mutations(base))
    path = draw(st.sampled_from(paths))
    return _replace(base, path, draw(st.sampled_from(HOSTILE_TOKENS)))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner,
                                                                 max_size=5),
    max_leaves=30,
)
random_bytes = st.binary(max_size=4096)
random_json = json_values.map(lambda v: json.dumps(v).encode())


def random_documents(base: Any) -> st.SearchStrategy[bytes]:
    return random_bytes | random_json | mutated_json(base)


# --------------------------------------------------------------------------- the readers

CASE = {"id": "c", "host": {"cells": [
    {"id": 0, "cpuset": [0, 1], "pcpuset": [2, 3], "siblings": [[0, 2], [1, 3]],
     "memory_mib": 4096, "memory_usage_mib": 0, "cpu_usage": 0, "pinned_cpus": [],
     "mempages": [{"size_kib": 4, "total": 1048576, "used": 0, "reserved": 0},
                  {"size_kib": 2048, "total": 64, "used": 0, "reserved": 0}]}]},
    "flavor": {"vcpus": 2, "memory_mib": 1024,
               "extra_specs": {"hw:cpu_policy": "dedicated", "hw:mem_page_size": "large"}},
    "image_properties": {"hw_cpu_thread_policy": "prefer"},
    "limits": {"cpu_allocation_ratio": 2.0, "ram_allocation_ratio": 1.0},
    "current_pagesize_kib": None, "packing": False}
FLEET = {"hosts": [{"name": "h1", "capabilities": "caps.xml", "cpu_dedicated_set": "2-7",
                    "cpu_shared_set": "0-1",
                    "reserved_huge_pages": [{"node": 0, "size_kib": 2048, "count": 1}],
                    "guests": [{"name": "g", "vcpus": 1, "memory_mib": 256,
                                "extra_specs": {"hw:cpu_policy": "dedicated"}}]}]}
PLAN = {"format": "numa-migrate/destination-plan", "version": 1, "domain": "d", "host": "h",
        "vcpu_pins": {"0": "2", "1": [3]}, "emulator_pins": "4", "iothread_pins": {},
        "shared_cpuset": None, "memory_nodes": "0", "cell_nodes": {"0": 0},
        "hugepage_kib": {"0": 2048}, "hostdev_map": {"0000:3b:02.1": "0000:5e:02.3"}}


def _report() -> dict[str, Any]:
    from tests.test_matrix import sample

    return sample().to_json()  # type: ignore[no-any-return]


REPORT = _report()


def _snapshot() -> dict[str, Any]:
    from numa_migrate.adapters.snapshot import snapshot_doc

    return snapshot_doc(load_fleet())


SNAPSHOT = _snapshot()


@pytest.fixture(scope="module")
def folder() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="nm-hostile-"))
    caps = resources.files("numa_migrate") / "data" / "fleet" / "caps-cmp-small-01.xml"
    (path / "caps.xml").write_bytes(caps.read_bytes())
    yield path
    shutil.rmtree(path)


def read_case_line(data: bytes, _folder: Path) -> None:
    lines = data.count(b"\n") + (0 if data.endswith(b"\n") or not data else 1)
    answers = list(answer_lines(io.BytesIO(data)))  # never raises
    assert len(answers) == max(lines, 0)
    for a in answers:
        json.dumps(a.answer, allow_nan=False)  # every answer is plain JSON


def _file(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


def read_fleet(data: bytes, folder: Path) -> None:
    load_fleet(_file(folder, "fleet.json", data))


def read_snapshot(data: bytes, folder: Path) -> None:
    load_fleet(_file(folder, "snapshot.json", data))


def read_inventory(data: bytes, folder: Path) -> None:
    load_inventory(_file(folder, "inventory.toml", data))


def read_plan(data: bytes, folder: Path) -> None:
    load_plan(_file(folder, "plan.json", data))


def read_report(data: bytes, folder: Path) -> None:
    load_report(_file(folder, "report.json", data))


def read_nova_conf(data: bytes, folder: Path) -> None:
    path = _file(folder, "nova.conf", data)
    parse_nova_conf(read_source(path, "nova.conf"), str(path))


def read_charm(data: bytes, folder: Path) -> None:
    path = _file(folder, "charm.yaml", data)
    parse_charm_config(read_source(path, "charm configuration"), str(path))


def read_capabilities(data: bytes, _folder: Path) -> None:
    host_from_capabilities(data, name="h", source="caps.xml")


def read_domain(data: bytes, _folder: Path) -> None:
    domain_from_xml(data, source="dom.xml")


def read_nodedev(data: bytes, _folder: Path) -> None:
    pci_functions_from_nodedevs([("dev.xml", data)])


Reader = Callable[[bytes, Path], None]


def call_bounded(reader: Reader, data: bytes, folder: Path, *, memory: bool = False) -> None:
    """Call ``reader``: only ParseError may escape, within the time (and memory) bound."""
    if memory:
        tracemalloc.start()
    started = time.perf_counter()
    try:
        reader(data, folder)
    except ParseError as exc:
        assert "\n" not in str(exc), str(exc)[:200]
    finally:
        elapsed = time.perf_counter() - started
        if memory:
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
    assert elapsed < TIME_BOUND_S, f"{reader.__name__} took {elapsed:.2f} s"
    if memory:
        assert peak < MEMORY_BOUND, f"{reader.__name__} peaked at {peak / 2**20:.1f} MiB"


def _toml_base() -> str:
    return ('[hosts.a]\nuri = "test:///default"\ncpu_dedicated_set = "2-7"\n'
            'cpu_shared_set = "0-1"\nreserved_huge_pages = ["node:0,size:2048,count:1"]\n'
            "reserved_host_memory_mb = 512\n")


def _text_mutation(base: str) -> st.SearchStrategy[bytes]:
    tokens = ["nan", "inf", "9" * 5000, "[" * 3000, "1979-05-27", "&a [1]", "*a", "!!binary x",
              "\udcff", "\x00", "'" * 3, '"', "\n[x]\n", " " * 80 + "a: 1", "0-4000",
              "node:" + "9" * 5000 + ",size:2048,count:1"]

    @st.composite
    def build(draw: st.DrawFn) -> bytes:
        cut = draw(st.integers(0, len(base)))
        token = draw(st.sampled_from(tokens))
        text = base[:cut] + token + base[cut:]
        return text.encode("utf-8", "surrogatepass")

    return build()


XML_BASES = {
    "caps": (FIX / "xml" / "caps-small-1node.xml").read_text(),
    "dom": (FIX / "xml" / "dom-pinned-2cell-2m.xml").read_text(),
}

READERS: list[tuple[Reader, st.SearchStrategy[bytes]]] = [
    (read_case_line, random_documents(CASE)),
    (read_fleet, random_documents(FLEET)),
    (read_snapshot, random_documents(SNAPSHOT)),
    (read_plan, random_documents(PLAN)),
    (read_report, random_documents(REPORT)),
    (read_inventory, random_bytes | _text_mutation(_toml_base())),
    (read_nova_conf, random_bytes | _text_mutation(
        (FIX / "preflight" / "train-good.conf").read_text())),
    (read_charm, random_bytes | _text_mutation((FIX / "preflight" / "charm.yaml").read_text())),
    (read_capabilities, random_bytes | _text_mutation(XML_BASES["caps"])),
    (read_domain, random_bytes | _text_mutation(XML_BASES["dom"])),
    (read_nodedev, random_bytes),
]


@pytest.mark.parametrize(("reader", "strategy"), READERS, ids=lambda r: getattr(r, "__name__",
                                                                                 ""))
def test_random_and_hostile_documents(reader: Reader, strategy: st.SearchStrategy[bytes],
                                      folder: Path) -> None:
    @settings(max_examples=150, deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(strategy)
    def check(data: bytes) -> None:
        call_bounded(reader, data, folder)

    check()


# --------------------------------------------------------------------------- named attacks

ALIAS_BOMB = ('settings:\n  a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
              + "".join(f"  {chr(98 + i)}: &{chr(98 + i)} ["
                        + ",".join([f"*{chr(97 + i)}"] * 9) + "]\n" for i in range(8)))
NAMED = {
    "alias bomb": ALIAS_BOMB.encode(),
    "deep nesting": DEEP.encode(),
    "deep nesting (objects)": b'{"a":' * 20000,
    "huge integer": b'{"hosts": [], "x": ' + b"9" * 5000 + b"}",
    "NaN": b'{"a": NaN}',
    "Infinity": b'{"a": Infinity}',
    "non-UTF-8": b'{"a": "caf\xe9"}\n[x]\na = 1\n',
    "10 MB line": b'{"id": "' + b"a" * (10 * 1024 * 1024) + b'"}\n',
}
ALL_READERS = [r for r, _ in READERS]


@pytest.mark.parametrize("attack", list(NAMED))
@pytest.mark.parametrize("reader", ALL_READERS, ids=lambda r: r.__name__)
def test_named_attacks(reader: Reader, attack: str, folder: Path) -> None:
    data = NAMED[attack]
    call_bounded(reader, data, folder, memory=len(data) < 64 * 1024)


def test_the_alias_bomb_is_small_and_refused_at_its_first_anchor(folder: Path) -> None:
    assert len(ALIAS_BOMB) < 1024
    with pytest.raises(ParseError, match=r"charm\.yaml:2: not valid YAML: anchor &a is not"):
        read_charm(ALIAS_BOMB.encode(), folder)


FILE_READERS: list[Callable[[Path], object]] = [
    load_fleet, load_inventory, load_plan, load_report,
    lambda p: read_source(p, "nova.conf"),
]


@pytest.mark.parametrize("reader", FILE_READERS)
def test_a_fifo_or_dev_zero_as_the_path_is_refused_at_once(
    reader: Callable[[Path], object], tmp_path: Path
) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for path in (fifo, Path("/dev/zero"), tmp_path):
        started = time.perf_counter()
        with pytest.raises(ParseError, match=r"only regular files are read|is a directory"):
            reader(path)
        assert time.perf_counter() - started < 1


# --------------------------------------------------------------------------- command line


def cli(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "PYTHONPATH": SRC, "NUMA_MIGRATE_INVENTORY": ""}
    return subprocess.run([sys.executable, "-m", "numa_migrate", *args], input=stdin,
                          capture_output=True, timeout=60, env=env, check=False)


def one_line_exit_2(done: subprocess.CompletedProcess[bytes]) -> str:
    err = done.stderr.decode()
    assert done.returncode == 2, (done.returncode, err)
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err
    return err.strip()


@pytest.fixture
def hostile_files(tmp_path: Path) -> dict[str, Path]:
    files = {
        "fifo": tmp_path / "fifo",
        "bomb": tmp_path / "charm.yaml",
        "latin": tmp_path / "nova.conf",
        "deep": tmp_path / "fleet.json",
        "plan": tmp_path / "plan.json",
    }
    os.mkfifo(files["fifo"])
    files["bomb"].write_text(ALIAS_BOMB)
    files["latin"].write_bytes(b"[DEFAULT]\ndebug = caf\xe9\n")
    files["deep"].write_bytes(DEEP.encode())
    files["plan"].write_bytes(b'{"vcpu_pins": {"0": ' + b"9" * 5000 + b"}}")
    return files


def test_cli_hostile_files_are_one_line_exit_2(hostile_files: dict[str, Path]) -> None:
    f = hostile_files
    assert "anchor &a is not allowed" in one_line_exit_2(
        cli("preflight", "--charm-config", str(f["bomb"])))
    assert "not UTF-8 text: byte 0xe9 at offset 21" in one_line_exit_2(
        cli("preflight", "--nova-conf", str(f["latin"])))
    assert "nested more than 32 levels deep" in one_line_exit_2(
        cli("fleet", "--fleet", str(f["deep"])))
    assert "is a FIFO" in one_line_exit_2(cli("fleet", "--fleet", str(f["fifo"])))
    assert "is a character device" in one_line_exit_2(
        cli("fit", "--capabilities", "/dev/zero", "--flavor-vcpus", "1", "--flavor-ram", "1"))
    inventory = f["plan"].with_name("inventory.toml")
    inventory.write_text('[hosts.h]\nuri = "test:///default"\n')
    assert "integer of 5000 digits" in one_line_exit_2(
        cli("validate", "g", "--host", "h", "--hosts", str(inventory), "--plan", str(f["plan"])))
    assert "is a FIFO" in one_line_exit_2(
        cli("validate", "g", "--host", "h", "--hosts", str(inventory), "--plan", str(f["fifo"])))


def test_cli_numbers_and_database_urls_are_one_line_exit_2() -> None:
    line = one_line_exit_2(cli("fit", "--host", "cmp-small-01", "--flavor-vcpus", "100000000",
                               "--flavor-ram", "1024"))
    assert line == ("error: --flavor-vcpus: 100000000 is more than 4096 (QEMU's maximum "
                    "vCPUs); allowed: 1 to 4096")
    assert "--bandwidth" in one_line_exit_2(cli("migrate", "g", "--to", "h", "--bandwidth", "0"))
    assert "the port is not a number" in one_line_exit_2(
        cli("recover", "--db", "postgresql://u@127.0.0.1:abc/db"))


def test_cli_batch_answers_every_hostile_line() -> None:
    good = json.dumps(CASE).encode()
    lines = [good, DEEP.encode(), b'{"a": ' + b"9" * 5000 + b"}", b'{"a": Infinity}',
             b"\xff\xfe", b"", json.dumps({**CASE, "flavor": {"vcpus": 10**5,
                                                              "memory_mib": 1}}).encode(), good]
    done = cli("fit", "--batch", stdin=b"\n".join(lines) + b"\n")
    assert done.returncode == 0, done.stderr
    answers = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(answers) == len(lines)
    assert "error" not in answers[0] and answers[0] == answers[-1]
    assert all(a["error"]["type"] == "InvalidCase" for a in answers[1:-1])
    assert "flavor.vcpus: 100000 is more than 4096" in answers[6]["error"]["message"]


# --------------------------------------------------------------------------- fleet snapshots


def _write(path: Path, doc: Any) -> Path:
    path.write_text(json.dumps(doc))
    return path


def _snapshot_with(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    doc = json.loads(json.dumps(SNAPSHOT))
    change(doc)
    return doc


def _guest(doc: dict[str, Any], host: int, guest: int) -> dict[str, Any]:
    return doc["hosts"][host]["guests"][guest]  # type: ignore[no-any-return]


UNPRINTABLE = [
    ("a line break in a host name", lambda d: d["hosts"][2].update(name="cmp\nsmall"),
     "hosts[2].name: character U+000A at position 3 is not allowed"),
    ("an escape in a guest name", lambda d: _guest(d, 0, 3).update(name="web\x1b[2J"),
     "hosts[0].guests[3].name: character U+001B at position 3 is not allowed"),
    ("a bidi override in a note", lambda d: d.update(notes=["ok \u202e evil"]),
     "notes[0]: character U+202E at position 3 is not allowed"),
    ("a terminal title in taken_from", lambda d: d.update(taken_from="\x1b]0;x\x07"),
     "taken_from: character U+001B at position 0 is not allowed"),
]


@pytest.mark.parametrize(("change", "message"), [(c, m) for _, c, m in UNPRINTABLE],
                         ids=[n for n, _, _ in UNPRINTABLE])
def test_snapshot_text_that_would_reach_the_terminal_is_one_printable_line(
        tmp_path: Path, change: Callable[[dict[str, Any]], None], message: str) -> None:
    path = _write(tmp_path / "snap.json", _snapshot_with(change))
    with pytest.raises(ParseError) as info:
        load_fleet(path)
    assert message in str(info.value) and "\n" not in str(info.value)


def _caps(d: dict[str, Any]) -> str:
    return d["hosts"][2]["capabilities_xml"]  # type: ignore[no-any-return]


SNAPSHOT_ATTACKS = [
    ("an entity in the capabilities XML", lambda d: d["hosts"][2].update(
        capabilities_xml='<!DOCTYPE c [<!ENTITY x SYSTEM "file:///etc/passwd">]>' + _caps(d)),
     "hosts[2].capabilities_xml: refusing a document with a DOCTYPE declaration"),
    ("an entity declaration alone", lambda d: d["hosts"][2].update(
        capabilities_xml=_caps(d).replace("<capabilities>", '<capabilities><!ENTITY x "y">')),
     "hosts[2].capabilities_xml: refusing a document with a ENTITY declaration"),
    ("dedicated CPUs the host lacks", lambda d: d["hosts"][0].update(
        cpu_dedicated_set="2-9,12-19,22-29,32-39,100-16383"),
     "cpu_dedicated_set: CPUs 100-16383 do not exist on this host"),
    ("a CPU id past every bound", lambda d: d["hosts"][0].update(cpu_shared_set="0-99999"),
     "hosts[0].cpu_shared_set"),
    ("a negative page count", lambda d: d["hosts"][0]["reserved_huge_pages"][0].update(
        count=-1), "hosts[0].reserved_huge_pages[0].count: -1 is less than 0"),
    ("a guest pinned where another guest is", lambda d: _guest(d, 0, 2)["placement"][
        "cells"][0].update(cpu_pinning=_guest(d, 0, 0)["placement"]["cells"][0][
            "cpu_pinning"]), "does not fit cmp-intel-01 as recorded"),
    ("a version from the future", lambda d: d.update(version=99),
     "version: 99 is not a snapshot version this numa-migrate reads (it reads version 1)"),
    ("hosts not a list", lambda d: d.update(hosts={"a": 1}), "hosts: expected a list"),
]


@pytest.mark.parametrize(("change", "message"), [(c, m) for _, c, m in SNAPSHOT_ATTACKS],
                         ids=[n for n, _, _ in SNAPSHOT_ATTACKS])
def test_snapshot_attacks_are_one_line_naming_the_field(
        tmp_path: Path, change: Callable[[dict[str, Any]], None], message: str) -> None:
    path = _write(tmp_path / "snap.json", _snapshot_with(change))
    with pytest.raises(ParseError) as info:
        load_fleet(path)
    assert message in str(info.value) and "\n" not in str(info.value), str(info.value)


def test_the_snapshot_writer_never_follows_a_planted_link(tmp_path: Path) -> None:
    from numa_migrate.adapters.snapshot import write_snapshot

    victim = tmp_path / "victim"
    victim.write_text("keep")
    (tmp_path / ".snap.json.tmp").symlink_to(victim)  # the old fixed temporary name
    write_snapshot(load_fleet(), tmp_path / "snap.json")
    assert victim.read_text() == "keep"
    assert load_fleet(tmp_path / "snap.json").hosts == load_fleet().hosts
    assert sorted(p.name for p in tmp_path.iterdir()) == [".snap.json.tmp", "snap.json",
                                                          "victim"]


def test_snapshot_other_usage_gives_each_cell_once(tmp_path: Path) -> None:
    doc = _snapshot_with(lambda d: d["hosts"][2]["other_usage"].extend(
        [{"cell": 0, "pinned_cpus": "1"}, {"cell": 0, "pinned_cpus": "1"}]))
    with pytest.raises(ParseError, match=r"hosts\[2\]\.other_usage\[1\]\.cell: cell 0 is "
                       r"given twice \(one entry per cell\)"):
        load_fleet(_write(tmp_path / "snap.json", doc))


def test_a_snapshot_of_a_fleet_whose_notes_have_line_breaks_reads_back(tmp_path: Path) -> None:
    from dataclasses import replace

    from numa_migrate.adapters.snapshot import write_snapshot

    fleet = replace(load_fleet(), notes=("cmp-9: not read: libvirt said\nno route\x1b",))
    write_snapshot(fleet, tmp_path / "snap.json")
    assert load_fleet(tmp_path / "snap.json").notes == ("cmp-9: not read: libvirt said no "
                                                        "route\ufffd",)


def test_cli_names_that_look_like_markup_are_shown_as_they_are(tmp_path: Path) -> None:
    """A guest named ``[/]`` or ``[bold]x`` (rich markup) is printed literally, never a
    traceback or a restyled line."""
    def names(d: dict[str, Any]) -> None:
        _guest(d, 0, 3).update(name="web[/]")
        _guest(d, 0, 1).update(name="[bold]nfv")
        d["hosts"][2]["name"] = "small[/]"
        d["notes"] = ["[red]note[/]"]

    path = str(_write(tmp_path / "snap.json", _snapshot_with(names)))
    for args in (["fleet"], ["fleet", "--picture"], ["drain", "cmp-intel-01"],
                 ["drain", "cmp-intel-01", "--picture"], ["where", "web[/]"],
                 ["where", "db-1"]):
        done = cli(*args, "--fleet", path)
        out = done.stdout.decode() + done.stderr.decode()
        assert done.returncode in (0, 1), (args, out)
        assert "Traceback" not in out and "[red]note[/]" in out, (args, out)
    drain = cli("drain", "cmp-intel-01", "--fleet", path).stdout.decode()
    assert "web[/]" in drain and "[bold]nfv" in drain


def test_cli_guest_names_used_twice_are_one_line_for_drain_and_the_picture(
        tmp_path: Path) -> None:
    doc = _snapshot_with(lambda d: _guest(d, 1, 0).update(name="db-1"))
    path = str(_write(tmp_path / "snap.json", doc))
    for args in (["drain", "cmp-intel-01"], ["drain", "cmp-small-01", "--json"],
                 ["fleet", "--picture"]):
        line = one_line_exit_2(cli(*args, "--fleet", path))
        assert "guest name 'db-1' is used by 2 guests" in line
        assert "(on cmp-intel-01, cmp-epyc-01)" in line and "distinct guest names" in line


def test_cli_drain_options_are_one_line_exit_2() -> None:
    cases = {
        ("--keep-free", "cpus=\u00b2"): "--keep-free: cpus='\u00b2': a whole number from 0",
        ("--keep-free", "cpus=-1"): "--keep-free: cpus='-1': a whole number from 0",
        ("--keep-free", "cpus=" + "9" * 13): "a whole number from 0 to 999999999999",
        ("--keep-free", "cpus=4,cpus=5"): "--keep-free: cpus is given twice",
        ("--keep-free", " , "): "--keep-free: empty; use cpus=N and/or memory=MiB",
        ("--keep-free", "disk=3"): "'disk=3': use cpus=N and/or memory=MiB",
        ("--time-limit", "nan"): "--time-limit: nan is not a finite number",
        ("--time-limit", "1e400"): "--time-limit: 1e400 is not a finite number",
        ("cmp-intel-01",): "host(s) cmp-intel-01 given twice",
        ("cmp-epyc-01", "cmp-small-01"): "would be drained (3 of 3): nowhere to go",
        ("cmp-nope",): "host(s) cmp-nope not in sample fleet",
    }
    for args, message in cases.items():
        assert message in one_line_exit_2(cli("drain", "cmp-intel-01", *args)), args


def test_a_plan_run_report_shows_markup_like_names_as_they_are() -> None:
    from rich.console import Console

    from numa_migrate.cli.planrun import print_report
    from numa_migrate.core.drain.planfile import DrainPlanFile, PlannedMove
    from numa_migrate.migrate.drainrun import MoveReport, MoveState, RunReport

    move = PlannedMove(0, 1, "web[/]", "src[bold]", "dst")
    plan = DrainPlanFile("id[/]", ("src[bold]",), ((move,),), (("g[/]", "no room [/]"),),
                         "fleet", "now")
    report = RunReport(plan, (MoveReport(move, MoveState.FAILED, "libvirt: [Errno 111] x[/]"),),
                       1.0, recovered=("[/]recovered",))
    console = Console(file=io.StringIO(), width=200)
    print_report(console, report)
    out = console.file.getvalue()  # type: ignore[attr-defined]
    for text in ("web[/]", "src[bold]", "id[/]", "x[/]", "g[/] was not in the plan: no room [/]",
                 "[/]recovered"):
        assert text in out, (text, out)
