"""``handgrad book-run SCRIPT.py [ARGS...]``: run a script of the book's repository, unchanged, on
handgrad.

While the script runs:

* the modules of :data:`handgrad.book.PROVIDED_MODULES` (``common.*``, ``dataset.mnist``) are put
  in ``sys.modules`` under the book's names, so the script's ``from common.layers import *`` gets
  handgrad's and never reads the book's files;
* the chapter modules (``two_layer_net``, ``simple_convnet``, ``deep_convnet``) are decided when
  the script (or a module of its) imports them, by what the import would load, never by the
  folder's name: handgrad's stand-in where the file Python would import (the script's folder
  first, then the rest of ``sys.path``) is the book's own file, byte for byte at the commit that
  ../shared/book1/SOURCES.md names (line ends aside; :data:`handgrad.book.BOOK_FILE_SHA256`), or
  where there is no such file; the file itself where it is anything else. So a copy of ch08/ in a
  folder named anything gets handgrad's ``deep_convnet``, while ch04's own, different
  ``two_layer_net.py`` (or a reader's edited copy of a chapter file) stays what it is;
* nothing is unpickled: ``pickle.load``, ``pickle.loads``, ``pickle.Unpickler``, ``_pickle``'s and
  every unpickler behind them (``numpy.load(allow_pickle=True)`` of an object array included)
  refuse with one line naming the file and why, and, for the weight files the book ships as
  pickles, how to train their safetensors equivalent (:mod:`handgrad.book.no_pickle`); the run
  ends with status 1 and the file's payload never runs;
* the working directory is the script's folder and ``sys.path[0]`` is that folder, as
  ``python script.py`` run from there would have them (the scripts append ``os.pardir``);
* ``sys.argv`` is ``[script, *args]``;
* matplotlib draws with the Agg backend, and ``plt.show()`` saves every open figure as
  ``OUT/<script>-<n>.png`` (n counts from 1 over the run) and closes it;
* warnings print as one line each;
* ``dataset.mnist`` reads handgrad's verified MNIST from ``data_dir``, and networks'
  ``save_params``/``load_params`` use safetensors files in ``OUT``.

Afterwards everything is put back, whether the script ended, raised or was refused: the working
directory, ``sys.path``, ``sys.argv``, ``sys.modules`` (modules the run imported from the script's
folder or the folder above are forgotten, so a later run decides afresh), ``plt.show``,
``warnings.formatwarning`` and the pickle functions. (The audit hook that backs the refusal stays,
as audit hooks cannot be removed, and does nothing outside a run.)

A script that imports a module nobody provides, a missing parameter file and a refused
unpickling each get one line; the script's exit status is returned.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import io
import os
import runpy
import sys
import traceback
import warnings
from pathlib import Path

from . import BOOK_FILE_SHA256, CHAPTER_MODULES, PROVIDED_MODULES
from ..serialize import atomic_write_bytes
from .no_pickle import NoUnpickling, UnpicklingRefused, is_library_file


class BookRunError(ValueError):
    """A script that cannot be run (missing, not a file)."""


def is_books_file(name: str, path: Path) -> bool:
    """Whether ``path`` is the book's own file for the chapter module ``name``: its SHA-256, with
    CRLF line ends read as LF, is the book's (:data:`handgrad.book.BOOK_FILE_SHA256`)."""
    try:
        content = Path(path).read_bytes()
    except OSError:
        return False
    return hashlib.sha256(content.replace(b"\r\n", b"\n")).hexdigest() == BOOK_FILE_SHA256[name]


class _StandIn(importlib.abc.Loader):
    """Loads handgrad's module for a chapter module's name."""

    def __init__(self, module: str) -> None:
        self.module = module

    def create_module(self, spec):
        return None  # a throwaway module: exec_module puts handgrad's in its place

    def exec_module(self, module) -> None:
        # The import statement returns what sys.modules holds after exec_module and leaves that
        # module's attributes alone, so handgrad's module keeps its own __name__ and __spec__.
        sys.modules[module.__name__] = importlib.import_module(self.module)


