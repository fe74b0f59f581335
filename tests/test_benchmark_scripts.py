"""Every benchmark script answers --help cleanly: they are run by hand, so their help is how a
reader learns what a README figure was made with. (speed.py's help for --skip-mnist held an
unescaped '%', and argparse printed its own internal dict in place of the help.)"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
SCRIPTS = sorted(path.name for path in BENCHMARKS.glob("*.py") if path.name != "machine.py")


def test_the_benchmark_folder_is_found():
    assert "speed.py" in SCRIPTS and "convnet_speed.py" in SCRIPTS


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_is_printed_cleanly(script):
    proc = subprocess.run([sys.executable, str(BENCHMARKS / script), "--help"], capture_output=True, text=True,
                          timeout=120, cwd=BENCHMARKS.parent)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage:"), proc.stdout[:200]
    assert "'dest':" not in proc.stdout and "%(" not in proc.stdout, proc.stdout


@pytest.mark.parametrize("args, message", [
    (["--repeats", "0"], "--batches and --repeats must be at least 1"),
    (["--time-to", "1.5"], "--time-to is a test accuracy in (0, 1]"),
    (["--gemm-floor", "--models", "simple"], "keep 'deep' in --models"),
    (["--torch-profile", "--data-dir", "nowhere"], "not found in nowhere/mnist"),
    (["--time-to", "0.99", "--data-dir", "file.txt"], "is a file, not a folder"),
])
def test_convnet_speed_refuses_bad_options_in_one_line_before_timing_anything(tmp_path, args, message):
    (tmp_path / "file.txt").write_text("not a data root")
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    env.pop("HANDGRAD_DATA", None)
    proc = subprocess.run([sys.executable, str(BENCHMARKS / "convnet_speed.py"), *args, "--json",
                           str(tmp_path / "out.json")], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                          env=env)
    assert proc.returncode != 0
    assert message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("convnet_speed.py: error:"), proc.stderr
    assert not (tmp_path / "out.json").exists() and proc.stdout == ""


@pytest.mark.parametrize("args, message", [
    (["--repeats", "0"], "--repeats and --block-times must be at least 1"),
    (["--block-times", "0"], "--repeats and --block-times must be at least 1"),
    (["--data-dir", "nowhere"], "not found in nowhere/mnist"),
    (["--models", "resnet"], "invalid choice: 'resnet'"),
])
def test_distributed_refuses_bad_options_in_one_line_before_timing_anything(tmp_path, args, message):
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    env.pop("HANDGRAD_DATA", None)
    proc = subprocess.run([sys.executable, str(BENCHMARKS / "distributed.py"), *args, "--json",
                           str(tmp_path / "out.json")], capture_output=True, text=True, timeout=120, env=env,
                          cwd=tmp_path)
    assert proc.returncode != 0 and message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "out.json").exists()


def test_results_that_cannot_take_their_name_are_kept_and_said_in_one_line(tmp_path):
    """A --json naming a folder used to end a long run with a traceback: now one line names the
    temporary file that holds the results."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import machine
    finally:
        sys.path.remove(str(BENCHMARKS))
    (tmp_path / "out.json").mkdir()
    with pytest.raises(SystemExit) as stop:
        machine.write_results(tmp_path / "out.json", {"rows": [1, 2]})
    message = str(stop.value)
    assert message.startswith(f"could not write {tmp_path / 'out.json'} (") and "the results are in" in message
    kept = message.rsplit(" ", 1)[-1]
    import json

    assert json.loads(Path(kept).read_text())["rows"] == [1, 2]
