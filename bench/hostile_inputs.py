"""Issue 9's hostile inputs through the real command line: exit code, time and peak memory.

Each attack runs as a whole ``numa-migrate`` process (the way an operator would meet it); the
baseline, measured in the same run, is ``numa-migrate --version`` (start-up alone), so the
ratio says what the bad input costs beyond starting the program. Every attack must end with
exit 2 and one line on stderr (``fit --batch`` with one answer per line and exit 0)::

    .venv/bin/python bench/hostile_inputs.py [--runs 3] [--json]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

UUID = "11111111-1111-1111-1111-111111111111"
BATCH_LINES = 9
TIME = Path("/usr/bin/time").exists()


def _caps(cell_body: str) -> str:
    return (f"<capabilities><host><uuid>{UUID}</uuid><cpu><arch>x86_64</arch></cpu><topology>"
            f"<cells num='1'><cell id='0'>{cell_body}</cell></cells></topology></host>"
            "</capabilities>")


def _cpus(first_siblings: str) -> str:
    return ("<cpus num='2'><cpu id='0' socket_id='0' core_id='0' "
            f"siblings='{first_siblings}'/><cpu id='1' socket_id='0' core_id='1' siblings='1'/>"
            "</cpus>")


MEM = "<memory unit='KiB'>1048576</memory>"
CELL = ('{"id":0,"cpuset":[0],"pcpuset":[],"memory_mib":1024%s}')


def _case(case_id: str, flavor: str, cell_extra: str = "", extra: str = "") -> str:
    cell = CELL % cell_extra
    return f'{{"id":"{case_id}","host":{{"cells":[{cell}]}},"flavor":{flavor}{extra}}}'


def make_files(folder: Path) -> dict[str, Path]:
    files = {
        "caps-siblings-4e9.xml": _caps(MEM + _cpus("0-4000000000")),
        "caps-siblings-1e7.xml": _caps(MEM + _cpus("0-10000000")),
        "caps-cpu-twice.xml": _caps(MEM + _cpus("0").replace("id='1'", "id='0'")),
        "caps-two-memory.xml": _caps(MEM + MEM + _cpus("0")),
        "caps-ok.xml": _caps(MEM + _cpus("0")),
        "dom-vcpupin-4e9.xml": (
            f"<domain type='kvm'><name>g</name><uuid>{UUID}</uuid>"
            "<memory unit='KiB'>1048576</memory><vcpu>1</vcpu><cputune>"
            "<vcpupin vcpu='0' cpuset='0-4000000000'/></cputune><os><type>hvm</type></os>"
            "</domain>"),
        "alias-bomb.yaml": (
            "settings:\n  a: &a [\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\"]\n"
            + "".join(f"  {chr(98 + i)}: &{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * 9)
                      + "]\n" for i in range(8))),
    }
    out = {name: folder / name for name in files}
    for name, text in files.items():
        out[name].write_text(text)
    out["nova-not-utf8.conf"] = folder / "nova-not-utf8.conf"
    out["nova-not-utf8.conf"].write_bytes(b"[compute]\ncpu_dedicated_set = 2-3\xff\xfe\n")
    out["fleet-not-utf8.json"] = folder / "fleet-not-utf8.json"
    out["fleet-not-utf8.json"].write_bytes(b'{"hosts": [\xff]}')
    out["fifo"] = folder / "fifo"
    os.mkfifo(out["fifo"])
    flavor = '{"vcpus":1,"memory_mib":1,"extra_specs":{}}'
    lines = [
        "[" * 100_000 + "]" * 100_000,
        _case("huge-int", '{"vcpus":%s,"memory_mib":1}' % ("9" * 5000)),
        _case("mempages-1", flavor, cell_extra=',"mempages":1'),
        _case("infinity", flavor, extra=',"image_properties":{"hw_cpu_cores":Infinity}'),
        _case("vcpus-1e5", '{"vcpus":100000,"memory_mib":1,"extra_specs":{}}'),
        _case("page-nines", '{"vcpus":1,"memory_mib":1,"extra_specs":'
              '{"hw:mem_page_size":"%sGB"}}' % ("9" * 400)),
        '{"id": "' + "a" * (10 * 1024 * 1024) + '"}',
        "",
    ]
    assert len(lines) + 1 == BATCH_LINES
    out["batch.jsonl"] = folder / "batch.jsonl"
    out["batch.jsonl"].write_bytes(("\n".join(lines) + "\n").encode() + b'{"id":"\xff"}\n')
    return out


def attacks(f: dict[str, Path]) -> list[tuple[str, list[str], str | None]]:
    nines = "9" * 400
    fit = ["fit", "--flavor-vcpus", "1", "--flavor-ram", "1"]
    return [
        ("--dedicated-set 0-4000000000", ["fit", "--capabilities", str(f["caps-ok.xml"]),
                                          "--dedicated-set", "0-4000000000", *fit[1:]], None),
        ("capabilities siblings 0-4000000000", [*fit, "--capabilities",
                                                str(f["caps-siblings-4e9.xml"])], None),
        ("capabilities siblings 0-10000000", [*fit, "--capabilities",
                                              str(f["caps-siblings-1e7.xml"])], None),
        ("capabilities: a CPU twice in a cell", [*fit, "--capabilities",
                                                 str(f["caps-cpu-twice.xml"])], None),
        ("capabilities: two <memory> in a cell", [*fit, "--capabilities",
                                                  str(f["caps-two-memory.xml"])], None),
        ("domain <vcpupin cpuset='0-4000000000'>", ["fit", "--host", "cmp-intel-01",
                                                    "--domain-xml",
                                                    str(f["dom-vcpupin-4e9.xml"])], None),
        ("--flavor-vcpus 100000000", ["fit", "--host", "cmp-intel-01", "--flavor-vcpus",
                                      "100000000", "--flavor-ram", "1"], None),
        ("hw:mem_page_size=<400 nines>GB", ["fit", "--host", "cmp-intel-01", *fit[1:],
                                            "--extra-spec", f"hw:mem_page_size={nines}GB"],
         None),
        ("nova.conf not UTF-8", ["preflight", "--nova-conf", str(f["nova-not-utf8.conf"])],
         None),
        ("charm YAML alias bomb", ["preflight", "--charm-config", str(f["alias-bomb.yaml"])],
         None),
        ("fleet file not UTF-8", ["fleet", "--fleet", str(f["fleet-not-utf8.json"])], None),
        ("fleet file /dev/zero", ["fleet", "--fleet", "/dev/zero"], None),
        ("fleet file a FIFO", ["fleet", "--fleet", str(f["fifo"])], None),
        ("inventory /dev/zero", ["validate", "g", "--host", "x", "--hosts", "/dev/zero"], None),
        ("--db with a bad port", ["recover", "--db", "postgresql://u@127.0.0.1:abc/db"], None),
        (f"fit --batch, {BATCH_LINES} hostile lines", ["fit", "--batch"], str(f["batch.jsonl"])),
    ]


def run_once(argv: list[str], stdin_path: str | None) -> tuple[int, float, float, str, int]:
    """Exit code, wall seconds, peak RSS (MiB), stderr and stdout lines of one process.

    The peak is GNU time's ``%M`` of the command itself (a forked child's own rusage would
    count the parent's pages it started with); NaN where /usr/bin/time is missing."""
    with open(stdin_path or os.devnull, "rb") as stdin, tempfile.TemporaryFile() as out, \
            tempfile.TemporaryFile() as err, tempfile.NamedTemporaryFile("r") as peak_file:
        timer = ["/usr/bin/time", "-f", "%M", "-o", peak_file.name] if TIME else []
        started = time.perf_counter()
        proc = subprocess.Popen([*timer, sys.executable, "-m", "numa_migrate", *argv],
                                stdin=stdin, stdout=out, stderr=err)
        deadline = started + 60
        while True:
            pid, status = os.waitpid(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
            time.sleep(0.005)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        peak_text = peak_file.read().strip().splitlines()
        peak = int(peak_text[-1]) / 1024 if TIME and peak_text else math.nan
        return (proc.returncode, wall, peak,
                err.read().decode(errors="replace"), len(out.read().splitlines()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="runs of each command (median)")
    parser.add_argument("--json", action="store_true", help="one JSON document")
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        files = make_files(Path(tmp))
        for name, argv, stdin in [("baseline: --version", ["--version"], None),
                                  *attacks(files)]:
            walls, base_walls, peaks = [], [], []
            last: tuple[int, float, float, str, int] = (0, 0.0, 0.0, "", 0)
            for _ in range(args.runs):
                base_walls.append(run_once(["--version"], None)[1])
                last = run_once(argv, stdin)
                walls.append(last[1])
                peaks.append(last[2])
            rc, _, _, err, answers = last
            lines = [ln for ln in err.splitlines() if ln.strip()]
            batch = stdin is not None
            baseline = argv == ["--version"]
            rows.append({
                "input": name, "exit": rc, "seconds": round(statistics.median(walls), 3),
                "ratio_to_start_up": round(statistics.median(
                    w / b for w, b in zip(walls, base_walls, strict=True)), 2),
                "peak_rss_mib": round(max(peaks), 1),
                "stderr_lines": len(lines), "traceback": "Traceback" in err,
                "message": (f"{answers} answer lines for {BATCH_LINES} input lines" if batch
                            else (lines[0] if lines else "")[:160]),
                "ok": (rc == 0 if baseline
                       else (not lines and rc == 0 and answers == BATCH_LINES) if batch
                       else (rc == 2 and len(lines) == 1 and "Traceback" not in err)),
            })
    if args.json:
        print(json.dumps({"rows": rows}, indent=2))
    else:
        print(f"{'input':40} exit  median s  ×start-up  peak MiB  ok  message")
        for r in rows:
            print(f"{r['input']:40} {r['exit']:>4}  {r['seconds']:8.3f}  "
                  f"{r['ratio_to_start_up']:9.2f}  {r['peak_rss_mib']:8.1f}  "
                  f"{'yes' if r['ok'] else 'NO':>3}  {r['message'][:90]}")
    return 0 if all(r["ok"] for r in rows[1:]) else 1


if __name__ == "__main__":
    sys.exit(main())
