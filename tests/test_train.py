"""fit: permutations, determinism, early stopping, divergence, checkpoints and exact resume."""

import json

import numpy as np
import pytest

import handgrad as hg
from handgrad.data.images import warp_digits
from handgrad.train import TrainingDiverged


@pytest.fixture(scope="module")
def digits():
    return hg.data.load_dataset("digits")


def weights(model):
    return {k: v.copy() for k, v in model.params.items()}


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_fit_learns_digits_and_records_history(digits):
    (x, t), (x_test, t_test) = digits
    model = hg.mlp(64, [100], 10, seed=0)
    history = hg.fit(model, hg.optim.Adam(lr=1e-3), (x, t), val=(x_test, t_test), epochs=15, batch_size=32, seed=0)
    assert len(history) == 15 and history["epoch"] == list(range(1, 16))
    assert history["train_loss"][-1] < history["train_loss"][0] / 5
    assert history["val_accuracy"][-1] > 0.93
    assert model.accuracy(x_test, t_test) == pytest.approx(history["val_accuracy"][-1])
    assert all(s > 0 for s in history["seconds"])
    assert history["steps"][-1] == 15 * int(np.ceil(len(x) / 32))  # the last partial batch is a step


def test_every_epoch_sees_every_sample_once(monkeypatch):
    seen = []

    class Recorder(hg.optim.SGD):
        pass

    x = np.arange(10, dtype=np.float64)[:, None] * np.ones((1, 2))
    t = np.zeros(10, dtype=np.int64)
    model = hg.mlp(2, [], 2, seed=0, dtype=np.float64)
    original = model.predict

    def spy(xb):
        seen.append(xb[:, 0].astype(int).tolist())
        return original(xb)

    monkeypatch.setattr(model, "predict", spy)
    hg.fit(model, Recorder(lr=0.0), (x, t), epochs=2, batch_size=4, seed=3)
    assert [len(b) for b in seen] == [4, 4, 2, 4, 4, 2]
    first, second = sum(seen[:3], []), sum(seen[3:], [])
    assert sorted(first) == sorted(second) == list(range(10))
    assert first != second  # a fresh permutation each epoch


def test_same_seed_gives_bitwise_identical_weights(digits):
    (x, t), _ = digits
    runs = []
    for _ in range(2):
        model = hg.mlp(64, [32], 10, seed=5)
        hg.fit(model, hg.optim.Adam(), (x, t), epochs=2, batch_size=50, seed=9)
        runs.append(weights(model))
    assert_same_weights(*runs)
    other = hg.mlp(64, [32], 10, seed=5)
    hg.fit(other, hg.optim.Adam(), (x, t), epochs=2, batch_size=50, seed=10)
    assert not np.array_equal(other.params["0.W"], runs[0]["0.W"])


def test_evaluation_runs_in_eval_mode_and_training_resumes_in_train_mode(digits):
    (x, t), (x_test, t_test) = digits
    modes = []

    class ModeSpy(hg.layers.Relu):
        def forward(self, x):
            modes.append(self.training)
            return super().forward(x)

    model = hg.mlp(64, [16], 10, seed=0)
    model.layers[1] = ModeSpy()
    hg.fit(model, hg.optim.SGD(lr=0.1), (x[:100], t[:100]), val=(x_test[:50], t_test[:50]), epochs=2, batch_size=100)
    assert modes == [True, False, True, False]


def test_max_steps_stops_mid_epoch(digits):
    (x, t), _ = digits
    history = hg.fit(hg.mlp(64, [8], 10, seed=0), hg.optim.SGD(lr=0.1), (x, t), epochs=10, batch_size=100, max_steps=20)
    assert history["steps"] == [15, 20] and len(history) == 2


@pytest.mark.filterwarnings("ignore:overflow encountered", "ignore:invalid value encountered")
def test_nan_loss_stops_with_epoch_and_step_and_keeps_good_weights(digits):
    (x, t), _ = digits
    model = hg.mlp(64, [32], 10, seed=0)
    before = weights(model)
    with pytest.raises(TrainingDiverged, match=r"loss became (nan|inf) at epoch 1, step \d+ \(lr 1e\+30\)"):
        hg.fit(model, hg.optim.SGD(lr=1e30), (x, t), epochs=3, batch_size=32)
    assert_same_weights(weights(model), before)  # the start of epoch 1: the last good weights
    assert all(np.isfinite(v).all() for v in model.params.values())


