"""Number options with bounds: a value outside them is one line on stderr and exit 2.

Click's own ranges print a usage block; these print ``error: --flavor-vcpus: 100000000 is
more than 4096 (QEMU's maximum vCPUs); allowed: 1 to 4096`` and nothing else.
"""

from __future__ import annotations

import math
from typing import Any

import click

EXIT_BAD_INPUT = 2
_MAX_CHARS = 40


def _fmt(number: float) -> str:
    if isinstance(number, int):
        return str(number)
    if float(number).is_integer() and abs(number) < 1e18:
        return str(int(number))
    return f"{number:g}"


class Bounded(click.ParamType[Any, Any]):
    """An integer (``integer=True``) or a finite number within ``minimum .. maximum``.

    ``above``: the value must be more than ``minimum`` (not equal); ``why`` says where the
    maximum comes from.
    """

    def __init__(self, minimum: float, maximum: float, *, integer: bool = True,
                 above: bool = False, why: str = "") -> None:
        self.minimum = minimum
        self.maximum = maximum
        self.integer = integer
        self.above = above
        self.why = why
        self.name = "integer" if integer else "number"

    def allowed(self) -> str:
        low = f"more than {_fmt(self.minimum)}" if self.above else f"{_fmt(self.minimum)}"
        return f"{low} to {_fmt(self.maximum)}" if not self.above else \
            f"{low} and at most {_fmt(self.maximum)}"

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        low = f"{_fmt(self.minimum)}<" if self.above else f"{_fmt(self.minimum)}<="
        return f"[{low}x<={_fmt(self.maximum)}]"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool):
            number: float = value
            text = str(value)
        else:
            text = str(value).strip()
            shown = text if len(text) <= _MAX_CHARS else text[: _MAX_CHARS - 3] + "..."
            try:
                if len(text) > _MAX_CHARS:
                    raise ValueError(text)
                number = int(text) if self.integer else float(text)
            except ValueError:
                what = "an integer" if self.integer else "a number"
                self._refuse(param, f"{shown!r} is not {what}")
        if not math.isfinite(number):
            self._refuse(param, f"{text} is not a finite number")
        if number < self.minimum or (self.above and number == self.minimum):
            self._refuse(param, f"{_fmt(number)} is too small; allowed: {self.allowed()}")
        if number > self.maximum:
            why = f" ({self.why})" if self.why else ""
            self._refuse(param, f"{_fmt(number)} is more than {_fmt(self.maximum)}{why}; "
                                f"allowed: {self.allowed()}")
        return int(number) if self.integer else float(number)

    def _refuse(self, param: click.Parameter | None, message: str) -> Any:
        name = param.opts[0] if param is not None and param.opts else "value"
        click.echo(f"error: {name}: {message}", err=True)
        raise click.exceptions.Exit(EXIT_BAD_INPUT)
