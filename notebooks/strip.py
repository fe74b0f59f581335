"""Store the notebooks without outputs, so that diffs show only what a person wrote and no stale
figure survives an edit:

    python notebooks/strip.py            # strip every notebook under notebooks/, in place
    python notebooks/strip.py --check    # change nothing; exit 1 naming each notebook not stripped
    python notebooks/strip.py FILE ...   # only these

Stripping clears every code cell's outputs and execution count, drops the cell metadata that
Jupyter and nbclient write while running (``execution`` timings, ``collapsed``, ``scrolled``,
``ExecuteTime``) and keeps the rest (``tags``: exercise, solution, check; ``jupyter``: a folded
solution). The notebook's metadata keeps ``kernelspec``, ``language_info``'s name and
``handgrad`` (the budget and datasets that tests/test_notebooks.py reads). The outputs come
back with one command, which the docs site runs to publish them:
``HANDGRAD_EXECUTE_NOTEBOOKS=true mkdocs build``, or open a notebook and run all cells.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
#: Cell metadata written by running a notebook, never by its author.
RUN_METADATA = ("execution", "collapsed", "scrolled", "ExecuteTime")
#: The notebook metadata kept; everything else (widget state, a kernel's version) is dropped.
KEPT_METADATA = ("kernelspec", "handgrad")


def notebooks() -> list[Path]:
    """Every notebook under notebooks/ (Jupyter's .ipynb_checkpoints copies left out)."""
    return sorted(path for path in HERE.rglob("*.ipynb") if ".ipynb_checkpoints" not in path.parts)


def stripped(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """``notebook`` without outputs or run metadata (changed in place, and returned)."""
    for cell in notebook.cells:
        for key in RUN_METADATA:
            cell.metadata.pop(key, None)
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    metadata = {key: notebook.metadata[key] for key in KEPT_METADATA if key in notebook.metadata}
    metadata["language_info"] = {"name": notebook.metadata.get("language_info", {}).get("name", "python")}
    notebook.metadata = nbformat.from_dict(metadata)
    return notebook


def as_stored(path: Path) -> str:
    """The text ``path`` should hold: its notebook stripped, written as nbformat writes it."""
    return nbformat.writes(stripped(nbformat.read(path, as_version=4))) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Strip the notebooks' outputs (see the module docstring).")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a notebook is not stripped")
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every notebook under notebooks/")
    args = parser.parse_args(argv)
    paths = args.notebooks or notebooks()
    unstripped = []
    for path in paths:
        text = as_stored(path)
        if path.read_text(encoding="utf-8") != text:
            unstripped.append(path)
            if not args.check:
                path.write_text(text, encoding="utf-8")
    for path in unstripped:
        print(f"{path}: {'has outputs or run metadata' if args.check else 'stripped'}")
    return 1 if args.check and unstripped else 0


if __name__ == "__main__":
    sys.exit(main())