def test_early_stopping_restores_the_best_weights(digits):
    (x, t), (x_test, t_test) = digits
    model = hg.mlp(64, [100], 10, seed=0)
    snapshots = []
    history = hg.fit(model, hg.optim.Adam(lr=1e-2), (x[:300], t[:300]), val=(x_test, t_test), epochs=60,
                     batch_size=16, early_stopping=3, log=lambda record: snapshots.append(weights(model)))
    best = int(np.argmin(history["val_loss"])) + 1
    assert history.best_epoch == best and len(history) == best + 3 < 60
    assert_same_weights(weights(model), snapshots[best - 1])


def test_early_stopping_without_validation_is_refused():
    with pytest.raises(ValueError, match="early_stopping needs validation data"):
        hg.fit(hg.mlp(2, [], 2), hg.optim.SGD(), (np.zeros((2, 2)), np.zeros(2, int)), early_stopping=2)


@pytest.mark.parametrize("optimizer", [lambda: hg.optim.Adam(lr=3e-3), lambda: hg.optim.Momentum(lr=0.05)])
def test_interrupted_and_resumed_equals_uninterrupted_bit_for_bit(digits, tmp_path, optimizer):
    (x, t), (x_test, t_test) = digits
    kwargs = dict(val=(x_test, t_test), batch_size=64, seed=4, early_stopping=10)

    straight = hg.mlp(64, [32], 10, seed=1)
    opt = optimizer()
    straight_history = hg.fit(straight, opt, (x, t), epochs=5, scheduler=hg.optim.StepLR(opt, 2, 0.5), **kwargs)

    first = hg.mlp(64, [32], 10, seed=1)
    opt = optimizer()
    hg.fit(first, opt, (x, t), epochs=2, scheduler=hg.optim.StepLR(opt, 2, 0.5),
           checkpoint=tmp_path / "ckpt.safetensors", checkpoint_every=1, **kwargs)
    # A new process: fresh model (other init) and optimizer, same command.
    resumed = hg.mlp(64, [32], 10, seed=99)
    opt = optimizer()
    resumed_history = hg.fit(resumed, opt, (x, t), epochs=5, scheduler=hg.optim.StepLR(opt, 2, 0.5),
                             checkpoint=tmp_path / "ckpt.safetensors", checkpoint_every=1, resume=True, **kwargs)
    assert_same_weights(weights(resumed), weights(straight))
    assert resumed_history["val_loss"] == straight_history["val_loss"]
    assert resumed_history["lr"] == straight_history["lr"]
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.safetensors"]  # no temporary files left


def test_a_schedule_is_a_pure_function_of_the_epoch_and_equals_torchs_stepped_scheduler(digits):
    """fit(schedule=) reads lr_at(epoch) and keeps no schedule state; the torch-style object
    stepped after every epoch (scheduler=, the old spelling) trains the very same run."""
    (x, t), _ = digits
    pure = hg.mlp(64, [16], 10, seed=1)
    pure_history = hg.fit(pure, hg.optim.SGD(lr=0.2), (x, t), epochs=5, batch_size=128,
                          schedule=hg.optim.StepLR(0.2, step_size=2, gamma=0.5))
    stepped = hg.mlp(64, [16], 10, seed=1)
    opt = hg.optim.SGD(lr=0.2)
    stepped_history = hg.fit(stepped, opt, (x, t), epochs=5, batch_size=128, scheduler=hg.optim.StepLR(opt, 2, 0.5))
    assert pure_history["lr"] == [0.2, 0.2, 0.1, 0.1, 0.05]
    assert stepped_history["lr"] == pure_history["lr"]
    assert_same_weights(weights(pure), weights(stepped))
    with pytest.raises(ValueError, match="give schedule= .* not both"):
        hg.fit(pure, opt, (x, t), epochs=1, schedule=hg.optim.StepLR(0.1, 2), scheduler=hg.optim.StepLR(0.1, 2))
    with pytest.raises(TypeError, match="made from a number"):
        hg.optim.StepLR(0.1, 2).step()