class ChapterModules(importlib.abc.MetaPathFinder):
    """The finder that decides, at ``import deep_convnet`` (or ``two_layer_net``,
    ``simple_convnet``), between handgrad's stand-in and the file the import would load (the
    rule is in the module docstring)."""

    def find_spec(self, name, path=None, target=None):
        if path is not None or name not in CHAPTER_MODULES:
            return None
        found = importlib.machinery.PathFinder.find_spec(name)  # what `import name` finds on sys.path
        if found is not None and found.has_location and not is_books_file(name, Path(found.origin)):
            return None  # not the book's file: the usual finders import it
        return importlib.util.spec_from_loader(name, _StandIn(CHAPTER_MODULES[name][1]))


class _FigureSaver:
    """``plt.show()`` for a run without a screen: save each open figure as a numbered PNG."""

    def __init__(self, plt, out: Path, stem: str) -> None:
        self.plt, self.out, self.stem, self.saved = plt, out, stem, []
        self.original = plt.show

    def restore(self) -> None:
        """Put ``plt.show`` back, and pylab's where pylab copied this one."""
        self.plt.show = self.original
        pylab = sys.modules.get("matplotlib.pylab")
        if pylab is not None and getattr(pylab, "show", None) is self:
            pylab.show = self.original

    def __call__(self, *args, **kwargs) -> None:
        for number in self.plt.get_fignums():
            figure = self.plt.figure(number)
            self.out.mkdir(parents=True, exist_ok=True)
            path = self.out / f"{self.stem}-{len(self.saved) + 1}.png"
            picture = io.BytesIO()
            figure.savefig(picture, format="png")
            atomic_write_bytes(path, [picture.getvalue()])  # never over a FIFO, a device or a folder
            self.saved.append(path)
            print(f"handgrad book-run: saved {path}", file=sys.stderr)
        self.plt.close("all")


def _install_matplotlib(out: Path, stem: str):
    """Agg, and plt.show() saving PNGs; None when matplotlib is not installed (a script that
    imports it then gets the one-line message)."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    saver = _FigureSaver(plt, out, stem)
    plt.show = saver
    pylab = sys.modules.get("matplotlib.pylab")
    if pylab is not None and pylab.show is saver.original:  # pylab copied pyplot's show when imported
        pylab.show = saver
    return saver


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    """A warning as one line: a learner reading the script's output needs the message, not the
    line of handgrad's source that raised it."""
    return f"handgrad book-run: {category.__name__}: {message}\n"


def _missing_module_message(script: str, error: ModuleNotFoundError, provided: dict[str, str]) -> str:
    name = error.name or str(error)
    top = name.split(".")[0]
    if top in ("common", "dataset"):
        offered = ", ".join(sorted(n for n in provided if n.startswith(top + ".")))
        return f"{script} imports {name}, which handgrad does not provide (it provides {offered})"
    if top == "matplotlib" or top == "mpl_toolkits":
        return f"{script} imports {name}, which is not installed: pip install \"handgrad[plot]\""
    if top == "PIL":
        return f"{script} imports {name}, which is not installed: pip install \"handgrad[images]\""
    return f"{script} imports {name}, which handgrad does not provide and which is not installed"


def _forget_modules_from(folders: tuple[Path, ...], before: set[str]) -> None:
    """Drop the modules imported since ``before`` from files in ``folders`` (the script's own
    modules, such as ch04's two_layer_net), so a later run in this process imports its own."""
    for name in set(sys.modules) - before:
        filename = getattr(sys.modules[name], "__file__", None)
        if (filename and not is_library_file(filename)
                and any(folder in Path(filename).resolve().parents for folder in folders)):
            del sys.modules[name]


def _restore_modules(saved: dict) -> None:
    for name, module in saved.items():
        if module is None:
            sys.modules.pop(name, None)
        else:
            sys.modules[name] = module


def _restore_process(cwd: str, path: list, argv: list) -> None:
    os.chdir(cwd)
    sys.path[:] = path  # the same list: other modules hold on to sys.path
    sys.argv = argv  # the run replaced the list, so the original object is as it was


