"""No unpickling while a book script runs under ``handgrad book-run``.

Loading a pickle calls whatever the file names (``__reduce__``), so a ``.pkl`` planted next to a
book script (``ch03/neuralnet_mnist.py`` reads ``sample_weight.pkl`` with ``pickle.load`` itself)
would run its payload in the reader's session. While :class:`NoUnpickling` is entered, every way
in refuses before a byte of the file is read:

* ``pickle.load``, ``pickle.loads``, ``pickle.Unpickler``, the pure-Python ``pickle._load``,
  ``_loads``, ``_Unpickler`` and their C twins ``_pickle.load``, ``loads``, ``Unpickler`` are
  replaced: the book's ``pickle.load(f)``, ``numpy.load(..., allow_pickle=True)`` of an object
  array (NumPy calls ``pickle.load``) and any unpickler class made during the run refuse at once,
  with the file's name;
* an audit hook (PEP 578) refuses the ``pickle.find_class`` event, which every unpickler raises
  before it can fetch anything to call, so an unpickler captured before the run (``shelve``'s,
  ``multiprocessing``'s, joblib's) refuses too. Audit hooks cannot be removed: this one is added
  once per process and does nothing while no script runs.

The refusal is :class:`UnpicklingRefused`, a BaseException like SystemExit, so that a library's
``except Exception`` in between (``numpy.load`` re-raises an Exception from ``pickle.load`` as
``UnpicklingError``) can neither swallow it nor turn it into a traceback; its text is the one line
``book-run`` prints. Leaving the context puts every replaced name back.
"""

from __future__ import annotations

import _pickle
import io
import os
import pickle
import sys
from pathlib import Path

from . import BOOK_PICKLES


class UnpicklingRefused(BaseException):
    """An unpickling refused during a book-run; ``str()`` is the one line to print."""


#: The names replaced while a script runs, by module.
REPLACED = {
    pickle: ("load", "loads", "Unpickler", "_load", "_loads", "_Unpickler"),
    _pickle: ("load", "loads", "Unpickler"),
}

#: Where Python's library, the installed packages and handgrad live: a frame from there is not
#: the script's code, so the refusal names the script's line that asked for the unpickling.
_LIBRARY_ROOTS = tuple(sorted({os.path.realpath(root) for root in (sys.prefix, sys.base_prefix, sys.exec_prefix,
                                                                   sys.base_exec_prefix)}
                              | {os.path.realpath(Path(__file__).parents[1])}))

_active: NoUnpickling | None = None  # the guard of the script running now
_hook_added = False


def _audit(event: str, args: tuple) -> None:
    """Refuse every unpickler's class look-up while a script runs (the backstop)."""
    if event == "pickle.find_class" and _active is not None:
        module, name = args
        raise _active.refusal(_open_file_near_caller(), f"an unpickler fetching {module}.{name}")


def is_library_file(filename: str) -> bool:
    """Whether ``filename`` is Python's, an installed package's or handgrad's, not a script's."""
    real = os.path.realpath(filename)
    return any(real == root or real.startswith(root + os.sep) for root in _LIBRARY_ROOTS)


def _script_frame():
    """The innermost frame of the script's own code (its file or a module beside it)."""
    frame = sys._getframe(1)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not filename.startswith("<") and not is_library_file(filename):
            return frame
        frame = frame.f_back
    return None


def _open_file_near_caller() -> str:
    """For the backstop, which is not handed the file: the open binary file among the local
    variables of the script's innermost frame, where there is one."""
    frame = _script_frame()
    if frame is not None:
        for value in frame.f_locals.values():
            if isinstance(value, (io.BufferedIOBase, io.RawIOBase)) and not value.closed:
                return _file_label(value)
    return "a pickle"


def _file_label(file) -> str:
    """The file an unpickler was handed, as a path where it has one."""
    name = getattr(file, "name", None)
    if isinstance(name, bytes):
        name = os.fsdecode(name)
    if isinstance(name, (str, os.PathLike)):
        path = Path(name)
        return str(path.resolve()) if path.exists() else str(name)
    if isinstance(name, int):
        return f"file descriptor {name}"
    return f"a {type(file).__name__} stream"


def _bytes_label(data) -> str:
    try:
        return f"{memoryview(data).nbytes} bytes"
    except TypeError:
        return f"a {type(data).__name__}"


class NoUnpickling:
    """The context in which a book script runs: unpickling refuses (see the module docstring).
    ``out`` is book-run's output folder, named in the hint for the book's own weight files."""

    def __init__(self, script: Path, out: Path) -> None:
        self.script, self.out = Path(script), Path(out)
        self.originals: list[tuple[object, str, object]] = []
        self.previous: NoUnpickling | None = None

    def refusal(self, what: str, how: str) -> UnpicklingRefused:
        frame = _script_frame()
        where = ""
        if frame is not None:
            filename = Path(frame.f_code.co_filename)
            shown = filename.name if filename.parent.resolve() == self.script.parent else str(filename)
            where = f", {shown} line {frame.f_lineno}"
        line = (f"handgrad book-run: refused to unpickle {what} ({how}{where}): loading a pickle runs whatever "
                f"code it names, so book-run never unpickles")
        hint = self._hint(Path(what).name)
        return UnpicklingRefused(f"{line}; {hint}" if hint else line)

    def _hint(self, file_name: str) -> str:
        """How to get the safetensors equivalent of a weight file the book ships as a pickle."""
        if file_name not in BOOK_PICKLES:
            return ""
        trainer = BOOK_PICKLES[file_name]
        if trainer is None:
            return (f"the book ships {file_name} only as a pickle, with no script that trains it, so there is "
                    f"no safetensors equivalent for book-run to read")
        safe = self.out / Path(file_name).with_suffix(".safetensors")
        return (f"train its safetensors equivalent with handgrad book-run --out {self.out} {trainer} (it writes "
                f"{safe}, which load_params reads under book-run with the same --out where the network's "
                f"module is the book's own file)")

    def _replacements(self, module, name: str):
        guard, how = self, f"{module.__name__}.{name}"
        if name.endswith("Unpickler"):
            class RefusingUnpickler:
                """Stands in for an unpickler class while a book script runs: refuses when made."""

                def __init__(self, file, *args, **kwargs):
                    raise guard.refusal(_file_label(file), how)

                def load(self):  # a subclass whose __init__ skipped ours
                    raise guard.refusal("a pickle", how)

            return RefusingUnpickler
        if name.endswith("loads"):
            def refuse_loads(data, *args, **kwargs):
                raise guard.refusal(_bytes_label(data), how)

            return refuse_loads

        def refuse_load(file, *args, **kwargs):
            raise guard.refusal(_file_label(file), how)

        return refuse_load

    def __enter__(self):
        global _active, _hook_added
        for module, names in REPLACED.items():
            for name in names:
                self.originals.append((module, name, getattr(module, name)))
                setattr(module, name, self._replacements(module, name))
        if not _hook_added:
            sys.addaudithook(_audit)
            _hook_added = True
        self.previous, _active = _active, self
        return self

    def __exit__(self, *exc_info) -> bool:
        global _active
        _active = self.previous
        for module, name, original in reversed(self.originals):
            setattr(module, name, original)
        self.originals.clear()
        return False
