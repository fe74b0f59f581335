"""``handgrad book-run SCRIPT.py [ARGS...]``: run a script of the book's repository, unchanged, on
handgrad.

Before the script starts:

* the modules of :data:`handgrad.book.PROVIDED_MODULES` (``common.*``, ``dataset.mnist``) and the
  chapter modules the script's folder is for (``two_layer_net`` in ch05, ``simple_convnet`` in
  ch07, ``deep_convnet`` in ch08) are put in ``sys.modules`` under the book's names, so the
  script's ``from common.layers import *`` gets handgrad's and never reads the book's files;
* the working directory is the script's folder and ``sys.path[0]`` is that folder, as
  ``python script.py`` run from there would have them (the scripts append ``os.pardir``);
* ``sys.argv`` is ``[script, *args]``;
* matplotlib draws with the Agg backend, and ``plt.show()`` saves every open figure as
  ``OUT/<script>-<n>.png`` (n counts from 1 over the run) and closes it;
* ``dataset.mnist`` reads handgrad's verified MNIST from ``data_dir``, and networks'
  ``save_params``/``load_params`` use safetensors files in ``OUT``.

A script that imports a module nobody provides gets one line naming it; the script's exit status
is returned.
"""

from __future__ import annotations

import importlib
import os
import runpy
import sys
import traceback
import warnings
from pathlib import Path

from . import CHAPTER_MODULES, PROVIDED_MODULES


class BookRunError(ValueError):
    """A script that cannot be run (missing, not a file)."""


def stand_ins(script_dir: Path) -> dict[str, str]:
    """The book's module names -> handgrad's modules for a script in ``script_dir``. A chapter
    module is provided in its own chapter's folder, or where no file of that name sits next to
    the script (ch04's different two_layer_net.py stays the book's)."""
    modules = dict(PROVIDED_MODULES)
    for name, (chapter, module) in CHAPTER_MODULES.items():
        if script_dir.name == chapter or not (script_dir / f"{name}.py").exists():
            modules[name] = module
    return modules


class _FigureSaver:
    """``plt.show()`` for a run without a screen: save each open figure as a numbered PNG."""

    def __init__(self, plt, out: Path, stem: str) -> None:
        self.plt, self.out, self.stem, self.saved = plt, out, stem, []
        self.original = plt.show

    def restore(self) -> None:
        self.plt.show = self.original

    def __call__(self, *args, **kwargs) -> None:
        for number in self.plt.get_fignums():
            figure = self.plt.figure(number)
            self.out.mkdir(parents=True, exist_ok=True)
            path = self.out / f"{self.stem}-{len(self.saved) + 1}.png"
            temporary = path.with_name(f".{path.name}.tmp")
            figure.savefig(temporary, format="png")
            os.replace(temporary, path)
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
    if "matplotlib.pylab" in sys.modules:  # pylab copied pyplot's show when it was imported
        sys.modules["matplotlib.pylab"].show = saver
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


def run_script(script, args=(), out="book-run-out", data_dir=None) -> int:
    """Run the book's ``script`` with ``args`` as described in the module docstring; return its
    exit status. Writes a one-line message to stderr for a missing module."""
    from .common import _network
    from .dataset import mnist

    from ..data import DataError

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

    provided = stand_ins(script_path.parent)
    saved_state = (os.getcwd(), list(sys.path), list(sys.argv), mnist.DATA_DIR, _network.PARAMS_DIR)
    replaced = {name: sys.modules.get(name) for name in provided}
    for name, module in provided.items():
        sys.modules[name] = importlib.import_module(module)
    mnist.DATA_DIR, _network.PARAMS_DIR = data_root, out
    show = _install_matplotlib(out, script_path.stem)
    format_warning = warnings.formatwarning
    warnings.formatwarning = _one_line_warning
    os.chdir(script_path.parent)
    sys.path.insert(0, str(script_path.parent))
    sys.argv = [str(script_path), *args]
    try:
        runpy.run_path(str(script_path), run_name="__main__")
        status = 0
    except SystemExit as stop:
        status = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
        if stop.code is not None and not isinstance(stop.code, int):
            print(stop.code, file=sys.stderr)
    except ModuleNotFoundError as error:
        print(f"handgrad book-run: {_missing_module_message(script, error, provided)}", file=sys.stderr)
        status = 1
    except DataError as error:  # handgrad's data loader, not the script: one line, as `train` says it
        print(f"handgrad book-run: error: {error}", file=sys.stderr)
        status = 1
    except KeyboardInterrupt:
        status = 130
    except Exception:  # the script's own error: its traceback, as python would print it
        traceback.print_exc()
        status = 1
    finally:
        sys.stdout.flush()
        cwd, path, argv, mnist.DATA_DIR, _network.PARAMS_DIR = saved_state
        os.chdir(cwd)
        sys.path[:], sys.argv[:] = path, argv
        for name, module in replaced.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
    return status