def _remove_finder(finder) -> None:
    if finder in sys.meta_path:  # the script may have taken it out itself
        sys.meta_path.remove(finder)


def _set_warning_format(formatter) -> None:
    warnings.formatwarning = formatter


def _install(undo: contextlib.ExitStack, script_path: Path, args, out: Path, data_root) -> None:
    """Set up the process for the script (the module docstring's list), registering on ``undo``
    how to put each thing back."""
    from .common import _network
    from .dataset import mnist

    undo.callback(_restore_process, os.getcwd(), list(sys.path), sys.argv)
    undo.callback(setattr, mnist, "DATA_DIR", mnist.DATA_DIR)
    undo.callback(setattr, _network, "PARAMS_DIR", _network.PARAMS_DIR)
    undo.callback(_restore_modules, {name: sys.modules.get(name) for name in [*PROVIDED_MODULES, *CHAPTER_MODULES]})
    for name in CHAPTER_MODULES:  # an earlier import must not decide for this script
        sys.modules.pop(name, None)
    for name, module in PROVIDED_MODULES.items():
        sys.modules[name] = importlib.import_module(module)
    undo.callback(_forget_modules_from, (script_path.parent, script_path.parent.parent), set(sys.modules))
    finder = ChapterModules()
    sys.meta_path.insert(0, finder)
    undo.callback(_remove_finder, finder)
    mnist.DATA_DIR, _network.PARAMS_DIR = data_root, out
    saver = _install_matplotlib(out, script_path.stem)
    if saver is not None:
        undo.callback(saver.restore)
    undo.callback(_set_warning_format, warnings.formatwarning)
    warnings.formatwarning = _one_line_warning
    undo.enter_context(NoUnpickling(script_path, out))
    os.chdir(script_path.parent)
    sys.path.insert(0, str(script_path.parent))
    sys.argv = [str(script_path), *args]


def run_script(script, args=(), out="book-run-out", data_dir=None) -> int:
    """Run the book's ``script`` with ``args`` as described in the module docstring; return its
    exit status. Writes one line to stderr for a missing module or parameter file and for a
    refused unpickling; everything the run changed in this process is put back before it returns."""
    from ..data import DataError
    from ..serialize import SerializationError
    from .common._network import ParamsNotFound

    script_path = Path(script)
    if script_path.is_dir():
        raise BookRunError(f"{script} is a folder, not a script (give a .py file in it)")
    if not script_path.is_file():
        raise BookRunError(f"{script}: no such script")
    if script_path.suffix != ".py":
        raise BookRunError(f"{script} is not a Python script (.py)")
    script_path = script_path.resolve()
    out = Path(out).resolve()
    try:  # before the script runs, not after its figures are drawn
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise BookRunError(f"--out {out}: cannot create the folder ({error.strerror or error})") from None
    environ_data = os.environ.get("HANDGRAD_DATA")
    data_root = Path(data_dir).resolve() if data_dir else (Path(environ_data).resolve() if environ_data else None)

    with contextlib.ExitStack() as undo:
        try:
            _install(undo, script_path, args, out, data_root)
            runpy.run_path(str(script_path), run_name="__main__")
            status = 0
        except SystemExit as stop:
            status = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
            if stop.code is not None and not isinstance(stop.code, int):
                print(stop.code, file=sys.stderr)
        except UnpicklingRefused as refusal:  # its text is the whole line
            print(refusal, file=sys.stderr)
            status = 1
        except ModuleNotFoundError as error:
            print(f"handgrad book-run: {_missing_module_message(script, error, PROVIDED_MODULES)}", file=sys.stderr)
            status = 1
        except (DataError, ParamsNotFound, SerializationError) as error:
            # handgrad's data loader or load_params, not the script: one line, as `train` says it
            print(f"handgrad book-run: error: {error}", file=sys.stderr)
            status = 1
        except KeyboardInterrupt:
            status = 130
        except Exception:  # noqa: BLE001  (the script's own error: its traceback, as python prints it)
            traceback.print_exc()
            status = 1
        finally:
            sys.stdout.flush()
    return status
