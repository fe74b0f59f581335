"""A new user's first hour, run from a clone as README's "Start here" and its synopsis lead them:
train, then look at the run with every command that takes a saved model. Everything the
commands write goes into the run folder, which git ignores, so the clone stays clean."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from handgrad.cli import build_parser, main

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")


@pytest.fixture
def clone(tmp_path, monkeypatch):
    """The current folder: a git repository with the project's .gitignore, standing for a clone."""
    folder = tmp_path / "clone"
    folder.mkdir()
    shutil.copy(ROOT / ".gitignore", folder / ".gitignore")
    subprocess.run(["git", "init", "-q", str(folder)], check=True)
    monkeypatch.chdir(folder)
    return folder


def git_status(folder) -> list[str]:
    """What ``git status`` would show a user: every path that is neither tracked nor ignored."""
    out = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=folder, capture_output=True,
                         text=True, check=True).stdout
    return [line[3:] for line in out.splitlines()]


def ignored(folder, path: str) -> bool:
    return subprocess.run(["git", "check-ignore", "-q", path], cwd=folder, check=False).returncode == 0


def test_the_first_hours_pictures_landed_in_the_clone(clone, capsys):
    """`handgrad plot MODEL` wrote confusion.png (and the rest) into the current folder, which
    in a clone is the repository: `git status` showed them. They go into the run folder."""
    assert main(["train", "--epochs", "2", "--hidden", "16"]) == 0
    model = "handgrad-run/model.safetensors"
    assert main(["evaluate", model]) == 0
    assert main(["trace", model, "--samples", "3"]) == 0
    pictures = []
    if _has_matplotlib():
        for what in ("confusion", "mistakes", "weights", "activations"):
            assert main(["plot", model, "--what", what]) == 0
        assert main(["plot", "handgrad-run", "--what", "curves"]) == 0
        pictures = ["activations.png", "confusion.png", "curves.png", "mistakes.png", "weights.png"]
    output = capsys.readouterr().out
    assert sorted(p.name for p in (clone / "handgrad-run").glob("*.png")) == pictures
    for picture in pictures:
        assert f"wrote {Path('handgrad-run') / picture}" in output
    assert git_status(clone) == [".gitignore"]


def test_every_default_output_folder_of_the_command_line_is_ignored(clone):
    """train's handgrad-run/ and book-run's book-run-out/, found from the parser, so that a new
    command with a default --out folder is checked too."""
    commands = next(a for a in build_parser()._actions if a.dest == "command").choices
    defaults = {name: action.default for name, parser in commands.items() for action in parser._actions
                if action.dest == "out" and isinstance(action.default, str)}
    assert defaults == {"train": "handgrad-run", "book-run": "book-run-out"}
    for name, folder in defaults.items():
        assert ignored(clone, f"{folder}/model.safetensors"), f"{name}'s default --out {folder}/ is not in .gitignore"


def test_what_the_commands_of_readme_and_the_docs_write_is_ignored(clone):
    """Each literal --out FOLDER or --onnx FILE of README's and the guide's commands (run from a
    clone's root, as they are written)."""
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    named = {m.group(2) for page in pages for m in re.finditer(r"--(out|onnx) ([a-z][\w.-]*)", page.read_text())}
    assert named, "no --out or --onnx in README or docs: this test checks nothing"
    for path in sorted(named):
        inside = f"{path}/model.safetensors" if "." not in path else path
        assert ignored(clone, inside), f"{path} (written by a command of README or docs/) is not in .gitignore"


def _has_matplotlib() -> bool:
    import importlib.util

    return importlib.util.find_spec("matplotlib") is not None
