"""The train / evaluate / predict commands, as a user runs them."""

import json
import subprocess
import sys

import numpy as np
import pytest

import handgrad as hg
from handgrad.cli import main
from handgrad.registry import DIGITS_MLP


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "handgrad", *args], capture_output=True, text=True, check=False, cwd=cwd)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    proc = run("train", "--epochs", "8", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    return out, proc.stdout


def test_train_with_no_arguments_uses_the_embedded_digits(tmp_path):
    proc = run("train", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[0].startswith("dataset digits: 1438 train, 359 test samples")
    assert sum(line.startswith("epoch ") for line in lines) == DIGITS_MLP["epochs"]
    assert lines[-1].startswith("test accuracy: 0.9")
    accuracy = float(lines[-1].split(": ")[1])
    assert accuracy > 0.94
    assert (tmp_path / "handgrad-run" / "model.safetensors").is_file()
    history = json.loads((tmp_path / "handgrad-run" / "history.json").read_text())
    assert history["test_accuracy"] == pytest.approx(accuracy, abs=5e-5)
    assert len(history["epochs"]) == DIGITS_MLP["epochs"]
    assert history["arguments"]["augment"] == "warp"  # the first run warps its training digits


def test_the_first_runs_warping_can_be_switched_off_and_is_said(tmp_path, capsys):
    """The first run learns from warped digits (so that it reads drawings); --augment none is
    the plain run, and each says what it did."""
    for augment, said in (("warp", "; training batches augmented (warp)"), ("none", "")):
        out = tmp_path / augment
        assert main(["train", "--epochs", "1", "--augment", augment, "--out", str(out)]) == 0
        first = capsys.readouterr().out.splitlines()[0]
        assert first.endswith("1 epoch of batch 32" + said)
        assert json.loads((out / "history.json").read_text())["arguments"]["augment"] == augment
    warped, plain = (hg.load(tmp_path / name / "model.safetensors") for name in ("warp", "none"))
    assert not np.array_equal(warped.params["0.W"], plain.params["0.W"])


def test_saved_model_reproduces_the_reported_accuracy(trained):
    out, stdout = trained
    reported = float(stdout.strip().splitlines()[-1].split(": ")[1])
    model = hg.load(out / "model.safetensors")
    _, (x_test, t_test) = hg.data.load_dataset("digits")
    assert model.accuracy(x_test, t_test) == pytest.approx(reported, abs=5e-5)


def test_evaluate_prints_accuracy_per_class_and_confusion(trained, capsys):
    out, stdout = trained
    assert main(["evaluate", str(out / "model.safetensors")]) == 0
    text = capsys.readouterr().out
    reported = stdout.strip().splitlines()[-1].split(": ")[1]
    assert f"accuracy: {reported}" in text
    assert "per-class accuracy:" in text and "confusion matrix" in text
    rows = [line.split() for line in text.splitlines()[-10:]]
    confusion = np.array([[int(v) for v in row[1:]] for row in rows])
    assert confusion.sum() == 359 and np.trace(confusion) / 359 == pytest.approx(float(reported), abs=5e-5)


def test_predict_npy_and_images(trained, tmp_path, capsys):
    out, _ = trained
    _, (x_test, _) = hg.data.load_dataset("digits")
    np.save(tmp_path / "one.npy", x_test[3])
    np.save(tmp_path / "many.npy", x_test[:4])
    Image = pytest.importorskip("PIL.Image")
    # A light digit on dark background, and the same digit as dark ink on white paper, enlarged.
    pixels = (x_test[3].reshape(8, 8) * 255).astype(np.uint8)
    Image.fromarray(pixels).resize((64, 64), Image.Resampling.NEAREST).save(tmp_path / "light.png")
    Image.fromarray(255 - pixels).resize((64, 64), Image.Resampling.NEAREST).save(tmp_path / "ink.png")
    assert main(["predict", str(out / "model.safetensors"), str(tmp_path / "one.npy"), str(tmp_path / "many.npy"),
                 str(tmp_path / "light.png"), str(tmp_path / "ink.png")]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 + 4 + 2
    model = hg.load(out / "model.safetensors")
    expected = model.predict_classes(x_test[:4])
    assert lines[0].split("class ")[1].split()[0] == str(expected[3])
    assert [line.split("class ")[1].split()[0] for line in lines[1:5]] == [str(c) for c in expected]
    assert lines[5].split("class ")[1].split()[0] == lines[6].split("class ")[1].split()[0]  # polarity handled


@pytest.mark.parametrize("args, message", [
    (["evaluate", "missing.safetensors"], "missing.safetensors: no such file"),
    (["predict", "missing.safetensors", "x.npy"], "no such file"),
    (["train", "--dataset", "mnist", "--data-dir", "nowhere", "--epochs", "1"], "not found in"),
    (["train", "--early-stopping", "3"], "--early-stopping needs --val-split"),
    (["train", "--init", "magic"], "unknown initializer 'magic'"),
    (["train", "--resume", "--out", "fresh"], "no checkpoint at"),
    (["train", "--dataset", "mnist1d", "--augment", "warp"], "--augment warp applies to --dataset digits, not mnist1d"),
])
def test_bad_input_is_a_one_line_error(tmp_path, args, message, monkeypatch, capsys):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("HANDGRAD_DATA", raising=False)
    from handgrad.data import fetch
    monkeypatch.setattr(fetch, "_download", lambda *a: (_ for _ in ()).throw(fetch.DataError("not found in " + str(a[3]))))
    monkeypatch.chdir(tmp_path)
    assert main(args) == 1
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("args, message", [
    (["evaluate", "missing.safetensors"], "handgrad evaluate: error: missing.safetensors: no such file"),
    (["train", "--early-stopping", "3"], "--early-stopping needs --val-split"),
    (["train", "--lr"], "expected one argument"),
    (["train", "--dataset", "cifar"], "invalid choice: 'cifar'"),
])
def test_errors_have_no_traceback(tmp_path, args, message):
    proc = run(*args, cwd=tmp_path)
    assert proc.returncode != 0
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_model_that_does_not_fit_the_dataset(trained, tmp_path):
    out, _ = trained
    np.save(tmp_path / "wrong.npy", np.zeros(10))
    proc = run("predict", str(out / "model.safetensors"), str(tmp_path / "wrong.npy"))
    assert proc.returncode == 1
    assert "the model takes 64 features per sample" in proc.stderr and "Traceback" not in proc.stderr


def test_checkpoint_and_resume_from_the_command_line(tmp_path):
    base = ["train", "--hidden", "16", "--batch-size", "128", "--checkpoint-every", "1"]
    straight = run(*base, "--epochs", "4", "--out", str(tmp_path / "a"))
    first = run(*base, "--epochs", "2", "--out", str(tmp_path / "b"))
    resumed = run(*base, "--epochs", "4", "--out", str(tmp_path / "b"), "--resume")
    for proc in (straight, first, resumed):
        assert proc.returncode == 0, proc.stderr
    a, b = hg.load(tmp_path / "a" / "model.safetensors"), hg.load(tmp_path / "b" / "model.safetensors")
    for key in a.params:
        np.testing.assert_array_equal(a.params[key], b.params[key])
    assert straight.stdout.splitlines()[-1] == resumed.stdout.splitlines()[-1]


def test_train_a_convnet_and_use_it(tmp_path, capsys):
    out = tmp_path / "cnn"
    assert main(["train", "--model", "cnn", "--epochs", "2", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "model SimpleConvNet" in text and text.strip().splitlines()[-1].startswith("test accuracy: ")
    model = hg.load(out / "model.safetensors")
    assert model.input_shape == (1, 8, 8)
    assert main(["evaluate", str(out / "model.safetensors")]) == 0
    reported = text.strip().splitlines()[-1].split(": ")[1]
    assert f"accuracy: {reported}" in capsys.readouterr().out
    _, (x_test, _) = hg.data.load_dataset("digits")
    np.save(tmp_path / "one.npy", x_test[0])
    assert main(["predict", str(out / "model.safetensors"), str(tmp_path / "one.npy")]) == 0
    assert "class " in capsys.readouterr().out


def test_mlp_options_and_their_errors(tmp_path, capsys):
    assert main(["train", "--batchnorm", "--dropout", "0.2", "--epochs", "2", "--out", str(tmp_path / "m")]) == 0
    assert "batchnorm dropout 0.2" in capsys.readouterr().out
    names = [type(layer).__name__ for layer in hg.load(tmp_path / "m" / "model.safetensors").layers]
    assert names == ["Affine", "BatchNorm", "Relu", "Dropout", "Affine"]
    assert main(["train", "--model", "cnn", "--dropout", "0.5"]) == 1
    assert "--dropout applies to --model mlp, not cnn" in capsys.readouterr().err
    assert main(["train", "--model", "cnn", "--batchnorm", "--dropout", "0.5"]) == 1
    assert "--batchnorm and --dropout apply to --model mlp, not cnn" in capsys.readouterr().err
    assert main(["train", "--model", "cnn", "--dataset", "mnist1d"]) == 1
    assert "--model cnn cannot learn mnist1d (signals); use --model mlp" in capsys.readouterr().err


@pytest.mark.parametrize("download", ["no download extra", "every mirror fails"])
def test_missing_mnist_says_how_to_point_at_the_data(tmp_path, monkeypatch, capsys, download):
    """A new user ran README's ConvNet command without --data-dir: the error named the cache
    folder and the download extra but not --data-dir or HANDGRAD_DATA, where their files were."""
    import sys
    import types

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("HANDGRAD_DATA", raising=False)
    monkeypatch.chdir(tmp_path)
    if download == "no download extra":
        monkeypatch.setitem(sys.modules, "pooch", None)  # import pooch raises ImportError
    else:
        def retrieve(*args, **kwargs):
            raise OSError("offline")
        monkeypatch.setitem(sys.modules, "pooch", types.SimpleNamespace(retrieve=retrieve))
    assert main(["train", "--dataset", "mnist", "--model", "cnn", "--epochs", "1"]) == 1
    err = capsys.readouterr().err
    assert "--data-dir" in err and "HANDGRAD_DATA" in err and "mnist/" in err, err
    if download == "no download extra":
        assert len(err.strip().splitlines()) == 1, err


def test_one_epoch_is_said_in_the_singular(tmp_path, capsys):
    assert main(["train", "--epochs", "1", "--out", str(tmp_path / "run")]) == 0
    assert "; 1 epoch of batch 32" in capsys.readouterr().out


def test_ctrl_c_keeps_the_finished_epochs_and_says_how_to_resume(tmp_path):
    """The dates run printed epoch 1 after 455 s, then `interrupted`, exit 130, and the run folder
    was gone. Now Ctrl-C saves the run so far and prints the command that continues it."""
    import shlex
    import signal
    import subprocess
    import sys
    import time

    command = [sys.executable, "-m", "handgrad", "train", "--epochs", "100000", "--hidden", "16", "--out", "run"]
    job = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        while not job.stdout.readline().startswith("epoch   2"):  # two epochs finished
            assert job.poll() is None, job.stderr.read()
        job.send_signal(signal.SIGINT)
        stdout, stderr = job.communicate(timeout=60)
    finally:
        job.kill()
    assert job.returncode == 130
    lines = stderr.strip().splitlines()
    assert lines[-2].startswith("handgrad train: interrupted at epoch ") and "run/checkpoint.safetensors" in lines[-2]
    resume = shlex.split(lines[-1])
    assert resume == ["handgrad", "train", "--epochs", "100000", "--hidden", "16", "--out", "run", "--resume"]
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [".handgrad.lock", "checkpoint.safetensors"]
    # The command it printed continues the run (a few steps here, then it ends, saves and says so).
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "handgrad", *resume[1:], "--max-steps", "200"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1].startswith("test accuracy:") and time.monotonic() - started < 120
