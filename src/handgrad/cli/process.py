"""The process around a command: one-line errors and their exit statuses, standard output that
survives a reader going away, the lock on an output folder, and quiet ranks under ``mpiexec``."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from pathlib import Path

from .. import _mpi_env


class CommandError(Exception):
    """An error to report in one line (exit status 1)."""


# --- running a command ----------------------------------------------------------------------------


def run_main(parser: argparse.ArgumentParser, argv: list[str] | None) -> int:
    """Parse ``argv`` and run its command's handler: a user's mistake ends in one line on
    standard error and exit status 1 (2 for usage, 130 for Ctrl-C), never a traceback."""
    from ..data import DataError
    from ..serialize import SerializationError
    from ..train import TrainingDiverged, TrainingInterrupted

    if _mpi_env.rank_from_environment():
        # Under mpiexec every rank runs this same command line: rank 0 alone speaks. A mistake in
        # the options is the same on every rank, so the others stay silent about it too.
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - for the rest of the process
        with contextlib.redirect_stderr(sys.stdout):
            args = parser.parse_args(argv)
    else:
        args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    args.argv = list(sys.argv[1:] if argv is None else argv)  # to say how to continue an interrupted run
    user_errors = (CommandError, DataError, SerializationError, TrainingDiverged, FileNotFoundError, ValueError)
    output, real_stdout = GuardedOutput(sys.stdout), sys.stdout
    sys.stdout = output
    try:
        status = args.handler(args)
        output.flush()
    except user_errors as error:
        return _fail(args, error, f"{error}")
    except MemoryError as error:
        return _fail(args, error, f"out of memory ({error or 'the arrays asked for do not fit'}); "
                     "try smaller layers or batches")
    except OSError as error:  # a full disk, a permission: the file and the reason, in one line
        where = f"{error.filename}: " if error.filename else ""
        return _fail(args, error, f"{where}{error.strerror or error}")
    except TrainingInterrupted as stopped:  # every rank stopped after the same step: nothing hangs
        if not _mpi_env.rank_from_environment():
            print(_interrupted_run(args, stopped), file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        if _mpi_env.launched_by_mpi():  # the other ranks would wait for this one forever
            return _end_mpi_job(args, "interrupted", 130)
        print(f"handgrad {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        sys.stdout = real_stdout
    if output.error is not None and not isinstance(output.error, BrokenPipeError):
        # A reader that stopped listening (`| head`) is fine; a failed write is not.
        print(f"handgrad {args.command}: error: could not write to standard output "
              f"({output.error.strerror or output.error})", file=sys.stderr)
        return 1
    return status


def _interrupted_run(args, stopped) -> str:
    """What Ctrl-C left: how far the run got, and the command that continues it."""
    import shlex

    if stopped.checkpoint is None:
        return f"handgrad {args.command}: interrupted at {stopped.where}"
    command = ["handgrad", *args.argv] + ([] if "--resume" in args.argv else ["--resume"])
    size = _mpi_env.world_size_from_environment()
    launcher = f"mpiexec -n {size} " if size > 1 else ""
    return (f"handgrad {args.command}: interrupted at {stopped.where}; the run so far is saved in "
            f"{stopped.checkpoint}. Continue it with:\n  {launcher}{shlex.join(command)}")


def _fail(args, error: BaseException, message: str) -> int:
    """Report a user's mistake in one line; with HANDGRAD_DEBUG=1, show the whole traceback too
    (for reporting a bug in handgrad itself)."""
    if os.environ.get("HANDGRAD_DEBUG"):
        import traceback

        traceback.print_exception(error)
    if _mpi_env.launched_by_mpi():  # the other ranks would wait for this one forever
        return _end_mpi_job(args, message, 1, kind="error: ")
    print(f"handgrad {args.command}: error: {message}", file=sys.stderr)
    return 1


class GuardedOutput:
    """Standard output that survives a reader going away (``handgrad train | head -2``) or a write
    error (``> /dev/full``): the command carries on and finishes its work (a training run still
    saves its model), further output is dropped, and ``main`` reports the failure at the end."""

    def __init__(self, stream) -> None:
        self.stream, self.error = stream, None

    def write(self, text: str) -> int:
        if self.error is None:
            try:
                return self.stream.write(text)
            except OSError as error:
                self._failed(error)
        return len(text)

    def flush(self) -> None:
        if self.error is None:
            try:
                self.stream.flush()
            except OSError as error:
                self._failed(error)

    def _failed(self, error: OSError) -> None:
        self.error = error
        # Python flushes the real stdout once more at exit; point it at /dev/null so that this
        # final flush cannot print "Exception ignored" with a traceback.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.stream.fileno())
            os.close(devnull)
        except (OSError, ValueError, AttributeError):
            pass

    def __getattr__(self, name):
        return getattr(self.stream, name)


# --- the output folder -------------------------------------------------------------------------------


class OutputLock:
    """An exclusive lock on an output folder for the life of a run (``flock``: the system drops it
    when the process ends, even after ``kill -9``, so a crashed run never leaves a stale lock).
    A folder this run created and left empty (it failed before writing anything) is removed."""

    NAME = ".handgrad.lock"

    def __init__(self, folder: Path, created: bool) -> None:
        self.folder, self.created, self.handle = folder, created, None
        try:
            import fcntl
        except ImportError:  # Windows: no advisory locks; runs there are not protected from each other
            return
        self.handle = open(folder / self.NAME, "a")  # noqa: SIM115 - held for the run, closed by __exit__
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.handle.close()
            raise CommandError(f"--out {folder}: another handgrad run is writing there now; wait for it to finish "
                               "or choose another --out") from None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        if self.handle is not None:
            self.handle.close()  # closing drops the lock
        if self.created and [p.name for p in self.folder.iterdir()] in ([], [self.NAME]):
            (self.folder / self.NAME).unlink(missing_ok=True)
            self.folder.rmdir()


def claim_output_folder(out: Path, files: list[str]) -> OutputLock:
    """Check before training that ``out`` can take the run's files, then lock it: a run must not
    be lost at its end to a folder that is a file, a file that is a folder, or no permission."""
    if out.exists() and not out.is_dir():
        raise CommandError(f"--out {out} is a file, not a folder")
    for name in files:
        if (out / name).is_dir():
            raise CommandError(f"--out {out}: {out / name} is a folder; the run needs to write a file there")
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
        import tempfile

        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as error:
        raise CommandError(f"--out {out}: cannot write there ({error.strerror or error})") from error
    return OutputLock(out, created)


# --- MPI ----------------------------------------------------------------------------------------------


def mpi_world():
    """``MPI.COMM_WORLD`` when ``mpiexec -n K`` (K > 1) started this process, else None."""
    from .. import distributed

    if not distributed.launched_by_mpi():
        return None
    try:
        return distributed.world()
    except ImportError as error:
        raise CommandError(str(error)) from error


#: How long a rank other than 0 waits for rank 0 to end the job before it speaks itself.
MPI_QUIET_SECONDS = 3.0


def _end_mpi_job(args, message: str, status: int, kind: str = "") -> int:
    """Under ``mpiexec``, say ``message`` once and end every rank of the job (``MPI_Abort``).

    A mistake in the options, or a Ctrl-C that mpiexec forwards to every process, reaches every
    rank at once: rank 0 says it and aborts the job, which ends the others before they speak.
    Each rank joins MPI *before* it waits (MPI_Init is collective: a rank that slept first kept
    rank 0's abort waiting for it), and a rank that is still alive after the wait failed or was
    interrupted alone, and says so itself."""
    from .. import distributed

    rank = _mpi_env.rank_from_environment()
    try:
        comm = distributed.world()
    except ImportError:
        comm = None
    if rank:
        if comm is None:  # no MPI to end the job with: every rank has the same story; rank 0 tells it
            return status
        with contextlib.suppress(KeyboardInterrupt):  # a second Ctrl-C while waiting
            time.sleep(MPI_QUIET_SECONDS)
        message = f"(MPI rank {rank}) {message}"
    print(f"handgrad {args.command}: {kind}{message}", file=sys.stderr)
    if comm is not None:
        distributed.abort_job(comm, status)
    return status
