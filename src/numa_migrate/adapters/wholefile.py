"""Writing a file whole or not at all (plan files, snapshots, HTML pages).

The data goes to a fresh temporary file beside the target (``mkstemp``: created with
``O_EXCL``, never a name someone could have planted a link at), which then replaces the
target in one ``rename``: a reader sees the old file or the new one, never half of it, and
a failed write leaves the old file as it was. Only a regular file is ever replaced: a
device, FIFO, socket or directory at the path is refused (``/dev/null`` given as an output
must not become a regular file).
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from pathlib import Path

__all__ = ["write_whole"]

DEFAULT_MODE = 0o644


def write_whole(path: Path, data: bytes, *, mode: int | None = None) -> None:
    """Replace ``path`` with ``data`` atomically. ``mode``: the new file's permissions
    (None: an existing file's, else 0o644). Raises ``OSError`` (nothing is left behind)."""
    try:
        existing = os.stat(path).st_mode
    except FileNotFoundError:
        existing = None
    if existing is not None and not stat.S_ISREG(existing):
        raise OSError(errno.EINVAL, "not a regular file (only a regular file is replaced)")
    if mode is None:
        mode = DEFAULT_MODE if existing is None else stat.S_IMODE(existing)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