def test_resume_refuses_a_checkpoint_of_another_architecture(digits, tmp_path):
    (x, t), _ = digits
    hg.fit(hg.mlp(64, [8], 10, seed=0), hg.optim.SGD(), (x, t), epochs=1, checkpoint=tmp_path / "c", checkpoint_every=1)
    with pytest.raises(ValueError, match="different architecture"):
        hg.fit(hg.mlp(64, [9], 10, seed=0), hg.optim.SGD(), (x, t), epochs=2, checkpoint=tmp_path / "c", resume=True)


def test_two_layer_net_trains_with_the_books_loop(digits):
    (x, t), (x_test, t_test) = digits
    net = hg.TwoLayerNet(64, 50, 10, weight_init_std=0.1, seed=0)
    optimizer = hg.optim.SGD(lr=0.1)
    rng = np.random.default_rng(0)
    for _ in range(1500):
        batch = rng.choice(len(x), 100, replace=False)
        optimizer.update(net.params, net.gradient(x[batch], t[batch]))
    assert net.accuracy(x_test, t_test) > 0.93


def test_confusion_matrix_counts_true_against_predicted():
    from handgrad.train import confusion_matrix

    matrix = confusion_matrix(np.array([0, 1, 2, 2, 1]), np.array([0, 2, 2, 2, 1]))
    np.testing.assert_array_equal(matrix, [[1, 0, 0], [0, 1, 1], [0, 0, 2]])


# --- refusing what would not train as asked ----------------------------------------------------------


def tiny_data():
    return np.zeros((4, 2)), np.zeros(4, dtype=np.int64)


@pytest.mark.parametrize("kwargs, message", [
    (dict(epochs=2.5), "epochs must be an integer >= 0, got 2.5"),
    (dict(epochs=True), "epochs must be an integer >= 0, got True"),
    (dict(batch_size=0), "batch_size must be an integer >= 1, got 0"),
    (dict(max_steps=-5), "max_steps must be an integer >= 1, got -5"),
    (dict(early_stopping=-1, val=tiny_data()), "early_stopping must be an integer >= 1, got -1"),
    (dict(checkpoint_every=-1), "checkpoint_every must be an integer >= 0, got -1"),
])
def test_counts_that_are_not_whole_or_not_positive_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        hg.fit(hg.mlp(2, [], 2), hg.optim.SGD(), tiny_data(), **kwargs)


