"""The documentation: the docstrings' examples run (doctest); the site builds in strict mode (a
broken reference or link fails) with every public name, command, picture and results file; and
README stays the front door it promises to be: short, every command of the parser in its synopsis
and only real flags, every figure of its results table in the results file it names."""

from __future__ import annotations

import doctest
import importlib
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: Modules whose docstrings carry examples. Listed, not collected with --doctest-modules, so that
#: modules of optional extras (matplotlib, onnx, scikit-learn) are never imported without them.
DOCTEST_MODULES = ["handgrad.functions", "handgrad.gradcheck", "handgrad.init", "handgrad.model.sequential",
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
                   "onnx_export", "interop", "inspect", "registry", "serve", "book.run", "distributed", "sklearn", "threads"):
        mod = importlib.import_module(f"handgrad.{module}")
        names += [f"handgrad.{module}.{n}" for n in getattr(mod, "__all__", []) if callable(getattr(mod, n))]
    return names


def _load_hooks():
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "docs" / "hooks.py")
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    return hooks


def _commands() -> dict:
    """The parser's commands: ``{name: the command's subparser}``."""
    from handgrad.cli import build_parser

    return next(a for a in build_parser()._actions if a.dest == "command").choices


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The site, built once with ``mkdocs build --strict``: ``{relative path: html}``."""
    if importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec("mkdocstrings_handlers") is None:
        pytest.skip('mkdocs and mkdocstrings are not installed (pip install -e ".[docs]")')
    folder = tmp_path_factory.mktemp("site")
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(folder)],
                            check=False, cwd=ROOT, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert result.returncode == 0, f"mkdocs build --strict failed:\n{result.stdout}\n{result.stderr}"
    return {path.relative_to(folder).as_posix(): path.read_text(encoding="utf-8") for path in folder.rglob("*.html")}


def test_docs_build_strictly_with_every_public_name_and_picture(site):
    anchors = {anchor for text in site.values() for anchor in re.findall(r'id="(handgrad[\w.]*)"', text)}
    missing = [name for name in _public_names() if name not in anchors]
    assert not missing, f"public names missing from the API reference (add them to a page in docs/reference): {missing}"
    everything = "\n".join(site.values())
    for picture in (ROOT / "docs" / "img").glob("*.png"):
        assert f"img/{picture.name}" in everything, f"docs/img/{picture.name} is on no page (show it, or delete it)"
    cli = site["cli/index.html"]
    for command in _commands():
        assert f"handgrad {command}" in cli, f"the command {command} is missing from the CLI page"
    assert "--onnx FILE" in cli


def test_every_results_file_is_a_table_on_the_benchmarks_page_with_its_commit(site):
    page = site["benchmarks/index.html"]
    for path in sorted((ROOT / "benchmarks" / "results").glob("*.json")):
        assert f"benchmarks/results/{path.name}" in page, f"{path.name} is not on the benchmarks page"
        commit = json.loads(path.read_text())["machine"]["commit"][:7]
        assert commit in page, f"{path.name}'s commit {commit} is not named on the benchmarks page"
    assert "{{" not in "\n".join(site.values()), "a figure placeholder was left unfilled"


def test_the_design_page_has_the_anchors_code_cites(site):
    page = site["design/index.html"]
    for anchor in ("layer-contract", "model-protocol", "file-format", "adding-a-layer"):
        assert f'id="{anchor}"' in page, f"docs/design.md lost its #{anchor} section, which code comments cite"


#: A Sphinx role Markdown printed as it stands (":class:" before a code span): issue 24, item 5.
RAW_SPHINX_ROLE = re.compile(r":(?:py:)?(?:class|meth|func|mod|data|attr|exc|obj|const|type):\s*(?:<code>|`)")


def _links_to(page: str, title: str, anchor: str) -> bool:
    """Whether ``page`` has a link to ``#anchor`` (on any page) around the code span ``title``."""
    return re.search(rf'<a [^>]*href="[^"#]*#{re.escape(anchor)}"[^>]*>\s*<code>{re.escape(title)}</code>',
                     page) is not None


def test_docstrings_sphinx_roles_are_links_or_code_never_raw_text_on_the_site(site):
    raw = {path: RAW_SPHINX_ROLE.findall(html) for path, html in site.items()}
    raw = {path: len(found) for path, found in raw.items() if found}
    assert not raw, f"pages print Sphinx roles raw (docs/hooks.py's SphinxRoles should rewrite them): {raw}"
    # A full path, a relative dotted name and a bare relative name, each linked across pages:
    assert _links_to(site["reference/registry/index.html"], "handgrad.optim.OPTIMIZERS", "handgrad.optim.OPTIMIZERS")
    assert _links_to(site["reference/layers/index.html"], "handgrad.functions.sigmoid", "handgrad.functions.sigmoid")
    serialize = site["reference/serialize/index.html"]
    assert (_links_to(serialize, "Sequential.spec", "handgrad.Sequential.spec")
            or _links_to(serialize, "Sequential.spec", "handgrad.model.Sequential.spec"))
    assert _links_to(site["reference/handgrad/index.html"], "SerializationError",
                     "handgrad.serialize.SerializationError")
    # LAYER_TYPES: a link where a page documents it, else plain code, never the role.
    anchors = {anchor for html in site.values() for anchor in re.findall(r'id="(handgrad[\w.]*)"', html)}
    layers = site["reference/layers/index.html"]
    if "handgrad.layers.LAYER_TYPES" in anchors:
        assert _links_to(layers, "LAYER_TYPES", "handgrad.layers.LAYER_TYPES")
    else:
        assert "<code>LAYER_TYPES</code>" in layers


