"""The input layer: safe files, bounded documents, field-path errors."""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from numa_migrate.adapters.casefmt import answer_lines, case_from_json
from numa_migrate.claims.engine import parse_url
from numa_migrate.claims.model import ClaimError
from numa_migrate.core.errors import InvalidCaseError, ParseError
from numa_migrate.inputs import (
    parse_json,
    parse_toml,
    read_bytes,
    read_text,
    root,
)
from numa_migrate.inputs.files import bounded_lines
from numa_migrate.inputs.yamldoc import YamlMapping, parse_yaml

CASE = {"id": "c", "host": {"cells": [{"id": 0, "cpuset": [0], "pcpuset": [1],
                                       "memory_mib": 1024}]},
        "flavor": {"vcpus": 1, "memory_mib": 512}}


# --------------------------------------------------------------------------- files


def test_only_regular_files_are_read(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    for path, kind in ((fifo, r"a FIFO \(named pipe\)"), (Path("/dev/zero"), "a character device"),
                       (tmp_path, "a directory")):
        with pytest.raises(ParseError, match=f"is {kind}, not a fleet file"):
            read_bytes(path, what="fleet file")
    with pytest.raises(ParseError, match=r"nope\.json: fleet file not found"):
        read_bytes(tmp_path / "nope.json", what="fleet file")


def test_a_file_beyond_the_bound_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    big = tmp_path / "big.json"
    big.write_bytes(b" " * 2048)
    assert len(read_bytes(big, max_bytes=2048)) == 2048
    with pytest.raises(ParseError, match="2049 bytes, more than the 2048 bytes allowed"):
        big.write_bytes(b" " * 2049)
        read_bytes(big, max_bytes=2048)


def test_non_utf8_names_the_file_and_the_byte_offset(tmp_path: Path) -> None:
    path = tmp_path / "nova.conf"
    path.write_bytes(b"[DEFAULT]\ndebug = caf\xe9\n")
    with pytest.raises(ParseError, match=r"nova\.conf: not UTF-8 text: byte 0xe9 at offset "
                                         r"21 \(line 2\)"):
        read_text(path)
    path.write_bytes(b"\xef\xbb\xbf[x]\n")
    assert read_text(path) == "[x]\n"


def test_bounded_lines_skip_an_overlong_line_without_holding_it() -> None:
    stream = io.BytesIO(b"a\n" + b"x" * 100 + b"\nb\r\n\nc")
    assert list(bounded_lines(stream, max_bytes=10)) == [b"a", None, b"b", b"", b"c"]


# --------------------------------------------------------------------------- documents


@pytest.mark.parametrize(("text", "message"), [
    ("[" * 100_000, "nested more than 32 levels deep"),
    ("[" * 40 + "]" * 40, r"nested more than 32 levels deep"),
    ("9" * 5000, "integer of 5000 digits"),
    ("-" + "9" * 21, "integer of 21 digits"),
    ('{"a": NaN}', "NaN is not allowed"),
    ('{"a": -Infinity}', "-Infinity is not allowed"),
    ("1e999", "out of range"),
    ("0." + "1" * 50, "more than 40 characters"),
    ('{"a": 1, "a": 2}', "key 'a' is given twice"),
    ("{'a': 1}", r"not JSON: line 1, column 2"),
])
def test_json_bounds(text: str, message: str) -> None:
    with pytest.raises(ParseError, match=message) as info:
        parse_json(text, source="doc.json")
    assert str(info.value).startswith("doc.json: ")


def test_json_within_bounds() -> None:
    assert parse_json(b'{"a": [1, 2.5, "x", null, true, -18446744073709551616]}') == {
        "a": [1, 2.5, "x", None, True, -18446744073709551616]}


@pytest.mark.parametrize(("text", "message"), [
    ("a = nan\n", "out of range"),
    ("a = -inf\n", "out of range"),
    ("a = " + "[" * 5000 + "\n", "nested more than 32 levels deep"),
    ("a = 1979-05-27\n", "unsupported value of type date"),
    ("a = " + "9" * 4000 + "\n", "integer of more than 20 digits"),
    ("a = 1\na = 2\n", r"not valid TOML: line 2"),
])
def test_toml_bounds(text: str, message: str) -> None:
    with pytest.raises(ParseError, match=message):
        parse_toml(text, source="i.toml")


ALIAS_BOMB = ("a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n"
              + "".join(f"{chr(98 + i)}: &{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * 9)
                        + "]\n" for i in range(8)))


@pytest.mark.parametrize(("text", "message"), [
    (ALIAS_BOMB, r"c\.yaml:1: not valid YAML: anchor &a is not allowed"),
    ("a: *x\n", r"not valid YAML"),
    ("a: !!python/object/apply:os.system [ls]\n", "is not allowed"),
    ("a: !custom 1\n", "tag !custom is not allowed"),
    ("a: !!binary aGk=\n", "is not allowed"),
    ("a: .nan\n", "a: nan is not a finite number"),
    ("a: " + "[" * 5000 + "\n", "nested more than 32 levels deep"),
    ("".join(" " * i + "a:\n" for i in range(100)), "nested more than 32 levels deep"),
    ("a: 1\na: 2\n", "key 'a' is given twice"),
    ("a: " + "9" * 4000 + "\n", "integer of more than 20 digits"),
])
def test_yaml_without_aliases_tags_or_blowups(text: str, message: str) -> None:
    assert len(ALIAS_BOMB) < 1024
    with pytest.raises(ParseError, match=message):
        parse_yaml(text, source="c.yaml")


def test_yaml_keeps_key_lines_and_reads_timestamps_as_text() -> None:
    doc = parse_yaml("a: 2024-01-01\nb:\n  c: on\n")
    assert isinstance(doc, YamlMapping) and doc.lines == {"a": 1, "b": 2}
    assert doc == {"a": "2024-01-01", "b": {"c": True}}


# --------------------------------------------------------------------------- fields


def test_field_errors_carry_source_path_value_and_what_is_allowed() -> None:
    doc = root({"flavor": {"vcpus": 100000}, "hosts": {"cmp-1": {"uri": 3}}},
               source="cases.jsonl line 3")
    flavor = doc.obj().req("flavor").renamed("flavor").obj()
    with pytest.raises(ParseError) as info:
        flavor.req("vcpus").integer(maximum=4096, why="QEMU's maximum vCPUs")
    assert str(info.value) == ("cases.jsonl line 3: flavor.vcpus: 100000 is more than 4096 "
                               "(QEMU's maximum vCPUs)")
    inv = root({"hosts": {"cmp-1": {"uri": 3}}}, source="inventory.toml")
    with pytest.raises(ParseError) as info:
        inv.obj().req("hosts").obj().req("cmp-1").obj().req("uri").text()
    assert str(info.value) == "inventory.toml: hosts.cmp-1.uri: expected a string, got integer 3"


def test_field_reader_shortens_values_and_refuses_unknown_keys() -> None:
    node = root({"a": "x" * 500, "b": 10**80}, label="doc")
    obj = node.obj()
    with pytest.raises(ParseError, match=r"doc\.a: expected an integer, got string 'xxx.*\.\.\.$"):
        obj.req("a").integer()
    with pytest.raises(ParseError,
                       match=r"doc\.b: <an integer of about 81 digits> is more than 7$"):
        obj.req("b").integer(maximum=7)
    with pytest.raises(ParseError, match=r"doc\.c is missing"):
        obj.req("c")
    with pytest.raises(ParseError, match=r"doc\.b: unknown field \(allowed: a\)"):
        root({"a": 1, "b": 2}, label="doc").obj(known=("a",))
    with pytest.raises(ParseError) as info:
        root({"a": 10**300}).obj().req("a").integer(maximum=1)
    assert len(str(info.value)) < 120


# --------------------------------------------------------------------------- fit cases


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda c: c["flavor"].update(vcpus=100000),
     "flavor.vcpus: 100000 is more than 4096 (QEMU's maximum vCPUs)"),
    (lambda c: c["flavor"].update(vcpus=10**19), "flavor.vcpus: 10000000000000000000 is more"),
    (lambda c: c["host"]["cells"][0].update(mempages=1),
     "host.cells[0].mempages: expected a list, got integer 1"),
    (lambda c: c["host"]["cells"][0].update(cpuset=[16384]),
     "host.cells[0].cpuset[0]: 16384 is more than 16383"),
    (lambda c: c["host"]["cells"].append(dict(c["host"]["cells"][0])),
     "host.cells[1].id: cell id 0 is given twice"),
    (lambda c: c.update(limits={"cpu_allocation_ratio": 0}),
     "limits.cpu_allocation_ratio: 0 must be more than 0"),
    (lambda c: c.update(image_properties={"hw_x": [1]}), "image_properties.hw_x: expected"),
    (lambda c: c.update(packing="yes"), "case.packing: expected true or false"),
])
def test_fit_case_fields_are_bounded(mutate: object, message: str) -> None:
    import copy

    case = copy.deepcopy(CASE)
    mutate(case)  # type: ignore[operator]
    with pytest.raises(InvalidCaseError) as info:
        case_from_json(case)
    assert message in str(info.value)


