"""The command line fed what users really feed it: each mistake ends in one line naming what was
wrong, before any training is wasted, and no output trouble loses a finished run."""

import fcntl
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import handgrad as hg
from handgrad.cli import main
from handgrad.registry import DIGITS_MLP


def run(*args, cwd=None, **kwargs):
    return subprocess.run([sys.executable, "-m", "handgrad", *args], capture_output=True, text=True, check=False, cwd=cwd, **kwargs)


def one_line_error(capsys, *fragments):
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    # refused before any training: no epoch's line ("epoch   1  loss ..."; the header may say "1 epoch")
    assert not any(line.startswith("epoch ") for line in captured.out.splitlines()), captured.out
    return lines[0]


@pytest.fixture(scope="module")
def digits_model(tmp_path_factory):
    out = tmp_path_factory.mktemp("digits")
    assert main(["train", "--epochs", "3", "--hidden", "16", "--out", str(out)]) == 0
    return out / "model.safetensors"


# --- options --------------------------------------------------------------------------------------


@pytest.mark.parametrize("args, fragments", [
    (["--seed", "-1"], ["argument --seed", "must be an integer >= 0, got -1"]),
    (["--checkpoint-every", "-1"], ["argument --checkpoint-every", "must be an integer >= 0, got -1"]),
    (["--epochs", "2.5"], ["argument --epochs", "invalid"]),
])
def test_bad_numbers_name_their_option(args, fragments, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--out", str(tmp_path / "out"), *args])
    assert exit_info.value.code == 2
    one_line_error(capsys, *fragments)
    assert not (tmp_path / "out").exists()


def test_a_validation_split_that_holds_out_nothing_is_refused(tmp_path, capsys):
    assert main(["train", "--val-split", "0.0001", "--out", str(tmp_path / "out")]) == 1
    one_line_error(capsys, "--val-split 0.0001 holds out 0 of 1438 training samples")
    assert not (tmp_path / "out").exists()  # a failed run leaves no empty folder behind


def test_a_data_dir_that_is_a_file_is_named(tmp_path, capsys):
    (tmp_path / "data").write_text("not a folder")
    assert main(["train", "--dataset", "mnist", "--data-dir", str(tmp_path / "data"), "--out", str(tmp_path / "o")]) == 1
    one_line_error(capsys, f"data root {tmp_path / 'data'} is a file, not a folder")


def test_a_huge_layer_is_an_out_of_memory_line_not_a_traceback(tmp_path):
    proc = run("train", "--hidden", "10000000000", "--out", str(tmp_path / "o"))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "handgrad train: error: out of memory" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


# --- the output folder, checked before training ------------------------------------------------------


def test_an_out_that_is_a_file_is_refused_before_training(tmp_path, capsys):
    (tmp_path / "out").write_text("x")
    assert main(["train", "--out", str(tmp_path / "out")]) == 1
    one_line_error(capsys, f"--out {tmp_path / 'out'} is a file, not a folder")


def test_a_model_path_that_is_a_folder_is_refused_before_training(tmp_path, capsys):
    (tmp_path / "out" / "model.safetensors").mkdir(parents=True)
    assert main(["train", "--out", str(tmp_path / "out")]) == 1
    one_line_error(capsys, f"{tmp_path / 'out' / 'model.safetensors'} is a folder")


def test_an_out_without_write_permission_is_refused_before_training(tmp_path, capsys):
    import os

    if os.geteuid() == 0:  # root writes everywhere, except into /proc
        out = Path("/proc/self/handgrad-out")
    else:
        out = tmp_path / "out"
        out.mkdir(mode=0o500)
    assert main(["train", "--out", str(out)]) == 1
    one_line_error(capsys, f"--out {out}: cannot write there")


def test_two_runs_at_once_on_one_folder_are_refused(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    with open(out / ".handgrad.lock", "a") as held:  # what a running `handgrad train` holds
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert main(["train", "--out", str(out)]) == 1
    one_line_error(capsys, "another handgrad run is writing there now")
    assert main(["train", "--epochs", "1", "--out", str(out)]) == 0  # the lock goes with its holder


def test_plot_without_matplotlib_is_refused_before_training(tmp_path, capsys, monkeypatch):
    from handgrad import plot

    def missing():
        raise plot.MissingMatplotlib("pictures need matplotlib (pip install 'handgrad[plot]')")

    monkeypatch.setattr(plot, "_pyplot", missing)
    assert main(["train", "--plot", "--out", str(tmp_path / "out")]) == 1
    one_line_error(capsys, "pictures need matplotlib")


# --- resuming ----------------------------------------------------------------------------------------


def test_resume_with_another_learning_rate_is_refused_in_one_line(tmp_path, capsys):
    out = str(tmp_path / "out")
    assert main(["train", "--epochs", "2", "--checkpoint-every", "1", "--out", out]) == 0
    capsys.readouterr()
    assert main(["train", "--epochs", "4", "--checkpoint-every", "1", "--out", out, "--resume", "--lr", "0.5"]) == 1
    one_line_error(capsys, "cannot resume with other settings", f"lr={DIGITS_MLP['lr']}", "lr=0.5")
    assert main(["train", "--epochs", "1", "--checkpoint-every", "1", "--out", out, "--resume"]) == 1
    one_line_error(capsys, "already trained 2 epochs")


# --- standard output that goes away -------------------------------------------------------------------


def test_train_piped_into_head_still_finishes_and_saves(tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "handgrad", "train", "--epochs", "20", "--out", str(tmp_path / "o")],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first_two = [proc.stdout.readline() for _ in range(2)]
    proc.stdout.close()  # what `head -2` does
    status = proc.wait(timeout=120)
    stderr = proc.stderr.read()
    assert first_two[0].startswith("dataset digits") and first_two[1].startswith("epoch ")
    assert status == 0 and "Traceback" not in stderr, stderr
    assert (tmp_path / "o" / "model.safetensors").is_file() and (tmp_path / "o" / "history.json").is_file()


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize("command", [["walkthrough"], ["train", "--epochs", "2"]])
def test_a_failed_write_to_standard_output_is_one_line_and_a_failure(tmp_path, command):
    with open("/dev/full", "w") as full:
        proc = subprocess.run([sys.executable, "-m", "handgrad", *command], stdout=full, stderr=subprocess.PIPE, check=False,
                              text=True, cwd=tmp_path)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"handgrad {command[0]}: error: could not write to standard output (No space left on device)"]
    if command[0] == "train":
        assert (tmp_path / "handgrad-run" / "model.safetensors").is_file()  # the run itself is not lost


# --- predict and the other commands -----------------------------------------------------------------


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_predict_refuses_non_finite_input(digits_model, tmp_path, capsys, bad):
    x = np.zeros(64, dtype=np.float32)
    x[5] = bad
    np.save(tmp_path / "bad.npy", x)
    assert main(["predict", str(digits_model), str(tmp_path / "bad.npy")]) == 1
    one_line_error(capsys, f"{tmp_path / 'bad.npy'}: contains NaN or infinity")


@pytest.mark.parametrize("array, dtype_text", [
    (np.array(["a"] * 64), "<U1"),
    (np.zeros(64, dtype=[("x", "f4"), ("y", "i4")]), "[('x', '<f4'), ('y', '<i4')]"),
])
def test_predict_refuses_arrays_that_are_not_numbers(digits_model, tmp_path, capsys, array, dtype_text):
    np.save(tmp_path / "odd.npy", array)
    assert main(["predict", str(digits_model), str(tmp_path / "odd.npy")]) == 1
    one_line_error(capsys, f"{tmp_path / 'odd.npy'}: expected an array of numbers, got dtype {dtype_text}")


def test_a_folder_given_as_a_model_is_named(digits_model, capsys):
    folder = digits_model.parent
    assert main(["evaluate", str(folder)]) == 1
    one_line_error(capsys, f"{folder} is a folder, not a model file (did you mean {digits_model}?)")


def test_mistakes_pictures_of_signals_are_refused_by_option(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "m1d"
    assert main(["train", "--dataset", "mnist1d", "--epochs", "1", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["plot", str(out / "model.safetensors"), "--dataset", "mnist1d", "--what", "mistakes",
                 "--out", str(tmp_path / "m.png")]) == 1
    one_line_error(capsys, "--what mistakes draws images; dataset mnist1d has samples of 40 values")


def test_the_trained_models_file_records_its_dataset(digits_model):
    assert hg.serialize.read_metadata(digits_model)["dataset"] == "digits"


def test_predict_refuses_a_blank_drawing_and_reads_a_transparent_one(digits_model, tmp_path, capsys):
    Image = pytest.importorskip("PIL.Image")
    Image.new("RGBA", (256, 256), (0, 0, 0, 0)).save(tmp_path / "blank.png")
    assert main(["predict", str(digits_model), str(tmp_path / "blank.png")]) == 1
    one_line_error(capsys, f"{tmp_path / 'blank.png'}", "no digit found")
    # A canvas export: black strokes on a transparent background. convert("L") alone would make
    # it all black; read as the dataset was made, it is the same digit as the opaque drawing.
    _, (x_test, _) = hg.data.load_dataset("digits")
    ink = np.kron(x_test[3].reshape(8, 8), np.ones((16, 16)))  # 128x128 strokes
    rgba = np.zeros((256, 256, 4), dtype=np.uint8)
    rgba[40:168, 90:218, 3] = (ink * 255).astype(np.uint8)
    Image.fromarray(rgba).save(tmp_path / "canvas.png")
    opaque = np.full((256, 256), 255, dtype=np.uint8)
    opaque[40:168, 90:218] = (255 * (1 - ink)).astype(np.uint8)
    Image.fromarray(opaque).save(tmp_path / "paper.png")
    assert main(["predict", str(digits_model), str(tmp_path / "canvas.png"), str(tmp_path / "paper.png")]) == 0
    canvas, paper = capsys.readouterr().out.strip().splitlines()
    assert canvas.split("class ")[1].split()[0] == paper.split("class ")[1].split()[0]


def test_trace_and_plot_take_the_dataset_the_model_was_trained_on(tmp_path, capsys):
    out = tmp_path / "m1d"
    assert main(["train", "--dataset", "mnist1d", "--epochs", "1", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["trace", str(out / "model.safetensors"), "--samples", "5"]) == 0  # mnist1d, not digits
    assert "0 Affine" in capsys.readouterr().out


def test_predict_says_values_too_large_for_float32_without_numpy_warnings(digits_model, tmp_path, capsys):
    """A .npy of 1e300 (finite in float64, infinite in float32) was called "NaN or infinity",
    after NumPy's RuntimeWarnings."""
    import warnings

    x = np.zeros(64, dtype=np.float64)
    x[3] = 1e300
    np.save(tmp_path / "huge.npy", x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a RuntimeWarning would fail the command here
        assert main(["predict", str(digits_model), str(tmp_path / "huge.npy")]) == 1
    line = one_line_error(capsys, f"{tmp_path / 'huge.npy'}: values too large for float32 (the largest is 1e+300")
    assert "NaN" not in line


def test_predict_refuses_a_blank_question_like_an_empty_one(tmp_path, capsys):
    """`predict --text "   "` was answered while `--text ""` was refused."""
    hg.save(hg.model.Seq2seq("0123456789+ _", 3, 4, embed=3, hidden=4, seed=0), tmp_path / "s.safetensors")
    assert main(["predict", str(tmp_path / "s.safetensors"), "--text", "   "]) == 1
    one_line_error(capsys, "--text '   ': the question is blank")


@pytest.mark.parametrize("name", ["a.txt", "picture", "curves.json"])
def test_plot_refuses_a_file_name_that_is_not_a_picture_format(digits_model, tmp_path, capsys, name):
    """`plot --out a.txt` wrote a PNG under that name."""
    pytest.importorskip("matplotlib")
    assert main(["plot", str(digits_model), "--what", "confusion", "--out", str(tmp_path / name)]) == 1
    one_line_error(capsys, "a picture's name ends in .png, .svg, .pdf")
    assert not (tmp_path / name).exists()


@pytest.mark.parametrize("name, magic", [("c.png", b"\x89PNG"), ("c.svg", b"<?xml"), ("c.pdf", b"%PDF")])
def test_plot_writes_the_format_its_extension_names(digits_model, tmp_path, capsys, name, magic):
    pytest.importorskip("matplotlib")
    assert main(["plot", str(digits_model), "--what", "confusion", "--out", str(tmp_path / name)]) == 0
    assert (tmp_path / name).read_bytes().startswith(magic)
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # no temporary left behind


@pytest.mark.parametrize("flag, value", [("--lr", "inf"), ("--lr", "nan"), ("--weight-decay", "inf"),
                                         ("--grad-clip", "0"), ("--beta2", "1.5"), ("--min-lr", "-1")])
def test_non_finite_or_out_of_range_rates_are_refused_by_the_parser(tmp_path, flag, value):
    """`--lr inf` printed NumPy RuntimeWarnings before its one-line error."""
    proc = run("train", flag, value, "--out", str(tmp_path / "o"))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and f"argument {flag}: must be" in lines[0] and "Warning" not in proc.stderr, proc.stderr


# --- help -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["evaluate", "predict", "trace", "plot", "generate"])
def test_options_of_the_commands_on_a_saved_model_had_no_help_text(command):
    """`trace --help` and `plot --help` listed --data-dir with nothing beside it (and plot's
    --what, predict's FILE, generate's --seed were as bare)."""
    from handgrad.cli import build_parser

    parser = next(a for a in build_parser()._actions if a.dest == "command").choices[command]
    bare = [a.option_strings or a.dest for a in parser._actions if not a.help]
    assert bare == [], f"handgrad {command}: no help for {bare}"
    if command in ("evaluate", "trace", "plot"):  # those that read the model's dataset
        assert "data root with one folder per dataset" in " ".join(parser.format_help().split())