def test_sphinx_roles_become_optional_autorefs_and_code_samples_keep_theirs():
    hooks = _load_hooks()
    known = {"handgrad.fit": "handgrad.train.fit", "Layer": "handgrad.layers.base.Layer",
             "handgrad.layers.Layer": "handgrad.layers.base.Layer"}
    docstring = "\n".join([
        "See :func:`handgrad.fit` and :py:class:`~handgrad.layers.Layer`, :meth:`the spec <Layer>`,",
        ":func:`fit()`, :data:`!handgrad.fit` and :exc:`NoSuchError`.",
        ">>> ':class:`Layer`'",
        "```python",
        "x = ':class:`Layer`'",
        "```",
    ])
    rewritten = hooks.rewrite_roles(docstring, known.get).split("\n")
    assert rewritten[0] == ('See <autoref identifier="handgrad.train.fit" optional>`handgrad.fit`</autoref> and '
                            '<autoref identifier="handgrad.layers.base.Layer" optional>`Layer`</autoref>, '
                            '<autoref identifier="handgrad.layers.base.Layer" optional>`the spec`</autoref>,')
    assert rewritten[1] == "`fit()`, `handgrad.fit` and `NoSuchError`."  # unresolved, not linked, unknown
    assert rewritten[2:] == docstring.split("\n")[2:], "a doctest line or fenced block was rewritten"


def test_sphinx_role_targets_resolve_relative_to_the_documented_object(tmp_path):
    griffe = pytest.importorskip("griffe")
    package = tmp_path / "rolepkg"
    package.mkdir()
    (package / "__init__.py").write_text('"""Start at :func:`build` or :class:`rolepkg.shapes.Square`."""\n'
                                         "from rolepkg.shapes import build\n")
    (package / "shapes.py").write_text(
        '"""Shapes: :class:`Square`, :meth:`Square.area`, :func:`helper` and :class:`Missing`."""\n'
        "class Shape:\n"
        '    """Base."""\n'
        "    def area(self):\n"
        '        """Area."""\n'
        "class Square(Shape):\n"
        '    """Inherits :meth:`area`, built by :func:`build`."""\n'
        "    def side(self):\n"
        '        """Half of :meth:`area`\'s root, see :class:`Square`."""\n'
        "def build():\n"
        '    """A :class:`Square`; :func:`helper` exists twice, so stays code."""\n')
    (package / "one.py").write_text("def helper():\n    pass\n")
    (package / "two.py").write_text("def helper():\n    pass\n")
    hooks = _load_hooks()
    loaded = griffe.load("rolepkg", search_paths=[tmp_path], extensions=griffe.load_extensions(hooks.SphinxRoles()))

    def ref(path):
        return f'<autoref identifier="{path}" optional>'

    assert loaded.docstring.value == (f"Start at {ref('rolepkg.shapes.build')}`build`</autoref> or "
                                      f"{ref('rolepkg.shapes.Square')}`rolepkg.shapes.Square`</autoref>.")
    shapes = loaded["shapes"]
    assert shapes.docstring.value == (f"Shapes: {ref('rolepkg.shapes.Square')}`Square`</autoref>, "
                                      f"{ref('rolepkg.shapes.Shape.area')}`Square.area`</autoref>, "
                                      "`helper` and `Missing`.")
    assert shapes["Square"].docstring.value == (f"Inherits {ref('rolepkg.shapes.Shape.area')}`area`</autoref>, "
                                                f"built by {ref('rolepkg.shapes.build')}`build`</autoref>.")
    assert shapes["Square.side"].docstring.value == (f"Half of {ref('rolepkg.shapes.Shape.area')}`area`</autoref>'s "
                                                     f"root, see {ref('rolepkg.shapes.Square')}`Square`</autoref>.")


def test_a_figure_naming_a_missing_key_stops_the_build_instead_of_printing_nothing():
    hooks = _load_hooks()
    assert hooks.render("{{ gpt.json | tokens_per_second/handgrad | ,.0f }} tokens/s").endswith(" tokens/s")
    with pytest.raises(ValueError, match="gpt.json has no 'tokens_per_second/numpy'"):
        hooks.render("{{ gpt.json | tokens_per_second/numpy | ,.0f }}")
    with pytest.raises(ValueError, match="no_such_run.json does not exist"):
        hooks.render("<!-- BENCHMARK no_such_run.json -->")


