"""Read what preflight checks: nova.conf files (oslo.config INI), nova-compute and
nova-cloud-controller charm configs (YAML as ``juju config APP`` prints it), and OpenStack
release names. Pure parsing: text in, values with their file and line out; every mistake
names the file and the line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from numa_migrate.core.errors import ParseError
from numa_migrate.inputs.bounds import DocBounds
from numa_migrate.inputs.files import decode_utf8, read_bytes
from numa_migrate.inputs.yamldoc import YamlMapping, parse_yaml

MAX_SOURCE_BYTES = 4 * 1024 * 1024
"""A nova.conf or a charm configuration (a real nova.conf is well under 1 MiB)."""
MAX_INT_CHARS = 20

# OpenStack series in order; Nova's major version is 17 + the index (Queens = 17.0.0).
RELEASES = ("queens", "rocky", "stein", "train", "ussuri", "victoria", "wallaby", "xena",
            "yoga", "zed", "2023.1", "2023.2", "2024.1", "2024.2", "2025.1", "2025.2",
            "2026.1", "2026.2")
ALIASES = {"antelope": "2023.1", "bobcat": "2023.2", "caracal": "2024.1",
           "dalmatian": "2024.2", "epoxy": "2025.1", "flamingo": "2025.2",
           "gazpacho": "2026.1"}
FIRST_NOVA_MAJOR = 17
TRAIN = RELEASES.index("train")


class PreflightInputError(ParseError):
    """A file or value preflight cannot read; names the file, the line and what is allowed."""


def release_index(name: str) -> int:
    """Index in :data:`RELEASES` of a series name, alias or Nova version (``20.4.1``)."""
    raw = name.strip().lower()
    raw = ALIASES.get(raw, raw)
    if raw in RELEASES:
        return RELEASES.index(raw)
    match = re.fullmatch(r"(\d{1,2})(\.\d+){0,2}", raw)
    if match:
        major = int(match.group(1))
        if FIRST_NOVA_MAJOR <= major < FIRST_NOVA_MAJOR + len(RELEASES):
            return major - FIRST_NOVA_MAJOR
    names = ", ".join(RELEASES) + "; or " + ", ".join(ALIASES)
    raise PreflightInputError(
        f"release {name!r} is unknown: give an OpenStack series ({names}) or a Nova version "
        f"from {FIRST_NOVA_MAJOR}.0.0 (queens) to {FIRST_NOVA_MAJOR + len(RELEASES) - 1}.x")


def release_name(index: int) -> str:
    name = RELEASES[index]
    alias = next((a for a, r in ALIASES.items() if r == name), None)
    return f"{name} ({alias})" if alias else name


# --------------------------------------------------------------------------- nova.conf


@dataclass(frozen=True)
class Value:
    value: str
    line: int


@dataclass(frozen=True)
class NovaConf:
    """One nova.conf: ``[section] key`` -> every value it was given (oslo keeps the last for
    a single-valued option; multi-valued ones like reserved_huge_pages use them all)."""

    path: str
    values: dict[tuple[str, str], list[Value]] = field(default_factory=dict)

    def get(self, section: str, key: str) -> Value | None:
        found = self.values.get((section.lower(), key.lower()))
        return found[-1] if found else None

    def all(self, section: str, key: str) -> list[Value]:
        return list(self.values.get((section.lower(), key.lower()), []))

    def where(self, value: Value | None) -> str:
        return self.path if value is None else f"{self.path}:{value.line}"


_SECTION = re.compile(r"\[\s*([^\]]+?)\s*\]\s*$")
_ITEM = re.compile(r"([A-Za-z0-9_.\-]+)\s*[=:]\s*(.*)$")


def parse_nova_conf(text: str | bytes, path: str) -> NovaConf:
    """Parse oslo.config INI: ``[section]``, ``key = value``, ``#``/``;`` comments, values
    continued on indented lines. Bytes are read as strict UTF-8."""
    if isinstance(text, bytes):
        text = decode_utf8(text, source=path, error=PreflightInputError)
    conf = NovaConf(path)
    section: str | None = None
    last: tuple[str, str] | None = None
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip()
        stripped = line.strip()
        if not stripped or stripped[0] in "#;":
            continue
        if raw[:1] in " \t" and last is not None:
            prev = conf.values[last][-1]
            conf.values[last][-1] = Value(f"{prev.value}\n{stripped}", prev.line)
            continue
        section_match = _SECTION.match(stripped)
        if section_match:
            section, last = section_match.group(1).lower(), None
            continue
        item = _ITEM.match(stripped)
        if item is None:
            raise PreflightInputError(f"{path}:{number}: not an INI line ([section] or "
                                      f"key = value): {stripped[:60]!r}")
        if section is None:
            raise PreflightInputError(f"{path}:{number}: {item.group(1)} comes before any "
                                      "[section] (nova.conf options live in [DEFAULT], "
                                      "[compute], [libvirt], [workarounds], ...)")
        last = (section, item.group(1).lower())
        conf.values.setdefault(last, []).append(Value(item.group(2).strip(), number))
    return conf


def conf_bool(conf: NovaConf, section: str, key: str) -> bool | None:
    value = conf.get(section, key)
    if value is None:
        return None
    text = value.value.strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise PreflightInputError(f"{conf.where(value)}: [{section}] {key} = {value.value!r} is "
                              "not a boolean (true/false, 1/0, yes/no, on/off)")


def conf_int(conf: NovaConf, section: str, key: str) -> int | None:
    value = conf.get(section, key)
    if value is None:
        return None
    text = value.value.strip()
    try:
        if len(text) > MAX_INT_CHARS:
            raise ValueError(text)
        return int(text)
    except ValueError:
        shown = text if len(text) <= 40 else text[:37] + "..."
        raise PreflightInputError(f"{conf.where(value)}: [{section}] {key} = {shown!r} "
                                  "is not an integer") from None


# --------------------------------------------------------------------------- charm config


@dataclass(frozen=True)
class CharmSetting:
    value: Any
    source: str  # "default" | "user" | ...
    line: int


@dataclass(frozen=True)
class CharmConfig:
    path: str
    application: str
    settings: dict[str, CharmSetting]

    def value(self, key: str) -> Any:
        setting = self.settings.get(key)
        return None if setting is None else setting.value

    def where(self, key: str) -> str:
        setting = self.settings.get(key)
        return self.path if setting is None else f"{self.path}:{setting.line}"


def parse_charm_config(text: str | bytes, path: str,
                       application: str = "nova-compute") -> CharmConfig:
    """``juju config APPLICATION`` output (nova-compute, or nova-cloud-controller), read as
    bounded YAML without aliases. When the document names its charm and that is not
    ``application``'s, the file is refused (one charm's file given for the other)."""
    doc = parse_yaml(text, source=path, bounds=DocBounds(max_bytes=MAX_SOURCE_BYTES),
                     error=PreflightInputError)
    if not isinstance(doc, YamlMapping) or not isinstance(doc.get("settings"), YamlMapping):
        raise PreflightInputError(
            f"{path}: expected `juju config {application}` output: a YAML mapping with "
            "application, charm and settings (each setting with value/default/source)")
    charm = doc.get("charm")
    if application != "nova-compute" and isinstance(charm, str) and application not in charm:
        raise PreflightInputError(f"{path}: this is the configuration of charm {charm!r}; "
                                  f"expected `juju config {application}` output")
    raw_settings: YamlMapping = doc["settings"]
    settings: dict[str, CharmSetting] = {}
    for key, raw in raw_settings.items():
        line = raw_settings.lines.get(key, 0)
        if not isinstance(raw, dict):
            raise PreflightInputError(f"{path}:{line}: settings.{key} must be a mapping with "
                                      "value, default and source keys")
        value = raw.get("value", raw.get("default"))
        source = raw.get("source", "default")
        if not isinstance(source, str):
            raise PreflightInputError(f"{path}:{line}: settings.{key}.source must be a string")
        settings[str(key)] = CharmSetting(value, source, line)
    name = doc.get("application", application)
    if not isinstance(name, str):
        raise PreflightInputError(f"{path}: application must be a string")
    return CharmConfig(path, name, settings)


def read_source(path: Path, what: str) -> bytes:
    """A nova.conf or charm file: a regular file of at most :data:`MAX_SOURCE_BYTES`."""
    if not path.exists():
        raise PreflightInputError(f"{path}: cannot read it: no such file")
    return read_bytes(path, what=what, max_bytes=MAX_SOURCE_BYTES, error=PreflightInputError)
