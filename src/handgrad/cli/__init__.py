"""The ``handgrad`` command (also ``python -m handgrad``).

Commands: ``train`` (the main job), ``evaluate``, ``predict``, ``export``, ``walkthrough``, ... Wrong arguments
or inputs end with a one-line error and a non-zero exit status, never a traceback.

:data:`COMMANDS` is the table of commands: each is a :class:`~handgrad.cli.arguments.Command`
whose arguments are declared beside its handler, in the module of its group (``cli/train.py``,
``cli/evaluate.py``, ...); ``cli/process.py`` holds what runs around every command (one-line
errors and exit statuses, the guarded standard output, the output folder's lock, MPI).
"""

from __future__ import annotations

import argparse

from .._version import __version__
from .arguments import Command, Parser
from .book import BOOK_RUN, WALKTHROUGH
from .evaluate import EVALUATE, PREDICT
from .export import EXPORT
from .generate import GENERATE
from .process import (
    MPI_QUIET_SECONDS,
    CommandError,
    GuardedOutput,
    OutputLock,
    claim_output_folder,
    mpi_world,
    run_main,
)
from .serve import SERVE
from .trace_plot import PLOT, TRACE
from .train import TRAIN

__all__ = ["COMMANDS", "Command", "CommandError", "build_parser", "main"]

#: Every command, in the order ``handgrad --help`` lists them.
COMMANDS = (TRAIN, EVALUATE, PREDICT, TRACE, PLOT, GENERATE, SERVE, EXPORT, WALKTHROUGH, BOOK_RUN)

# The names these had when the command line was one module, kept importable from here.
_GuardedOutput, _OutputLock, _claim_output_folder, _mpi_world = GuardedOutput, OutputLock, claim_output_folder, mpi_world
_MPI_QUIET_SECONDS = MPI_QUIET_SECONDS


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="handgrad", description="Neural networks in NumPy with gradients written by hand, layer by layer.")
    parser.add_argument("--version", action="version", version=f"handgrad {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        description = command.description() if callable(command.description) else command.description
        sub = commands.add_parser(command.name, help=command.help, description=description)
        command.add_arguments(sub)
        sub.set_defaults(handler=command.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    return run_main(build_parser(), argv)
