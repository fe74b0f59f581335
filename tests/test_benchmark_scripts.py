"""Every benchmark script answers --help cleanly: they are run by hand, so their help is how a
reader learns what a README figure was made with. (speed.py's help for --skip-mnist held an
unescaped '%', and argparse printed its own internal dict in place of the help.)"""

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
