"""MkDocs hook: the notebooks of ``notebooks/`` become pages of the site.

They live outside ``docs/``, where learners open them (``jupyter lab notebooks/``); this hook adds
each one to the site's files before the mkdocs-jupyter plugin looks for notebooks to render, so
``mkdocs.yml``'s nav names them as ``notebooks/01_tutorial.ipynb`` and so on and the pages come
out at ``notebooks/01_tutorial/``. What the plugin does with them (run them or not, which cells
to leave out) is in ``mkdocs.yml``.
"""

from __future__ import annotations

from pathlib import Path

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"


@event_priority(100)  # before mkdocs-jupyter's on_files (priority 0), which turns notebooks into pages
def on_files(files, config):
    for path in sorted(NOTEBOOKS.rglob("*.ipynb")):
        if ".ipynb_checkpoints" not in path.parts:
            files.append(File(path.relative_to(ROOT).as_posix(), str(ROOT), config["site_dir"],
                              config["use_directory_urls"]))
    return files