def test_batch_answers_every_hostile_line() -> None:
    import json

    good = json.dumps(CASE).encode()
    lines = [good, b"[" * 100_000, b'{"id": 1, "x": ' + b"9" * 5000 + b"}",
             b'{"id": "i", "image_properties": {"hw_x": Infinity}}', b"",
             b'{"id": "' + b"a" * (5 * 1024 * 1024) + b'"}', b'{"id": "\xff"}', b"   ", good]
    answers = list(answer_lines(io.BytesIO(b"\n".join(lines) + b"\n")))
    assert len(answers) == len(lines)
    assert [a.parsed for a in answers] == [True, False, False, False, False, False, False,
                                           False, True]
    assert answers[0].answer["fits"] is True and answers[-1].answer["fits"] is True
    for number, a in enumerate(answers[1:-1], 2):
        error = a.answer["error"]
        assert isinstance(error, dict) and error["type"] == "InvalidCase"
        assert error["message"].startswith(f"line {number}: ")


# --------------------------------------------------------------------------- database URLs


@pytest.mark.parametrize(("url", "message"), [
    ("postgresql://u@127.0.0.1:abc/db", "the port is not a number"),
    ("postgresql://u@127.0.0.1:99999/db", "port 99999 is not in 1-65535"),
    ("postgresql://u@[::1/db", "is not a URL"),
])
def test_malformed_database_urls_are_one_clear_error(url: str, message: str) -> None:
    with pytest.raises(ClaimError, match=message) as info:
        parse_url(url)
    assert "\n" not in str(info.value)