@pytest.mark.parametrize("where", ["train", "val"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_inputs_are_refused_before_training(where, bad):
    x, t = np.zeros((5, 2)), np.zeros(5, dtype=np.int64)
    x_bad = x.copy()
    x_bad[3, 1] = bad
    train, val = ((x_bad, t), (x, t)) if where == "train" else ((x, t), (x_bad, t))
    what = "training" if where == "train" else "validation"
    with pytest.raises(ValueError, match=f"{what} inputs contain NaN or infinity \\(1 samples, the first at index 3\\)"):
        hg.fit(hg.mlp(2, [], 2), hg.optim.SGD(), train, val=val, epochs=1)


def test_an_empty_validation_set_is_refused():
    with pytest.raises(ValueError, match="the validation set is empty"):
        hg.fit(hg.mlp(2, [], 2), hg.optim.SGD(), tiny_data(), val=(np.zeros((0, 2)), np.zeros(0, int)), epochs=1)
    with pytest.raises(ValueError, match="no samples to evaluate"):
        hg.train.evaluate(hg.mlp(2, [], 2), np.zeros((0, 2)), np.zeros(0, int))


@pytest.fixture
def checkpointed(digits, tmp_path):
    """A 2-epoch run with a checkpoint: Adam 1e-3, batch 64, seed 0, cosine over 4 epochs."""
    (x, t), _ = digits
    path = tmp_path / "ckpt.safetensors"

    def run(epochs=4, lr=1e-3, batch_size=64, seed=0, cosine_epochs=4, optimizer=hg.optim.Adam, resume=False):
        opt = optimizer(lr=lr)
        scheduler = hg.optim.CosineAnnealingLR(opt, cosine_epochs) if cosine_epochs else None
        return hg.fit(hg.mlp(64, [16], 10, seed=0), opt, (x, t), epochs=epochs, batch_size=batch_size, seed=seed,
                      scheduler=scheduler, checkpoint=path, checkpoint_every=1, resume=resume)

    run(epochs=2)
    return run


@pytest.mark.parametrize("change, message", [
    (dict(lr=0.5), r"optimizer Adam\(.*lr=0.001.*\) in the checkpoint, Adam\(.*lr=0.5.*\) now"),
    (dict(batch_size=32), "batch_size 64 in the checkpoint, 32 now"),
    (dict(seed=1), "seed 0 in the checkpoint, 1 now"),
    (dict(cosine_epochs=None), r"scheduler CosineAnnealingLR\(.*\) in the checkpoint, None now"),
    (dict(cosine_epochs=8), "T_max=4.* in the checkpoint, .*T_max=8"),
    (dict(optimizer=hg.optim.AdamW), r"Adam\(.*\) in the checkpoint, AdamW\(.*\) now"),
])
def test_resuming_with_other_settings_is_refused(checkpointed, change, message):
    with pytest.raises(hg.train.ResumeMismatch, match=message):
        checkpointed(resume=True, **change)


def test_resuming_asking_for_fewer_epochs_than_done_is_refused(checkpointed):
    with pytest.raises(hg.train.ResumeMismatch, match="already trained 2 epochs; epochs=1 asks for fewer"):
        checkpointed(resume=True, epochs=1)


def test_resuming_with_the_same_settings_continues(checkpointed):
    history = checkpointed(resume=True)
    assert history["epoch"] == [1, 2, 3, 4]


def test_a_run_that_stopped_early_stays_stopped_when_resumed(digits, tmp_path):
    (x, t), (x_test, t_test) = digits
    kwargs = dict(val=(x_test, t_test), batch_size=16, seed=0, early_stopping=2, checkpoint=tmp_path / "c",
                  checkpoint_every=1)
    model = hg.mlp(64, [100], 10, seed=0)
    first = hg.fit(model, hg.optim.Adam(lr=3e-2), (x[:300], t[:300]), epochs=60, **kwargs)
    assert len(first) < 60
    again = hg.mlp(64, [100], 10, seed=0)
    second = hg.fit(again, hg.optim.Adam(lr=3e-2), (x[:300], t[:300]), epochs=60, resume=True, **kwargs)
    assert second["epoch"] == first["epoch"] and second.best_epoch == first.best_epoch
    assert_same_weights(weights(again), weights(model))


@pytest.mark.parametrize("edit", [
    lambda meta: meta.pop("training"),
    lambda meta: meta.update(training="[]"),
    lambda meta: meta.update(training=json.dumps({"state": {"epoch": "two"}})),
])
def test_a_checkpoint_with_malformed_training_state_is_refused_naming_the_file(checkpointed, tmp_path, edit):
    from handgrad import serialize

    path = tmp_path / "ckpt.safetensors"
    tensors, meta = serialize.read_safetensors(path)
    meta = {k: v for k, v in meta.items() if not k.startswith("handgrad_")}  # rewritten with a fresh digest
    edit(meta)
    serialize.write_safetensors(path, tensors, meta)
    with pytest.raises(serialize.SerializationError, match=f"{path}: checkpoint"):
        checkpointed(resume=True)


@pytest.mark.parametrize("samples, batch_size, expected", [
    (7, 3, "the last batch of each epoch holds 1 sample (7 = 2 x 3 + 1)"),
    (8, 1, "a batch size of 1 gives batches of 1 sample"),
])
def test_fit_refuses_batchnorm_batches_of_one_sample_before_the_first_step(samples, batch_size, expected):
    """`train --batchnorm --batch-size 3` on 1438 digits once stopped at the end of the first
    epoch (a last batch of 1 sample has no variance), having saved nothing."""
    model = hg.mlp(4, [5], 3, batchnorm=True, seed=0)
    before = {name: value.copy() for name, value in model.params.items()}
    x, t = np.random.default_rng(0).normal(size=(samples, 4)).astype(np.float32), np.arange(samples) % 3
    with pytest.raises(ValueError, match=r"layer 1: BatchNorm needs at least 2 samples per batch") as error:
        hg.fit(model, hg.optim.SGD(lr=0.1), (x, t), epochs=1, batch_size=batch_size)
    assert expected in str(error.value)
    assert all(np.array_equal(model.params[name], value) for name, value in before.items())
    hg.fit(model, hg.optim.SGD(lr=0.1), (x[:6], t[:6]), epochs=1, batch_size=3)  # batches of 3 and 3 are fine


def _CtrlCAt(optimizer, at: int, times: int = 1):
    """``optimizer``, pressing Ctrl-C (SIGINT to this process) during its update number ``at``
    (``times`` times: a second press must stop at once); ``optimizer.update.calls`` counts the
    updates. The same type and settings, so that a checkpoint it wrote resumes with a plain one."""
    import os
    import signal

    update = optimizer.update

    def pressing(params, grads):
        pressing.calls += 1
        if pressing.calls == at:
            for _ in range(times):
                os.kill(os.getpid(), signal.SIGINT)
        update(params, grads)

    pressing.calls = 0
    optimizer.update = pressing
    return optimizer


@pytest.mark.parametrize("interrupt_at", [3, 23 + 5, 23 * 2])  # mid-epoch 1, mid-epoch 2, the last step of epoch 2
def test_ctrl_c_stops_after_the_step_saves_it_and_the_run_resumes_exactly(digits, tmp_path, interrupt_at):
    """Ctrl-C threw away finished epochs: the run stopped, nothing was saved. Now the step in
    progress finishes, the run so far is written, and resuming continues bit for bit."""
    (x, t), (x_test, t_test) = digits
    kwargs = dict(val=(x_test, t_test), batch_size=64, seed=4, epochs=4, schedule=hg.optim.StepLR(3e-3, 2, 0.5))
    straight = hg.mlp(64, [32], 10, dropout=0.2, seed=1)
    straight_history = hg.fit(straight, hg.optim.Adam(lr=3e-3), (x, t), **kwargs)

    path = tmp_path / "ckpt.safetensors"
    first = hg.mlp(64, [32], 10, dropout=0.2, seed=1)
    pressing = _CtrlCAt(hg.optim.Adam(lr=3e-3), at=interrupt_at)
    with pytest.raises(hg.train.TrainingInterrupted) as stopped:
        hg.fit(first, pressing, (x, t), checkpoint=path, **kwargs)  # checkpoint_every=0: only on Ctrl-C
    assert pressing.update.calls == interrupt_at  # it finished the step it was in, and took no other
    epoch, step = divmod(interrupt_at - 1, 23)
    assert stopped.value.where == f"epoch {epoch + 1}, step {step + 1} of 23" and stopped.value.checkpoint == path

    resumed = hg.mlp(64, [32], 10, dropout=0.2, seed=99)
    resumed_history = hg.fit(resumed, hg.optim.Adam(lr=3e-3), (x, t), checkpoint=path, resume=True, **kwargs)
    assert_same_weights(weights(resumed), weights(straight))
    assert resumed_history["train_loss"] == straight_history["train_loss"]
    assert resumed_history["val_loss"] == straight_history["val_loss"]
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.safetensors"]


def test_a_second_ctrl_c_stops_at_once(digits, tmp_path):
    (x, t), _ = digits
    pressing = _CtrlCAt(hg.optim.SGD(lr=0.1), at=2, times=2)
    with pytest.raises(KeyboardInterrupt) as stopped:
        hg.fit(hg.mlp(64, [8], 10, seed=0), pressing, (x, t), epochs=2, checkpoint=tmp_path / "c.safetensors")
    assert not isinstance(stopped.value, hg.train.TrainingInterrupted)
    assert not (tmp_path / "c.safetensors").exists()
    import signal
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # fit put the handler back


# --- augmentation of the training batches ---------------------------------------------------------


def _recording_jitter(calls):
    """An augmentation adding noise drawn from ``rng``; records each batch and a draw of its rng."""
    def jitter(xb, rng):
        calls.append((xb.copy(), rng.bit_generator.state["state"]["state"]))
        return xb + rng.normal(0.0, 0.05, xb.shape).astype(xb.dtype)
    return jitter


def test_augment_warps_every_training_batch_with_a_generator_seeded_by_seed_and_step(digits):
    (x, t), (x_test, t_test) = digits
    calls = []
    model = hg.mlp(64, [16], 10, seed=0)
    hg.fit(model, hg.optim.SGD(lr=0.1), (x, t), val=(x_test, t_test), epochs=2, batch_size=500, seed=7,
           augment=_recording_jitter(calls), progress=False)
    steps = 2 * int(np.ceil(len(x) / 500))
    assert len(calls) == steps                                    # the training batches only, never validation
    assert [len(xb) for xb, _ in calls] == [500, 500, 438] * 2
    expected = [np.random.default_rng([7, step]).bit_generator.state["state"]["state"] for step in range(1, steps + 1)]
    assert [state for _, state in calls] == expected


def test_an_augmented_run_interrupted_and_resumed_equals_the_uninterrupted_one(digits, tmp_path):
    (x, t), _ = digits
    kwargs = dict(batch_size=64, seed=4, epochs=3, augment=warp_digits, progress=False)
    straight = hg.mlp(64, [32], 10, seed=1)
    straight_history = hg.fit(straight, hg.optim.Adam(lr=3e-3), (x, t), **kwargs)
    path = tmp_path / "ckpt.safetensors"
    first = hg.mlp(64, [32], 10, seed=1)
    with pytest.raises(hg.train.TrainingInterrupted):
        hg.fit(first, _CtrlCAt(hg.optim.Adam(lr=3e-3), at=30), (x, t), checkpoint=path, **kwargs)
    resumed = hg.mlp(64, [32], 10, seed=99)
    resumed_history = hg.fit(resumed, hg.optim.Adam(lr=3e-3), (x, t), checkpoint=path, resume=True, **kwargs)
    assert_same_weights(weights(resumed), weights(straight))
    assert resumed_history["train_loss"] == straight_history["train_loss"]
    with pytest.raises(ValueError, match="augment"):  # resuming without the augmentation is another run
        hg.fit(hg.mlp(64, [32], 10, seed=1), hg.optim.Adam(lr=3e-3), (x, t), checkpoint=path, resume=True,
               **(kwargs | {"augment": None}))


@pytest.mark.parametrize("augment, message", [
    ("warp", "augment must be a function"),
    (lambda xb, rng: xb[:, :10], r"augment must return the batch's shape \(32, 64\), got \(32, 10\)"),
    (lambda xb, rng: None, "augment must return the batch's shape .* got NoneType"),
])
def test_an_augmentation_that_is_no_function_or_changes_the_shape_is_refused_in_one_line(digits, augment, message):
    (x, t), _ = digits
    with pytest.raises(ValueError, match=message):
        hg.fit(hg.mlp(64, [8], 10), hg.optim.SGD(), (x, t), epochs=1, batch_size=32, augment=augment, progress=False)


def test_evaluate_weighs_each_batch_by_the_targets_its_loss_counted():
    """Words padded with the ignore index: evaluate weighed each batch's mean loss by its number
    of words, so the loss over a split depended on how it was cut into batches. Now it is the mean
    over every counted character, the same for any batch size; a split of ignored targets only
    has no mean (nan), not 0."""
    from handgrad.model.makemore import bigram

    model = bigram(5, seed=0, dtype=np.float64)
    model.params["0.W"][...] = np.random.default_rng(2).standard_normal((5, 5))
    x = np.array([[0, 1, 2, 3], [0, 4, 0, 0], [0, 2, 0, 0], [0, 3, 1, 4], [0, 1, 0, 0]])
    t = np.array([[1, 2, 3, 0], [4, 0, -100, -100], [2, 0, -100, -100], [3, 1, 4, 0], [1, 0, -100, -100]])
    whole = hg.train.evaluate(model, x, t, batch_size=len(x))[0]
    logits = model.params["0.W"][x]
    log_p = logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))
    counted = t != -100
    exact = -np.take_along_axis(log_p, np.where(counted, t, 0)[..., None], axis=-1)[..., 0][counted].mean()
    assert whole == pytest.approx(exact, rel=1e-12)
    for batch_size in (1, 2, 3):  # batches of 4 + 2 + 2 ... characters
        assert hg.train.evaluate(model, x, t, batch_size=batch_size)[0] == pytest.approx(exact, rel=1e-12)
    assert np.isnan(hg.train.evaluate(model, x[:1], np.full((1, 4), -100))[0])