# --- README: the front door ------------------------------------------------------------------------


def _readme() -> str:
    return (ROOT / "README.md").read_text(encoding="utf-8")


def _section(text: str, heading: str) -> str:
    """The text under ``## heading``, up to the next ``## ``."""
    return text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]


def test_readme_is_at_most_300_lines():
    lines = _readme().count("\n")
    assert lines <= 300, f"README.md has {lines} lines; the front door stays at most 300 (move detail to docs/)"


def _numbers_in(value) -> list[float]:
    """Every number in a results file: numeric values, and numbers inside strings ("test acc:0.9884")."""
    if isinstance(value, dict):
        return [n for item in value.values() for n in _numbers_in(item)]
    if isinstance(value, list):
        return [n for item in value for n in _numbers_in(item)]
    if isinstance(value, bool) or value is None:
        return []
    if isinstance(value, (int, float)):
        return [float(value)]
    return [float(n) for n in re.findall(r"-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?", str(value))]


def test_every_figure_in_readmes_results_table_is_in_the_results_file_it_names():
    rows = [line for line in _section(_readme(), "Results").splitlines() if line.startswith("|")][2:]
    assert len(rows) >= 5, "README's Results section lost its table"
    for row in rows:
        result, ours, theirs, files = (cell.strip() for cell in row.strip().strip("|").split("|"))
        names = re.findall(r"\(benchmarks/results/([\w.-]+\.json)\)", files)
        assert names, f"README's result {result!r} names no file of benchmarks/results"
        numbers = [n for name in names
                   for n in _numbers_in(json.loads((ROOT / "benchmarks" / "results" / name).read_text()))]
        figures = re.findall(r"\d[\d,]*(?:\.\d+)?", f"{ours} {theirs}")
        assert figures, f"README's result {result!r} shows no figure"
        for figure in figures:
            decimals = len(figure.partition(".")[2])
            value = float(figure.replace(",", ""))
            assert any(abs(n - value) <= 0.5 * 10 ** -decimals + 1e-12 for n in numbers), (
                f"README's {figure} ({result!r}) is in none of {names}: quote the results file, do not type figures")


def test_readme_synopsis_names_every_command_and_only_flags_the_parser_takes():
    synopsis = _section(_readme(), "The command line").split("```")[1]
    commands = _commands()
    for command in commands:
        assert f"handgrad {command} " in synopsis, f"README's synopsis lacks `handgrad {command}`"
    current = None
    for line in synopsis.splitlines():
        named = re.search(r"handgrad ([\w-]+)", line)
        if named:
            current = named.group(1)
        elif line.strip() and not line.startswith(" "):
            current = None
        assert current is None or current in commands, f"README's synopsis names an unknown command: {line!r}"
        for flag in re.findall(r"(?<![\w-])--[\w-]+", line):
            assert current is not None, f"README's synopsis has {flag} outside any command: {line!r}"
            assert flag in commands[current]._option_string_actions, (
                f"README's synopsis gives `handgrad {current} {flag}`, which the parser does not take "
                "(the synopsis is stable: keep the old spelling working)")


def test_readme_links_point_to_files_that_exist():
    for target in re.findall(r"\]\(([^)\s]+)\)", _readme()):
        if re.match(r"^(https?:|mailto:|#)", target):
            continue
        path = target.split("#", 1)[0]
        assert (ROOT / path).exists(), f"README links to {target}, which does not exist"


def test_the_gpt_pages_backward_table_names_functions_that_exist_in_the_files_named():
    rows = [line for line in (ROOT / "docs" / "gpt.md").read_text(encoding="utf-8").splitlines()
            if re.match(r"^\| \d+\w? \|", line)]
    assert len(rows) >= 10, "docs/gpt.md lost its table of the backward, op by op"
    for row in rows:
        cells = row.strip().strip("|").split("|")
        function = re.fullmatch(r"\s*`(\w+)\.(\w+)`\s*", cells[2])
        source = re.fullmatch(r"\s*`(src/handgrad/[\w/]+\.py)`\s*", cells[3])
        assert function and source, f"a row of docs/gpt.md's backward table names no function or file: {row}"
        cls, method = function.groups()
        text = (ROOT / source.group(1)).read_text(encoding="utf-8")
        start = re.search(rf"^class {cls}\b", text, flags=re.MULTILINE)
        assert start, f"docs/gpt.md: {source.group(1)} has no class {cls}"
        body = text[start.end():]
        end = re.search(r"^class ", body, flags=re.MULTILINE)
        body = body[:end.start()] if end else body
        assert re.search(rf"^    def {method}\(", body, flags=re.MULTILINE), (
            f"docs/gpt.md: {cls} in {source.group(1)} has no method {method} (update the table)")
