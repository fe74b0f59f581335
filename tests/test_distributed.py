"""Data-parallel training over MPI (handgrad.distributed): 2 ranks train exactly as 1 process.

The MPI runs go through the ``mpiexec`` of the ``distributed`` extra (MPICH's wheel puts it next
to this Python). Without mpi4py or mpiexec they skip, unless HANDGRAD_REQUIRE_MPI=1 (CI), which
turns a missing MPI into a failure.

Tolerances. Two ranks compute the same sums as one process in another order (each shard's mean,
weighted by its share, then the all-reduce), so the results agree to rounding:
* float64 runs (Adam, the GPT, idle ranks): 1e-10 absolute on weights of order 1 (measured:
  ~1e-15), far below any real difference (a wrong shard weight or mask moves weights by > 1e-3);
* float32 runs (SGD/momentum, MLP and ConvNet): 1e-6 absolute on weights of order 1, a few
  float32 ulps (measured: 1.5e-7 after 3 epochs). SGD is used there because Adam divides by
  sqrt(v): a gradient that is pure rounding noise (~1e-9) would move its weight by ~lr either way.
Every rank must end with the very same weights and history (they apply the same update to the
same all-reduced gradients on one machine): compared exactly.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import handgrad as hg
from handgrad.distributed import counted_targets, launched_by_mpi, shard
from handgrad.layers import Dropout

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import mpi_worker  # noqa: E402

FLOAT32 = dict(rtol=1e-5, atol=1e-6)
FLOAT64 = dict(rtol=1e-10, atol=1e-10)


def _mpiexec() -> str:
    """The mpiexec beside this Python (the extra's), else one on PATH; skip or fail without."""
    try:
        import mpi4py  # noqa: F401
        found = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which("mpiexec")
    except ImportError:
        found = None
    if found is None:
        message = 'MPI tests need mpi4py and mpiexec: pip install "handgrad[distributed]"'
        if os.environ.get("HANDGRAD_REQUIRE_MPI"):
            pytest.fail(message + " (HANDGRAD_REQUIRE_MPI is set)")
        pytest.skip(message)
    return found


def _run_mpi(arguments, ranks=2, cwd=None, timeout=120) -> subprocess.CompletedProcess:
    # One BLAS thread per rank: 2 ranks on 2 cores, no oversubscription.
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    for name in ("PMI_SIZE", "PMI_RANK", "OMPI_COMM_WORLD_SIZE"):  # a test run itself under mpiexec
        env.pop(name, None)
    return subprocess.run([_mpiexec(), "-n", str(ranks), *arguments], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=timeout)


def _train_on_two_ranks(scenario, out, *options, ranks=2):
    result = _run_mpi([sys.executable, str(HERE / "mpi_worker.py"), scenario, str(out), *options], ranks=ranks)
    assert result.returncode == 0, result.stderr
    return dict(np.load(out))


def _assert_same_training(saved, model, history, tolerance):
    assert saved["weights_spread"] == 0.0 and saved["history_spread"] == 0.0  # every rank agrees exactly
    np.testing.assert_allclose(saved["train_loss"], history["train_loss"], **tolerance)
    np.testing.assert_allclose(saved["val_loss"], history["val_loss"], **tolerance)
    for name, value in model.params.items():
        np.testing.assert_allclose(saved[f"param:{name}"], value, err_msg=name, **tolerance)


@pytest.mark.parametrize("scenario, tolerance", [
    ("mlp_dropout_sgd32", FLOAT32),         # uneven shards (batch 25 = 13 + 12), last batch 3, dropout
    ("mlp_dropout_adam64", FLOAT64),        # the same in float64, with Adam and the model's L2 penalty
    ("convnet_sgd32", FLOAT32),             # SimpleConvNet, last batch 13 of 16
    ("batch_smaller_than_ranks", FLOAT64),  # a last batch of 1: rank 1 idle for that step, dropout on
    ("batch_of_one", FLOAT64),              # batch 1: rank 1 idle at every step
    ("mlp_augmented", FLOAT64),             # fit(augment=): each rank's shard of the batch augmented as one process's
    ("gpt", FLOAT64),                       # fit_lm: a GPT with dropout, batch 5 = 3 + 2 windows, AdamW, clipping
])
def test_two_ranks_train_as_one_process(tmp_path, scenario, tolerance):
    saved = _train_on_two_ranks(scenario, tmp_path / "run.npz")
    assert saved["size"] == 2
    model, history = mpi_worker.run(scenario)
    _assert_same_training(saved, model, history, tolerance)


@pytest.mark.parametrize("scenario, first_part", [("mlp_dropout_adam64", 1), ("gpt", 3)])
def test_resume_on_two_ranks_equals_an_uninterrupted_run(tmp_path, scenario, first_part):
    whole = _train_on_two_ranks(scenario, tmp_path / "whole.npz", "--checkpoint", str(tmp_path / "whole.ckpt"))
    checkpoint = tmp_path / "part.ckpt"
    _train_on_two_ranks(scenario, tmp_path / "first.npz", "--checkpoint", str(checkpoint),
                        "--epochs", str(first_part))
    assert checkpoint.is_file() and not list(tmp_path.glob("*.tmp*"))  # written atomically, by rank 0
    resumed = _train_on_two_ranks(scenario, tmp_path / "resumed.npz", "--checkpoint", str(checkpoint), "--resume")
    np.testing.assert_array_equal(resumed["train_loss"], whole["train_loss"])  # the same 2-rank run
    for name in whole:
        if name.startswith("param:"):
            np.testing.assert_array_equal(resumed[name], whole[name], err_msg=name)


def test_batchnorm_keeps_per_rank_statistics_and_the_ranks_agree(tmp_path):
    saved = _train_on_two_ranks("mlp_batchnorm", tmp_path / "run.npz")
    assert saved["weights_spread"] == 0.0 and saved["history_spread"] == 0.0
    model, history = mpi_worker.run("mlp_batchnorm")
    # Each rank normalises its 13 samples by their own mean and variance (DDP without
    # SyncBatchNorm): the same training to within a few per cent, but not the same numbers.
    np.testing.assert_allclose(saved["train_loss"], history["train_loss"], rtol=0.05)
    assert not np.allclose(saved["param:0.W"], model.params["0.W"], rtol=1e-6, atol=1e-8)


def test_a_failing_rank_takes_the_job_down_with_a_message(tmp_path):
    result = _run_mpi([sys.executable, str(HERE / "mpi_worker.py"), "mlp_dropout_sgd32", str(tmp_path / "x.npz"),
                       "--fail-rank", "1"], timeout=60)
    assert result.returncode != 0
    assert "rank 1 breaks down on purpose" in result.stderr
    assert "rank 1 of 2 failed (RuntimeError); aborting the whole MPI job" in result.stderr
    assert not (tmp_path / "x.npz").exists()


def _cli(arguments, cwd, ranks=None):
    command = ["handgrad", "train", *arguments]
    command[0] = shutil.which("handgrad", path=str(Path(sys.executable).parent)) or "handgrad"
    if ranks is None:
        env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
        return subprocess.run(command, capture_output=True, text=True, cwd=cwd, env=env, timeout=120)
    return _run_mpi(command, ranks=ranks, cwd=cwd)


def test_cli_under_mpiexec_trains_as_one_process_and_only_rank_0_prints_and_writes(tmp_path):
    options = ["--epochs", "2", "--optimizer", "sgd", "--dropout", "0.2", "--batch-size", "31", "--hidden", "24"]
    parallel = _cli([*options, "--out", "two"], tmp_path, ranks=2)
    assert parallel.returncode == 0, parallel.stderr
    single = _cli([*options, "--out", "one"], tmp_path)
    assert single.returncode == 0, single.stderr
    lines = parallel.stdout.splitlines()
    assert lines[0] == "data-parallel training on 2 MPI processes: each batch is split into 2 shards"
    # Rank 0's lines once each, and nothing from rank 1; the same run as one process's.
    assert sum(line.startswith("epoch") for line in lines) == 2
    assert lines[-1] == single.stdout.splitlines()[-1] and lines[-1].startswith("test accuracy")
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == sorted(p.name for p in (tmp_path / "one").iterdir())
    two, one = hg.load(tmp_path / "two" / "model.safetensors"), hg.load(tmp_path / "one" / "model.safetensors")
    for name, value in one.params.items():
        np.testing.assert_allclose(two.params[name], value, err_msg=name, **FLOAT32)


def test_cli_resume_under_mpiexec(tmp_path):
    options = ["--optimizer", "sgd", "--batch-size", "64", "--hidden", "16", "--checkpoint-every", "1", "--out", "run"]
    first = _cli(["--epochs", "1", *options], tmp_path, ranks=2)
    assert first.returncode == 0, first.stderr
    resumed = _cli(["--epochs", "2", "--resume", *options], tmp_path, ranks=2)
    assert resumed.returncode == 0, resumed.stderr
    assert [line.split()[1] for line in resumed.stdout.splitlines() if line.startswith("epoch")] == ["2"]
    missing = _cli(["--epochs", "2", "--resume", *options[:-1], "elsewhere"], tmp_path, ranks=2)
    assert missing.returncode != 0 and "--resume: no checkpoint at elsewhere" in missing.stderr


def test_cli_mistakes_under_mpiexec_are_said_once_by_rank_0(tmp_path):
    """Every rank used to print the same error (an option, a BatchNorm shard of one sample)."""
    bad_option = _cli(["--batch-size", "0"], tmp_path, ranks=2)
    assert bad_option.returncode != 0
    assert bad_option.stderr.count("must be a positive integer, got 0") == 1
    one_sample_shards = _cli(["--batchnorm", "--batch-size", "3", "--epochs", "1", "--out", "bn"], tmp_path, ranks=2)
    assert one_sample_shards.returncode != 0
    message = "BatchNorm needs at least 2 samples per batch in training, but a batch of 3 split over 2 MPI processes"
    assert one_sample_shards.stderr.count(message) == 1, one_sample_shards.stderr
    assert "MPI rank 1" not in one_sample_shards.stderr and "epoch 1" not in one_sample_shards.stdout
    # --threads asks one process to split its batch; under mpiexec the processes split it already.
    # Said in the command's words before anything prints (it once came from fit, after the header).
    threads = _cli(["--threads", "2", "--epochs", "1", "--out", "t"], tmp_path, ranks=2)
    assert threads.returncode != 0 and threads.stdout == ""
    assert threads.stderr.count("--threads 2: under mpiexec the processes split each batch already; drop --threads "
                                "(or run one process with it)") == 1, threads.stderr


def test_each_rank_gets_its_share_of_the_cores_for_blas_unless_the_user_chose(tmp_path):
    """2 ranks x (a BLAS thread per core) on 2 cores spun against each other: an MLP epoch took
    2.65 s instead of 0.03 s. Under mpiexec, importing handgrad sets cores // ranks threads."""
    # One write(2) per rank: a short line written at once is never interleaved with the other's.
    show = ("import handgrad, os; os.write(1, f\"{os.environ.get('OPENBLAS_NUM_THREADS')} "
            "{os.environ.get('OMP_NUM_THREADS')}\\n\".encode())")
    env = {name: value for name, value in os.environ.items()
           if name not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "PMI_SIZE", "PMI_RANK")}
    chosen = subprocess.run([_mpiexec(), "-n", "2", sys.executable, "-c", show], capture_output=True, text=True,
                            env={**env, "OMP_NUM_THREADS": "3"}, timeout=60)
    assert chosen.stdout.splitlines() == ["None 3", "None 3"], chosen.stderr
    default = subprocess.run([_mpiexec(), "-n", "2", sys.executable, "-c", show], capture_output=True, text=True,
                             env=env, timeout=60)
    threads = str(max(1, (os.cpu_count() or 1) // 2))
    assert default.stdout.splitlines() == [f"{threads} {threads}"] * 2, default.stderr


# --- without MPI: the arithmetic of shards and masks ----------------------------------------------


@pytest.mark.parametrize("total, ranks", [(25, 2), (24, 2), (1, 2), (3, 4), (100, 7), (0, 3)])
def test_shards_cover_every_row_once_and_differ_by_at_most_one(total, ranks):
    shards = [shard(total, rank, ranks) for rank in range(ranks)]
    assert shards[0][0] == 0 and shards[-1][1] == total
    assert all(a[1] == b[0] for a, b in zip(shards, shards[1:]))
    sizes = [stop - start for start, stop in shards]
    assert max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)


@pytest.mark.parametrize("shape", [(7, 5), (7, 3, 4)])
def test_dropout_shards_draw_the_rows_of_the_global_mask(shape):
    x = np.ones(shape, np.float32)
    whole = Dropout(0.5, rng=np.random.default_rng(1))
    expected = whole.forward(x)
    parts = []
    for start, stop in ((0, 4), (4, 7)):
        layer = Dropout(0.5, rng=np.random.default_rng(1))
        layer.batch_shard = (start, stop, 7)
        parts.append(layer.forward(x[start:stop]))
        np.testing.assert_array_equal(layer.backward(np.ones_like(parts[-1])), parts[-1])
    np.testing.assert_array_equal(np.concatenate(parts), expected)
    flat = Dropout(0.5, rng=np.random.default_rng(1))  # (N*T, D): rows per sample
    flat.batch_shard = (4, 7, 7)
    np.testing.assert_array_equal(flat.forward(x[4:7].reshape(3 * shape[1], -1)),
                                  expected[4:7].reshape(3 * shape[1], -1))
    with pytest.raises(ValueError, match="batch_shard 4:7 of 7 samples does not match an input of shape"):
        flat.forward(np.ones((4, 2), np.float32))


def test_counted_targets_are_what_the_loss_averages_over():
    model = hg.mlp(3, [], 4, seed=0)
    scores = np.zeros((2, 5, 4))
    assert counted_targets(model, scores, np.array([[1, 2, -100, 0, 3], [-100, -100, 1, 1, 1]])) == 7
    assert counted_targets(model, scores[:, 0], np.eye(4)[[1, 2]]) == 2
    assert counted_targets(model, scores[:, 0], np.array([1, 2])) == 2


def test_launched_by_mpi_reads_the_environment(monkeypatch):
    for name in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    assert not launched_by_mpi()
    monkeypatch.setenv("PMI_SIZE", "1")
    assert not launched_by_mpi()  # mpiexec -n 1 is one process: nothing to split
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "4")
    assert launched_by_mpi()


