"""Reading files safely: only regular files, never more than a bound, strict UTF-8.

A FIFO, a character device such as ``/dev/zero``, a directory or a socket given where a
file is expected is refused at once (the file is opened non-blocking, so even opening a
FIFO with no writer does not wait). At most ``max_bytes + 1`` bytes are read, so a huge
file costs no more than the bound.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from numa_migrate.core.errors import ParseError
from numa_migrate.inputs.bounds import MAX_FILE_BYTES

_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _kind(mode: int) -> str:
    for test, name in _KINDS:
        if test(mode):
            return name
    return "not a regular file"


def _size_text(n: int) -> str:
    return f"{n // (1024 * 1024)} MiB" if n >= 1024 * 1024 and n % (1024 * 1024) == 0 \
        else f"{n} bytes"


def read_bytes(
    path: Path | str,
    *,
    what: str = "file",
    max_bytes: int = MAX_FILE_BYTES,
    error: type[ParseError] = ParseError,
) -> bytes:
    """The bytes of the regular file ``path``; ``what`` names it in errors ("fleet file")."""
    name = str(path)
    if "\0" in name:
        raise error(f"a {what} name cannot contain a NUL character", source=repr(name))
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) \
        | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise error(f"{what} not found", source=name) from None
    except IsADirectoryError:
        raise error(f"is a directory, not a {what}", source=name) from None
    except OSError as exc:
        raise error(f"cannot read the {what}: {exc.strerror or exc}", source=name) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise error(f"is {_kind(info.st_mode)}, not a {what} (only regular files are read)",
                        source=name)
        if info.st_size > max_bytes:
            raise error(f"{what} is {info.st_size} bytes, more than the "
                        f"{_size_text(max_bytes)} allowed", source=name)
        chunks: list[bytes] = []
        left = max_bytes + 1
        while left > 0:
            try:
                chunk = os.read(fd, min(left, 1 << 20))
            except BlockingIOError:  # pragma: no cover (regular files never block)
                continue
            except OSError as exc:
                raise error(f"cannot read the {what}: {exc.strerror or exc}",
                            source=name) from None
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
        if len(data) > max_bytes:
            raise error(f"{what} is more than the {_size_text(max_bytes)} allowed", source=name)
        return data
    finally:
        os.close(fd)


def decode_utf8(data: bytes, *, source: str | None = None,
                error: type[ParseError] = ParseError) -> str:
    """``data`` as UTF-8 text, or an error naming the byte offset of the first bad byte.

    A leading byte-order mark is dropped.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = data[exc.start:exc.start + 1].hex()
        line = data.count(b"\n", 0, exc.start) + 1
        where = f" (line {line})" if b"\n" in data else ""
        raise error(f"not UTF-8 text: byte 0x{bad} at offset {exc.start}{where}",
                    source=source) from None
    return text.removeprefix("\ufeff")


def read_text(
    path: Path | str,
    *,
    what: str = "file",
    max_bytes: int = MAX_FILE_BYTES,
    error: type[ParseError] = ParseError,
) -> str:
    """The UTF-8 text of the regular file ``path`` (see :func:`read_bytes`)."""
    data = read_bytes(path, what=what, max_bytes=max_bytes, error=error)
    return decode_utf8(data, source=str(path), error=error)


def bounded_lines(stream: BinaryIO, *, max_bytes: int) -> Iterator[bytes | None]:
    """The lines of ``stream`` without their line ends; None for a line longer than
    ``max_bytes`` (its bytes are skipped in chunks, never held). A last line without a line
    end counts; the line end after the last line does not start another one."""
    while True:
        line = stream.readline(max_bytes + 1)
        if not line:
            return
        if len(line) > max_bytes and not line.endswith(b"\n"):
            while True:
                rest = stream.readline(1 << 16)
                if not rest or rest.endswith(b"\n"):
                    break
            yield None
            continue
        yield line.removesuffix(b"\n").removesuffix(b"\r")
