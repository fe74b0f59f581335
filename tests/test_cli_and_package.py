"""The package surface and the command line."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

import handgrad as hg
from handgrad.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_import_handgrad_is_enough():
    assert callable(hg.functions.softmax)
    assert callable(hg.functions.cross_entropy) and callable(hg.functions.cross_entropy_error)
    assert callable(hg.gradcheck.numerical_gradient) and callable(hg.gradcheck.gradient_check)
    for name in ["Affine", "Relu", "Sigmoid", "Tanh", "SoftmaxWithLoss", "Dropout", "BatchNorm", "Convolution",
                 "Pooling", "AvgPooling", "Flatten"]:
        assert hasattr(hg.layers, name)
    for name in ["Sequential", "mlp", "fit", "save", "load"]:
        assert callable(getattr(hg, name))
    for module in ["optim", "data", "init", "inspect", "plot"]:
        assert hasattr(hg, module)
    assert re.fullmatch(r"\d+\.\d+\.\d+", hg.__version__)


def test_no_command_prints_usage_and_fails(capsys):
    assert main([]) == 2
    assert "usage: handgrad" in capsys.readouterr().err


def test_unknown_command_is_a_one_line_error():
    proc = subprocess.run([sys.executable, "-m", "handgrad", "fly"], capture_output=True, text=True, check=False)
    assert proc.returncode == 2
    assert "invalid choice: 'fly'" in proc.stderr and "Traceback" not in proc.stderr


def test_version_flag(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"handgrad {hg.__version__}"


def test_ci_runs_exactly_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    blocks = re.findall(r"```(?:bash|sh)\n(.*?)```", readme, flags=re.DOTALL)
    test_commands = [line for block in blocks for line in block.splitlines() if "pytest" in line]
    assert len(test_commands) == 1, test_commands
    assert test_commands[0].strip() in ci.splitlines()


def test_the_data_modules_dataset_names_keep_their_older_name():
    """`data.DATASETS` (names) and `registry.DATASETS` (entries) shared a name; the names are
    `data.DATASET_NAMES` now, and the older spelling still works."""
    assert hg.data.DATASETS is hg.data.DATASET_NAMES
    from handgrad import registry

    assert set(registry.DATASETS) <= set(hg.data.DATASET_NAMES)


def test_the_command_line_is_a_package_with_its_old_names_importable():
    from handgrad import cli

    for name in ("main", "build_parser", "CommandError", "_GuardedOutput", "_OutputLock", "_claim_output_folder",
                 "_mpi_world"):
        assert hasattr(cli, name), name
    assert [command.name for command in cli.COMMANDS] == list(
        next(a for a in cli.build_parser()._actions if a.dest == "command").choices)
