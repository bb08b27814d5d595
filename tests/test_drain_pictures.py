"""The fleet's pictures: the terminal view (cli/picture.py), the HTML page
(adapters/picturehtml.py), the bars they share (adapters/pictures.py) and the CLI options."""

from __future__ import annotations

import io
import json
import os
import re
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

from numa_migrate.adapters.picturehtml import render_drain_html
from numa_migrate.adapters.pictures import bar, drain_picture, fleet_picture
from numa_migrate.cli.main import cli
from numa_migrate.cli.picture import print_picture
from numa_migrate.core.drain.apply import state_after
from numa_migrate.core.drain.heuristic import plan_drain
from numa_migrate.core.drain.occupancy import CpuState, fleet_occupancy
from numa_migrate.core.drain.state import FleetState
from tests.fleetgen import SHAPES, flavor, generate, make_host, place_all

PINNED = {"hw_cpu_policy": "dedicated"}
EVIL = "<script>alert(1)</script>"


class Page(HTMLParser):
    """What a drain page holds: per cell picture its CPU squares and bar runs; all text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: Counter[str] = Counter()
        self.cells: dict[tuple[str, int, str], dict[str, Counter[object]]] = {}
        self.sections: list[str] = []
        self.text: list[str] = []
        self._cell: tuple[str, int, str] | None = None
        self._size: int | None = None
        self._depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags[tag] += 1
        a = {k: v or "" for k, v in attrs}
        classes = a.get("class", "").split()
        if tag == "section" and "host" in classes:
            self.sections.append(a["data-host"])
        if tag == "div":
            if self._cell is not None:
                self._depth += 1
            if "cell" in classes:
                self._cell = (a["data-host"], int(a["data-cell"]), a["data-when"])
                self.cells[self._cell] = {"cpus": Counter(), "pages": Counter(),
                                          "mib": Counter()}
                self._depth = 0
            if "bar" in classes:
                self._size = int(a["data-size"]) if "data-size" in a else None
        if self._cell is None or tag != "span":
            return
        cell = self.cells[self._cell]
        if "c" in classes:
            kind = next(c[2:] for c in classes if c.startswith("c-"))
            cell["cpus"][a["data-guest"] if kind == "guest" else kind] += 1
        if "seg" in classes and "data-guest" in a:
            if "data-pages" in a:
                cell["pages"][(self._size, a["data-guest"])] += int(a["data-pages"])
            else:
                cell["mib"][a["data-guest"]] += int(a["data-mib"])

    def handle_endtag(self, tag: str) -> None:
        if tag == "div" and self._cell is not None:
            if self._depth == 0:
                self._cell = None
            else:
                self._depth -= 1

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parse(page: str) -> Page:
    p = Page()
    p.feed(page)
    p.close()
    return p


def expected_cells(state: FleetState, hosts: list[str], when: str
                   ) -> dict[tuple[str, int, str], dict[str, Counter[object]]]:
    out = {}
    for o in fleet_occupancy(state, hosts):
        for c in o.cells:
            cpus: Counter[object] = Counter()
            for s in c.cpus:
                cpus[s.owner if s.state is CpuState.GUEST else s.state.value] += 1
            pages: Counter[object] = Counter()
            for use in c.pages:
                if use.size_kib != 4:
                    for g, n in use.by_guest:
                        pages[(use.size_kib, g)] += n
            mib: Counter[object] = Counter(dict(c.memory_by_guest))
            out[(o.name, c.id, when)] = {"cpus": cpus, "pages": pages, "mib": mib}
    return out


def test_html_page_holds_every_host_and_guest_and_the_counts_of_each_cell() -> None:
    state = generate(4, 10, 120, 0.6)
    drained = [state.hosts[0].name, state.hosts[1].name]
    plan = plan_drain(state, drained, 3, 2)
    assert plan.moves
    pic = drain_picture(state, plan, drained, others=True)
    page = parse(render_drain_html(pic, "generated"))
    assert page.tags["script"] == 0 and page.tags["img"] == 0 and page.tags["link"] == 0
    assert sorted(page.sections) == sorted(h.name for h in state.hosts)
    text = "".join(page.text)
    for g in state.guests:
        assert g.name in text
    touched = [p.name for p in pic.touched]
    others = [p.name for p in pic.others]
    expected = expected_cells(state, touched, "before")
    expected.update(expected_cells(state_after(state, plan), touched, "after"))
    expected.update(expected_cells(state, others, "before"))
    assert page.cells == expected
    for m in plan.moves:
        assert f"{m.source} → {m.destination}" in text
    for u in plan.unplaceable:
        assert u.reason in text


def test_html_escapes_names_and_reasons() -> None:
    host = f"<b>{EVIL}</b>"
    state = place_all(
        [make_host(host, SHAPES["tiny1"]), make_host("b&b", SHAPES["tiny1"])],
        [(EVIL, host, flavor(2, 2048, **PINNED)),
         ("x' onload='y", host, flavor(1, 1024, **PINNED))],
    )
    plan = plan_drain(state, [host], 2, 2)
    out = render_drain_html(drain_picture(state, plan, [host], others=True), EVIL)
    page = parse(out)
    assert page.tags["script"] == 0 and page.tags["b"] == 0
    assert "<script>" not in out and "onload='" not in out
    text = "".join(page.text)
    assert EVIL in text and host in text and "b&b" in text and "x' onload='y" in text
    assert page.sections.count(host) == 1
    assert any(key[0] == host for key in page.cells)


def test_html_needs_a_plan() -> None:
    state = place_all([make_host("a", SHAPES["tiny1"])], [])
    with pytest.raises(ValueError, match="plan"):
        render_drain_html(fleet_picture(state))


def _terminal(state: FleetState, drained: list[str], width: int, colour: bool) -> str:
    buf = io.StringIO()
    console = Console(file=buf, width=width, force_terminal=colour, highlight=False,
                      color_system="truecolor" if colour else None)
    plan = plan_drain(state, drained, 4, 2)
    print_picture(console, drain_picture(state, plan, drained))
    return buf.getvalue()


def test_terminal_picture_fits_80_columns_and_uses_letters_when_piped() -> None:
    state = generate(2, 8, 120, 0.6)
    drained = [state.hosts[0].name]
    out = _terminal(state, drained, 80, colour=False)
    assert "\x1b[" not in out
    assert max(len(line) for line in out.splitlines()) <= 80
    plan = plan_drain(state, drained, 4, 2)
    for m in plan.moves:
        assert m.guest in out and f"→ {m.destination} (wave" in out
    assert re.search(r"^  cell 0 +before [~.A-Za-z0-9 ]+\d+/\d+ free$", out, re.M)
    assert re.search(r"^ +after  [~.A-Za-z0-9 ]+\d+/\d+ free$", out, re.M)


def test_terminal_rows_show_each_cpu_of_each_guest() -> None:
    state = place_all(
        [make_host("a", SHAPES["tiny1"]), make_host("b", SHAPES["tiny1"])],
        [("g1", "a", flavor(2, 2048, **PINNED)), ("g2", "a", flavor(4, 4096, **PINNED))],
    )
    out = _terminal(state, ["a"], 80, colour=False)
    # A g1, B g2 on both hosts; both move to b (1 core shared, 3 dedicated: 6 CPUs)
    rows = [line for line in out.splitlines() if line.endswith(" free") and "[" not in line]
    before_a, after_a, _, after_b = rows[:4]

    def cpus(row: str, when: str) -> str:
        return "".join(row.split(when)[1].split()[:-2])

    assert Counter(cpus(before_a, "before")) == Counter({"~": 2, "A": 2, "B": 4})
    assert cpus(after_a, "after") == "~~......"
    assert Counter(cpus(after_b, "after")) == Counter({"~": 2, "A": 2, "B": 4})


def test_terminal_picture_colours_each_guest() -> None:
    state = place_all([make_host("a", SHAPES["tiny1"]), make_host("b", SHAPES["tiny1"])],
                      [("g1", "a", flavor(2, 2048, **PINNED))])
    out = _terminal(state, ["a"], 80, colour=True)
    assert "\x1b[" in out and "48;2;" in out  # a truecolor background for the guest


@given(st.lists(st.integers(0, 10_000), max_size=8), st.integers(0, 50_000),
       st.integers(0, 40))
def test_bar_runs_fill_the_width(amounts: list[int], total: int, width: int) -> None:
    parts = [(chr(65 + i), n) for i, n in enumerate(amounts)]
    runs = bar(parts, total, width)
    assert sum(n for _, n in runs) == width
    assert all(n > 0 for _, n in runs)
    shown = [k for k, _ in runs if k]
    nonzero = [k for k, n in parts if n > 0]
    assert shown == sorted(shown) and set(shown) <= set(nonzero)  # in order, each once
    if total > 0 and width >= len(nonzero):
        assert shown == nonzero


# --- the CLI ----------------------------------------------------------------------------


def run(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(cli, list(args))
    return r.exit_code, r.stdout, r.stderr


def test_drain_picture_and_html(tmp_path: Path) -> None:
    out = tmp_path / "d.html"
    code, stdout, stderr = run("drain", "cmp-intel-01", "--picture", "--html", str(out))
    assert code == 1  # two guests cannot move
    assert "cmp-intel-01  drained" in stdout and "before" in stdout and "after" in stdout
    assert "wave 1: " in stdout
    assert f"picture written: {out}" in stderr
    page = parse(out.read_text(encoding="utf-8"))
    assert "cmp-small-01" in page.sections and page.tags["script"] == 0
    assert not [p for p in tmp_path.iterdir() if p.name != "d.html"]  # no temporary left


def test_drain_json_keeps_stdout_one_document(tmp_path: Path) -> None:
    code, stdout, stderr = run("drain", "cmp-small-01", "--json", "--picture")
    assert code in (0, 1)
    assert json.loads(stdout)["drain"] == ["cmp-small-01"]
    assert "cmp-small-01  drained" in stderr


def test_html_file_refusals(tmp_path: Path) -> None:
    for target, message in ((tmp_path, "is a directory"),
                            (tmp_path / "no" / "x.html", "does not exist"),
                            (Path("/dev/null"), "not a regular file")):
        code, _, stderr = run("drain", "cmp-intel-01", "--html", str(target))
        assert code == 2 and message in stderr and "Traceback" not in stderr
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    code, _, stderr = run("drain", "cmp-intel-01", "--html", str(fifo))
    assert code == 2 and "not a regular file" in stderr
    existing = tmp_path / "old.html"
    existing.write_text("old")
    existing.chmod(0o600)
    code, _, _ = run("drain", "cmp-intel-01", "--html", str(existing))
    assert code == 1 and existing.read_text().startswith("<!DOCTYPE html>")
    assert existing.stat().st_mode & 0o777 == 0o600


def test_fleet_picture() -> None:
    code, stdout, _ = run("fleet", "--picture")
    assert code == 0
    for name in ("cmp-intel-01", "cmp-epyc-01", "cmp-small-01", "db-1", "hpc-2", "web-2"):
        assert name in stdout
    assert "before" not in stdout
    code, _, stderr = run("fleet", "--picture", "--json")
    assert code == 2 and "not both" in stderr
