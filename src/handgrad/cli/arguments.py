"""What every command's arguments are made of: a :class:`Command` (its name, help, arguments and
handler, one row of the table in ``cli/__init__.py``), the parser that reports a usage mistake
in one line, and the argument types that refuse a bad number by naming its option."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Command:
    """One command: ``add_arguments(parser)`` declares its arguments, ``run(args)`` does the
    work and returns the exit status."""

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    description: str | Callable[[], str] | None = None  # a callable when it needs an import


class Parser(argparse.ArgumentParser):
    """argparse, with usage mistakes reported in one line instead of the whole usage text."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text}")
    return value


def finite_non_negative(text: str) -> float:
    """A rate, a decay, a norm or a temperature: a finite number >= 0 (``inf`` and ``nan`` would
    only surface later as NaN weights and NumPy warnings)."""
    value = float(text)
    if not (np.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def finite_positive(text: str) -> float:
    value = finite_non_negative(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def port(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number from 1 to 65535, got {text}")
    return value


def fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


# argparse names the type in its message: "invalid positive integer value: 'x'".
positive_int.__name__ = "positive integer"
port.__name__ = "port number"
non_negative_int.__name__ = "integer >= 0"
fraction.__name__ = "fraction in [0, 1)"
finite_non_negative.__name__ = "finite number >= 0"
finite_positive.__name__ = "finite number > 0"
