"""The documentation: the docstrings' examples run (doctest), and the API reference site builds
in strict mode (a broken reference or link fails), listing every public name and picture."""

from __future__ import annotations

import doctest
import importlib
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: Modules whose docstrings carry examples. Listed, not collected with --doctest-modules, so that
#: modules of optional extras (matplotlib, onnx, scikit-learn) are never imported without them.
DOCTEST_MODULES = ["handgrad.functions", "handgrad.gradcheck", "handgrad.init", "handgrad.model",
                   "handgrad.serialize", "handgrad.data", "handgrad.sklearn"]


@pytest.mark.parametrize("name", DOCTEST_MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    finder, runner = doctest.DocTestFinder(), doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    tests = [t for t in finder.find(module, name) if t.examples]
    for test in tests:
        runner.run(test)
    results = runner.summarize(verbose=False)
    assert results.attempted > 0, f"{name} has no docstring examples"
    assert results.failed == 0, f"{results.failed} docstring examples of {name} failed (see the output above)"


def _public_names() -> list[str]:
    """Every public name the reference must show: ``handgrad.X`` for the top level's functions
    and classes, and ``handgrad.<module>.X`` for the ``__all__`` of each documented module."""
    import handgrad

    names = []
    for name in handgrad.__all__:
        value = getattr(handgrad, name)
        if callable(value):
            names.append(f"handgrad.{name}")
    for module in ("functions", "layers", "model", "optim", "init", "gradcheck", "train", "data", "serialize",
                   "onnx_export", "interop", "inspect", "registry", "serve", "book.run", "distributed", "sklearn"):
        mod = importlib.import_module(f"handgrad.{module}")
        names += [f"handgrad.{module}.{n}" for n in getattr(mod, "__all__", []) if callable(getattr(mod, n))]
    return names


def test_docs_build_strictly_with_every_public_name_and_picture(tmp_path):
    if importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("mkdocstrings_handlers") is None:
        pytest.skip('mkdocs and mkdocstrings are not installed (pip install -e ".[docs]")')
    site = tmp_path / "site"
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
                            cwd=ROOT, capture_output=True, text=True, timeout=300,
                            env={**__import__("os").environ, "NO_MKDOCS_2_WARNING": "1"})
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stdout}\n{result.stderr}"
    pages = {path: path.read_text(encoding="utf-8") for path in site.rglob("*.html")}
    anchors = {anchor for text in pages.values() for anchor in re.findall(r'id="(handgrad[\w.]*)"', text)}
    missing = [name for name in _public_names() if name not in anchors]
    assert not missing, f"public names missing from the API reference (add them to a page in docs/reference): {missing}"
    everything = "\n".join(pages.values())
    for picture in (ROOT / "docs" / "img").glob("*.png"):
        assert (site / "img" / picture.name).is_file()
        assert f"img/{picture.name}" in everything, f"docs/img/{picture.name} is on no page (show it in README)"
    cli = (site / "cli" / "index.html").read_text(encoding="utf-8")
    from handgrad.cli import build_parser

    commands = next(a for a in build_parser()._actions if a.dest == "command").choices
    for command in commands:
        assert f"handgrad {command}" in cli, f"the command {command} is missing from the CLI page"
    assert "--onnx FILE" in cli
