"""Typed access to libvirt-python (which has no type information), imported lazily.

The lab package imports without libvirt-python installed; only the functions that talk to
a daemon need it (and :func:`numa_migrate.lab.packages.check_libvirt_python` says how to
install it).
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

from numa_migrate.adapters.virt import lv
from numa_migrate.lab.errors import LabError, LabUnavailableError


@functools.cache
def _silence_libvirt() -> None:
    """libvirt prints every error on stderr by default; they are raised as exceptions anyway."""
    lv()


def _import(name: str) -> ModuleType:
    try:
        module = importlib.import_module(name)
    except ImportError as exc:
        raise LabUnavailableError(
            f"`import {name}` failed ({exc}); run scripts/lab-deps.sh to install libvirt-python"
        ) from None
    _silence_libvirt()
    return module


def libvirt() -> Any:
    """The ``libvirt`` module (untyped)."""
    return _import("libvirt")


def libvirt_qemu() -> Any:
    """The ``libvirt_qemu`` module (untyped)."""
    return _import("libvirt_qemu")


def libvirt_error() -> type[Exception]:
    error: type[Exception] = libvirt().libvirtError
    return error


def open_connection(uri: str) -> Any:
    """A read-write connection to ``uri``; a :class:`LabError` that names the URI if refused."""
    lv = libvirt()
    try:
        return lv.open(uri)
    except lv.libvirtError as exc:
        raise LabError(f"cannot connect to {uri}: {exc}") from None


@contextmanager
def connection(uri: str) -> Iterator[Any]:
    """``with connection(uri) as conn:`` — closed at the end."""
    conn = open_connection(uri)
    try:
        yield conn
    finally:
        try:
            conn.close()
        except libvirt().libvirtError:
            pass