def _descendants(pid: int) -> list[int]:
    """The processes below ``pid`` (mpiexec -> its proxy -> the ranks), read from /proc."""
    children = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rpartition(")")[2].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _rank_process(mpiexec_pid: int, rank: int) -> int | None:
    for pid in _descendants(mpiexec_pid):
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"PMI_RANK={rank}".encode() in environ and any(b"handgrad" in part for part in
                                                          Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")):
            return pid
    return None


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds the ranks through /proc")
def test_sigint_to_one_mpi_rank_ends_the_whole_job_and_keeps_the_checkpoint(tmp_path):
    """SIGINT to rank 1 alone used to hang the job: rank 0 waited in the next all-reduce forever."""
    import signal
    import time

    _mpiexec()
    command = [shutil.which("handgrad", path=str(Path(sys.executable).parent)) or "handgrad", "train",
               "--epochs", "100000", "--checkpoint-every", "1", "--out", "run"]
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    for name in ("PMI_SIZE", "PMI_RANK", "OMPI_COMM_WORLD_SIZE"):
        env.pop(name, None)
    job = subprocess.Popen([_mpiexec(), "-n", "2", *command], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (tmp_path / "run" / "checkpoint.safetensors").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        rank_1 = _rank_process(job.pid, 1)
        assert rank_1 is not None, "rank 1 was not found"
        os.kill(rank_1, signal.SIGINT)
        _, stderr = job.communicate(timeout=30)  # it used to hang here
    finally:
        job.kill()
    assert job.returncode == 130
    # Rank 1's Ctrl-C travels in the step's all-reduce: both ranks stop after the same step, rank 0
    # saves the run so far and says, once, how to continue it.
    assert stderr.count("interrupted") == 1, stderr
    assert "the run so far is saved in run/checkpoint.safetensors" in stderr
    assert "mpiexec -n 2 handgrad train --epochs 100000 --checkpoint-every 1 --out run --resume" in stderr
    tensors, metadata = hg.serialize.read_safetensors(tmp_path / "run" / "checkpoint.safetensors")
    state = json.loads(metadata["training"])["state"]
    assert metadata["format"] == "handgrad.checkpoint" and state["global_step"] >= 1
    # The command it gives continues the run (here a few steps further, then it ends and saves).
    resumed = _run_mpi([shutil.which("handgrad", path=str(Path(sys.executable).parent)) or "handgrad", "train",
                        "--epochs", "100000", "--checkpoint-every", "1", "--out", "run", "--resume",
                        "--max-steps", str(state["global_step"] + 3)], cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert (tmp_path / "run" / "model.safetensors").is_file()


def test_option_errors_under_mpiexec_are_said_once_and_at_once(tmp_path):
    """`mpiexec -n 2 handgrad train --model gpt` printed its error twice, after 5 s: rank 1 slept
    before joining MPI, and rank 0's abort waited for it."""
    import time

    started = time.monotonic()
    result = _cli(["--model", "gpt"], tmp_path, ranks=2)
    elapsed = time.monotonic() - started
    assert result.returncode != 0
    assert result.stderr.count("--model gpt cannot learn digits") == 1, result.stderr
    assert "MPI rank 1" not in result.stderr
    assert elapsed < 4.0, f"the job took {elapsed:.1f} s to end"  # rank 1 waits 3 s before it speaks alone
