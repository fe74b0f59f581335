"""`handgrad book-run` runs the book's real scripts from ../shared/book1, unchanged, on handgrad.

Each script runs in a fresh Python process, with NumPy's global generator seeded first (the
book's scripts draw their weights from it and set no seed), so every run is repeatable.
"""

import subprocess
import sys
from pathlib import Path

import pytest

from conftest import SHARED_DATA

BOOK = Path(__file__).resolve().parents[2] / "shared" / "book1"
MNIST = SHARED_DATA / "mnist" / "train-images-idx3-ubyte.gz"

needs_book = pytest.mark.skipif(not (BOOK / "common").is_dir(), reason="the book's repository is not in ../shared/book1")
needs_mnist = pytest.mark.skipif(not MNIST.is_file(), reason="MNIST is not in the shared data")

#: What the book's own code prints for ch05/gradient_check.py (the issue's figures).
BOOK_CH05 = {"W1": 4.8e-10, "b1": 2.7e-9, "W2": 6.5e-9, "b2": 1.4e-7}


def book_run(script, tmp_path, *args, seed=0, out=None):
    """``handgrad book-run`` on ``script`` in a new process: (exit status, stdout, stderr)."""
    code = ("import sys, numpy as np; np.random.seed(int(sys.argv[1])); from handgrad.cli import main; "
            "sys.exit(main(sys.argv[2:]))")
    command = [sys.executable, "-c", code, str(seed), "book-run", "--out", str(out or tmp_path / "out"),
               "--data-dir", str(SHARED_DATA), str(script), *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    return done.returncode, done.stdout, done.stderr


def printed_figures(script, tmp_path, separator):
    """Run ``script`` (it must succeed) and read ``{"W1": 2.5e-12, ...}`` from its
    ``key<separator>value`` lines; also returns its stderr."""
    status, stdout, stderr = book_run(script, tmp_path)
    assert status == 0, stderr
    figures = {}
    for line in stdout.splitlines():
        key, _, value = line.partition(separator)
        figures[key.strip()] = float(value)
    return figures, stderr


@needs_book
@needs_mnist
def test_ch05_gradient_check_agrees_at_least_as_closely_as_the_books_own_code(tmp_path):
    figures, _ = printed_figures(BOOK / "ch05" / "gradient_check.py", tmp_path, ":")
    assert list(figures) == ["W1", "b1", "W2", "b2"]
    for key, books in BOOK_CH05.items():
        assert figures[key] <= books, (key, figures[key], books)


@needs_book
@needs_mnist
def test_ch06_batch_norm_gradient_check_explains_beta2(tmp_path):
    figures, err = printed_figures(BOOK / "ch06" / "batch_norm_gradient_check.py", tmp_path, ":")
    assert list(figures) == ["W1", "b1", "gamma1", "beta1", "W2", "b2", "gamma2", "beta2", "W3", "b3"]
    # A batch of one: every BatchNorm outputs beta (0), so all but beta2 and b3 have no gradient at all.
    for key, value in figures.items():
        if key != "beta2":
            assert value < 1e-9, (key, value)
    # beta2 sits on the ReLU's kink: backprop says 0, central differences half the slope.
    assert 1e-3 < figures["beta2"] < 1.0
    assert "batch of one sample" in err and "kink" in err


@needs_book
def test_ch07_gradient_check(tmp_path):
    figures, _ = printed_figures(BOOK / "ch07" / "gradient_check.py", tmp_path, " ")
    assert list(figures) == ["W1", "b1", "W2", "b2", "W3", "b3"]
    # The book's own code prints 5e-11 to 1e-4 here (its ReLU and max-pooling kinks under a 1e-4 step).
    assert max(figures.values()) < 1e-9, figures


@needs_book
def test_ch06_weight_init_histogram_writes_its_png(tmp_path):
    status, out, err = book_run(BOOK / "ch06" / "weight_init_activation_histogram.py", tmp_path)
    assert status == 0, err
    png = tmp_path / "out" / "weight_init_activation_histogram-1.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"saved {png}" in err
    assert not list(BOOK.rglob("*.png")), "nothing may be written into the book's checkout"


def test_a_module_nobody_provides_gets_one_line(tmp_path):
    script = tmp_path / "ch09" / "uses_more.py"
    script.parent.mkdir()
    script.write_text("from common.time_layers import TimeRNN\n")
    status, out, err = book_run(script, tmp_path)
    assert status == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1
    assert "imports common.time_layers, which handgrad does not provide" in lines[0]
    assert "common.layers" in lines[0]


def test_the_scripts_exit_status_arguments_and_folder_are_passed_through(tmp_path):
    script = tmp_path / "ch05" / "exits.py"
    script.parent.mkdir()
    script.write_text("import os, sys\nprint(os.path.basename(os.getcwd()), sys.argv[1:])\nsys.exit(3)\n")
    status, out, err = book_run(script, tmp_path, "a", "--b")
    assert status == 3
    assert out.strip() == "ch05 ['a', '--b']"


def test_a_missing_script_is_one_line(tmp_path):
    status, out, err = book_run(tmp_path / "nope.py", tmp_path)
    assert status == 1
    assert err.strip() == f"handgrad book-run: error: {tmp_path / 'nope.py'}: no such script"


@needs_book  # it runs the book's ch05/gradient_check.py (a clone without ../shared/book1 failed here)
def test_bad_scripts_folders_and_data_are_one_line_errors(tmp_path):
    """A new user's mistakes once ended in tracebacks: a missing data folder (from handgrad's own
    loader inside the script), an --out that cannot be made (found only after the script ran),
    a file that is not Python."""
    script = BOOK / "ch05" / "gradient_check.py"
    offline = "import sys; sys.modules['pooch'] = None; from handgrad.cli import main; sys.exit(main(sys.argv[1:]))"
    done = subprocess.run([sys.executable, "-c", offline, "book-run", "--data-dir", str(tmp_path / "none"),
                           str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "handgrad book-run: error: mnist:" in done.stderr
    blocked = tmp_path / "file"
    blocked.write_text("")
    status, out, err = book_run(script, tmp_path, out=blocked / "sub")
    assert status == 1 and err.strip().startswith(f"handgrad book-run: error: --out {blocked / 'sub'}: cannot create")
    assert out == ""  # the script never started
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    status, out, err = book_run(notes, tmp_path)
    assert status == 1 and err.strip() == f"handgrad book-run: error: {notes} is not a Python script (.py)"
    status, out, err = book_run(tmp_path, tmp_path)
    assert status == 1 and "is a folder, not a script" in err and "Traceback" not in err
