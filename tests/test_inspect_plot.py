"""trace: numbers checked against values computed here; warnings; pictures: real, non-blank PNGs."""

import json

import numpy as np
import pytest

import handgrad as hg
from handgrad.cli import main
from handgrad.registry import DIGITS_MLP
from handgrad.inspect import trace
from handgrad.layers import Affine, Relu, Sigmoid


def small_model():
    W1 = np.array([[1.0, -2.0, 0.5], [0.5, 1.0, -1.0]])
    W2 = np.array([[1.0, 0.0], [-1.0, 2.0], [0.5, 0.5]])
    return hg.Sequential([Affine(W1, np.array([0.1, 0.0, -0.2])), Relu(), Affine(W2, np.array([0.0, 0.3]))])


def test_trace_values_match_an_independent_computation():
    model = small_model()
    x, t = np.array([[1.0, 0.5], [-0.5, 2.0], [0.3, -0.1]]), np.array([0, 1, 1])
    W1, b1 = model.layers[0].W.copy(), model.layers[0].b.copy()
    W2, b2 = model.layers[2].W.copy(), model.layers[2].b.copy()
    a1 = x @ W1 + b1
    h = np.maximum(a1, 0)
    s = h @ W2 + b2
    p = np.exp(s - s.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    ds = (p - np.eye(2)[t]) / 3
    dh = ds @ W2.T
    da1 = dh * (a1 > 0)
    result = trace(model, x, t, lr=0.1)
    assert result.loss == pytest.approx(-np.mean(np.log(p[np.arange(3), t])), rel=1e-12)
    r0, r1, r2 = result.layers
    np.testing.assert_allclose(r0.values["output"], a1, rtol=1e-12)
    np.testing.assert_allclose(r2.values["grad_output"], ds, rtol=1e-12)
    np.testing.assert_allclose(r1.values["grad_input"], da1, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(r0.values["dW"], x.T @ da1, rtol=1e-12, atol=1e-15)
    assert r1.output["mean"] == pytest.approx(h.mean()) and r1.output["max"] == pytest.approx(h.max())
    assert r2.grad_output["std"] == pytest.approx(ds.std())
    dead = np.mean(np.all(h <= 0, axis=0))
    assert r1.dead_fraction == pytest.approx(dead)
    dW2 = h.T @ ds
    assert r2.params["W"]["grad_norm"] == pytest.approx(np.linalg.norm(dW2))
    assert r2.params["W"]["update_ratio"] == pytest.approx(0.1 * np.linalg.norm(dW2) / np.linalg.norm(W2))
    # The trace leaves the model's weights alone and its grads as after one backward.
    np.testing.assert_array_equal(model.layers[0].W, W1)
    np.testing.assert_allclose(model.layers[2].dW, dW2, rtol=1e-12)
    json.dumps(result.to_dict())  # JSON-able
    assert "dead" in result.format_text() and "warnings" in result.format_text()


def test_trace_warns_about_what_looks_wrong():
    # Dead ReLUs: every pre-activation negative.
    dead = hg.Sequential([Affine(-np.ones((2, 4)), -np.ones(4)), Relu(), Affine(np.ones((4, 2)), np.zeros(2))])
    warnings = trace(dead, np.ones((3, 2)), np.array([0, 1, 0])).warnings
    assert any("100% of units are dead" in w for w in warnings)
    # Saturated sigmoids: large weights.
    rng = np.random.default_rng(0)
    x, t = rng.standard_normal((8, 20)), rng.integers(0, 3, 8)
    layers = []
    for _ in range(6):
        layers += [Affine(rng.standard_normal((20, 20)) * 5, np.zeros(20)), Sigmoid()]
    layers.append(Affine(rng.standard_normal((20, 3)), np.zeros(3)))
    assert any("saturated" in w and "Sigmoid" in w for w in trace(hg.Sequential(layers), x, t).warnings)
    # Vanishing gradients: a deep sigmoid net initialised with std 0.01 (the book's chapter 6).
    model = hg.mlp(20, [20] * 5, 3, activation="sigmoid", init=0.01, seed=0, dtype=np.float64)
    assert any(w.startswith("vanishing gradients") for w in trace(model, x, t).warnings)
    # NaN in the input.
    x = np.ones((2, 2))
    x[0, 0] = np.nan
    with np.errstate(invalid="ignore"):
        warnings = trace(small_model(), x, np.array([0, 1])).warnings
    assert any("NaN" in w for w in warnings) and any("loss is nan" in w for w in warnings)
    # Exploding gradients.
    huge = hg.Sequential([Affine(np.full((2, 2), 1e4), np.zeros(2)), Relu(), Affine(np.full((2, 2), 1e4), np.zeros(2))])
    assert any("exploding" in w for w in trace(huge, np.array([[1.0, 1.0]]), np.array([0])).warnings)


def test_walkthrough_is_a_trace():
    from handgrad.walkthrough import walkthrough

    example = walkthrough()["tutorial_example"]
    assert any("softmax saturated" in w for w in example["trace_warnings"])


def png_pixels(path):
    Image = pytest.importorskip("PIL.Image")
    with Image.open(path) as image:
        assert image.format == "PNG"
        return np.asarray(image.convert("L"), dtype=np.float64)


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    pytest.importorskip("matplotlib")
    out = tmp_path_factory.mktemp("plots")
    assert main(["train", "--epochs", "3", "--plot", "--out", str(out)]) == 0
    return out


def test_train_plot_writes_training_curves(saved):
    pixels = png_pixels(saved / "curves.png")
    assert pixels.shape[0] > 200 and pixels.shape[1] > 400
    assert pixels.std() > 10  # not blank


@pytest.mark.parametrize("what", ["confusion", "mistakes", "weights", "activations"])
def test_plot_command_writes_each_picture(saved, tmp_path, what, capsys):
    out = tmp_path / f"{what}.png"
    assert main(["plot", str(saved / "model.safetensors"), "--what", what, "--out", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    pixels = png_pixels(out)
    assert min(pixels.shape) > 150 and pixels.std() > 10
    assert [p.name for p in tmp_path.iterdir()] == [out.name]  # written atomically, nothing left over


def test_convnet_weights_are_pictured(tmp_path):
    pytest.importorskip("matplotlib")
    from handgrad import plot

    model = hg.model.SimpleConvNet(input_dim=(1, 8, 8), filter_num=6, filter_size=3, seed=0)
    pixels = png_pixels(plot.first_layer_weights(model, tmp_path / "filters.png"))
    assert pixels.std() > 10


def test_trace_command_text_and_json(saved, capsys):
    assert main(["trace", str(saved / "model.safetensors"), "--samples", "4"]) == 0
    text = capsys.readouterr().out
    assert "forward (loss" in text and "backward" in text and "1 Relu" in text
    assert main(["trace", str(saved / "model.safetensors"), "--samples", "4", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["layers"][0]["output"]["shape"] == [4, DIGITS_MLP["hidden"][0]]  # `handgrad train`'s default width


def test_without_matplotlib_the_message_names_the_extra(saved, monkeypatch, capsys):
    import builtins

    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    assert main(["plot", str(saved / "model.safetensors")]) == 1
    assert "pip install 'handgrad[plot]'" in capsys.readouterr().err


def test_readme_trace_is_what_trace_prints():
    from pathlib import Path

    from handgrad.walkthrough import TUTORIAL_T, TUTORIAL_X, UNSATURATED_X, tutorial_network

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for x in (TUTORIAL_X, UNSATURATED_X):
        text = trace(tutorial_network(), np.array(x), np.array(TUTORIAL_T), lr=0.1).format_text()
        assert text in readme


# --- layers are recognised by type; the model's public methods are used ---------------------------


class ShiftedRelu(Relu):
    """A Relu by type under another name: trace and plot must still treat it as a Relu."""


def test_trace_recognises_activation_layers_by_type_not_by_name():
    model = hg.Sequential([Affine(-np.ones((2, 3)), -np.ones(3)), ShiftedRelu(), Affine(np.ones((3, 2)), np.zeros(2))])
    record = trace(model, np.ones((4, 2)), np.array([0, 1, 0, 1])).layers[1]
    assert record.name == "ShiftedRelu" and record.dead_fraction == 1.0


def test_trace_with_weight_decay_leaves_the_gradients_backward_leaves():
    rng = np.random.default_rng(0)
    x, t = rng.standard_normal((5, 4)), rng.integers(0, 3, 5)
    model = hg.mlp(4, [6], 3, seed=0, dtype=np.float64, weight_decay=0.3)
    model.eval()
    expected_loss = model.loss(x, t)
    model.backward()
    expected = {k: v.copy() for k, v in model.grads.items()}
    result = trace(model, x, t)
    assert result.loss == pytest.approx(expected_loss, rel=1e-14)
    for key, grad in model.grads.items():
        np.testing.assert_allclose(grad, expected[key], rtol=1e-14, atol=0, err_msg=key)
    # The objective splits into the data loss (what fit and evaluate report) and the penalty.
    data_loss, _ = hg.train.evaluate(model, x, t)
    assert result.data_loss == pytest.approx(data_loss, rel=1e-12)
    assert result.penalty == pytest.approx(model.weight_penalty(), rel=1e-14) and result.penalty > 0
    assert f"= data {data_loss:.6g} + L2 penalty {result.penalty:.6g}" in result.format_text().splitlines()[0]


def test_trace_names_the_layer_and_refuses_what_it_cannot_trace():
    with pytest.raises(ValueError, match=r"layer 0: Affine: expected input of shape \(N, 2\)"):
        trace(small_model(), np.ones((3, 5)), np.array([0, 1, 0]))
    with pytest.raises(ValueError, match="trace: expected a batch of at least one sample"):
        trace(small_model(), np.ones((0, 2)), np.zeros(0, int))
    with pytest.raises(TypeError, match="trace: expected a handgrad Sequential model, got list"):
        trace([Affine(np.eye(2), np.zeros(2))], np.ones((1, 2)), np.array([0]))


# --- pictures: paths, permissions, titles, layout --------------------------------------------------


@pytest.fixture
def plot_module():
    pytest.importorskip("matplotlib")
    from handgrad import plot

    return plot


def every_picture(plot, path):
    """Each plot function, drawing into `path`, on a small model."""
    model = hg.mlp(4, [9], 3, seed=0)
    x, t = np.random.default_rng(0).standard_normal((6, 4)).astype(np.float32), np.array([0, 1, 2, 0, 1, 2])
    history = {"epoch": [1, 2], "train_loss": [1.0, 0.5], "val_loss": [None, None],
               "train_accuracy": [0.5, 0.7], "val_accuracy": [None, None]}
    return {
        "training_curves": lambda: plot.training_curves(history, path),
        "confusion": lambda: plot.confusion(model, x, t, path),
        "mistakes": lambda: plot.mistakes(model, x, t, path, (2, 2)),
        "first_layer_weights": lambda: plot.first_layer_weights(model, path),
        "activations": lambda: plot.activations(model, x, path),
    }


@pytest.mark.parametrize("what", ["training_curves", "confusion", "mistakes", "first_layer_weights", "activations"])
def test_every_picture_refuses_an_output_path_that_is_a_folder(plot_module, tmp_path, what):
    folder = tmp_path / "pictures"
    folder.mkdir()
    with pytest.raises(ValueError, match=f"{what}: output path {folder} is a folder; give a file name"):
        every_picture(plot_module, folder)[what]()
    assert list(folder.iterdir()) == []
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match=f"{what}: cannot write {tmp_path / 'file' / 'x.png'}: "
                                         f"{tmp_path / 'file'} is a file, not a folder"):
        every_picture(plot_module, tmp_path / "file" / "x.png")[what]()


@pytest.mark.parametrize("what", ["training_curves", "confusion", "mistakes", "first_layer_weights", "activations"])
@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_every_picture_is_written_atomically_with_the_umasks_permissions(plot_module, tmp_path, what, umask, mode):
    import os
    import stat

    old = os.umask(umask)
    try:
        path = every_picture(plot_module, tmp_path / "out" / "picture.png")[what]()
    finally:
        os.umask(old)
    assert path == tmp_path / "out" / "picture.png"
    assert stat.S_IMODE(path.stat().st_mode) == mode
    assert [p.name for p in path.parent.iterdir()] == ["picture.png"]  # no temporary file left
    assert png_pixels(path).std() > 1


def test_mistakes_refuses_data_that_are_not_images(plot_module, tmp_path):
    # mnist1d: signals of 40 values; the command guessed a 6 x 6 image and reshape failed.
    rng = np.random.default_rng(0)
    model = hg.mlp(40, [8], 10, seed=0)
    x, t = rng.standard_normal((20, 40)).astype(np.float32), rng.integers(0, 10, 20)
    for image_shape in [(6, 6), (40,), (1, 40), (2, 4, 5)]:
        with pytest.raises(ValueError, match=r"mistakes: pictures of mistakes need image data .*"
                                             r"samples of 40 values do not form images of shape"):
            plot_module.mistakes(model, x, t, tmp_path / "m.png", image_shape)
    assert not (tmp_path / "m.png").exists()
    # 40 values that are images (5 x 8) are fine.
    assert png_pixels(plot_module.mistakes(model, x, t, tmp_path / "m.png", (5, 8))).std() > 1


def saved_figures(monkeypatch, plot):
    """Record each figure (drawn, so its layout is final) as plot saves it."""
    figures = []
    real_save = plot._save

    def record(fig, path):
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        figures.append({"suptitle": fig._suptitle.get_text(),
                        "suptitle_box": fig._suptitle.get_window_extent(renderer),
                        "axes_boxes": [ax.get_tightbbox(renderer) for ax in fig.axes if ax.get_visible()]})
        return real_save(fig, path)

    monkeypatch.setattr(plot, "_save", record)
    return figures


def test_weights_title_says_how_many_units_are_shown(plot_module, monkeypatch, tmp_path):
    figures = saved_figures(monkeypatch, plot_module)
    plot_module.first_layer_weights(hg.mlp(64, [100], 10, seed=0), tmp_path / "a.png")
    plot_module.first_layer_weights(hg.mlp(64, [10], 10, seed=0), tmp_path / "b.png")
    plot_module.first_layer_weights(hg.mlp(64, [100], 10, seed=0), tmp_path / "c.png", max_units=100)
    conv = hg.model.SimpleConvNet(input_dim=(3, 8, 8), filter_num=6, filter_size=3, seed=0)
    plot_module.first_layer_weights(conv, tmp_path / "d.png")
    titles = [figure["suptitle"] for figure in figures]
    assert titles[0].startswith("layer 0 Affine weights, first 64 of 100 units")
    assert titles[1].startswith("layer 0 Affine weights, all 10 units")
    assert titles[2].startswith("layer 0 Affine weights, all 100 units")
    assert titles[3].startswith("layer 0 Convolution weights, all 6 filters (input channel 0 of 3)")


def test_weights_picture_takes_the_first_weighted_layer_by_type_and_names_its_index(plot_module, monkeypatch,
                                                                                     tmp_path):
    figures = saved_figures(monkeypatch, plot_module)
    model = hg.Sequential([hg.layers.Flatten(), Affine(np.ones((16, 3)), np.zeros(3))], input_shape=(1, 4, 4))
    plot_module.first_layer_weights(model, tmp_path / "w.png")
    assert figures[0]["suptitle"].startswith("layer 1 Affine weights, all 3 units")
    with pytest.raises(ValueError, match="first_layer_weights: the model has no Affine or Convolution layer"):
        plot_module.first_layer_weights(hg.Sequential([Relu()]), tmp_path / "x.png")


@pytest.mark.parametrize("hidden", [[16], [16, 16, 16]])
def test_activations_title_does_not_overlap_the_panels(plot_module, monkeypatch, tmp_path, hidden):
    figures = saved_figures(monkeypatch, plot_module)
    model = hg.mlp(4, hidden, 3, activation="sigmoid", seed=0)
    model.layers[1] = ShiftedRelu()  # picked by type, whatever its name
    x = np.random.default_rng(0).standard_normal((50, 4)).astype(np.float32)
    plot_module.activations(model, x, tmp_path / "a.png")
    (figure,) = figures
    assert len(figure["axes_boxes"]) == len(hidden)
    assert figure["suptitle"] == "activation distributions on 50 samples"
    for box in figure["axes_boxes"]:  # panel boxes include their own titles
        assert figure["suptitle_box"].y0 >= box.y1


def test_weights_of_a_model_on_signals_are_drawn_as_curves(plot_module, monkeypatch, tmp_path):
    # mnist1d: 40 inputs are no square image; the picture used to demand an image_shape the
    # plot command cannot give.
    figures = saved_figures(monkeypatch, plot_module)
    path = plot_module.first_layer_weights(hg.mlp(40, [16], 10, seed=0), tmp_path / "w.png")
    assert figures[0]["suptitle"] == "layer 0 Affine weights, all 16 units\n(weight against input position)"
    assert png_pixels(path).std() > 1
    with pytest.raises(ValueError, match=r"first_layer_weights: layer 0 Affine has 40 inputs, which are not "
                                         r"images of shape \(6, 6\)"):
        plot_module.first_layer_weights(hg.mlp(40, [16], 10, seed=0), tmp_path / "x.png", image_shape=(6, 6))


# --- update ratios for the optimizer and lr the model was trained with ---------------------------------


def test_trace_gave_ratios_for_lr_0_001_to_a_model_trained_with_adam_at_3e_3(saved, capsys):
    """`handgrad trace` said "update ratios for lr 0.001" and computed lr*|grad|/|w| for a model
    that `handgrad train` had trained with Adam at 3e-3, whose steps do not scale with |grad|."""
    from handgrad.registry import MODELS, recipe

    assert main(["trace", str(saved / "model.safetensors"), "--samples", "4", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    trained = recipe("mlp", "digits")
    assert (data["optimizer"], data["lr"]) == (trained.optimizer, trained.lr) == (MODELS["mlp"].training.optimizer, 0.003)
    assert data["update_ratio"] == "lr/rms(w)"
    model = hg.load(saved / "model.safetensors")
    for layer in data["layers"]:
        for key, p in layer["params"].items():
            w = model.params[f"{layer['index']}.{key}"].astype(np.float64)
            assert p["update_ratio"] == pytest.approx(0.003 * np.sqrt(w.size) / np.linalg.norm(w), rel=1e-9)
    assert main(["trace", str(saved / "model.safetensors"), "--samples", "4"]) == 0
    text = capsys.readouterr().out
    assert "backward (update ratios for adam lr 0.003: adam moves every weight by about lr whatever its gradient" in text
    assert "parameters: |grad|, lr/rms(w)" in text and "update ratios for lr 0.001" not in text


def test_trace_reads_the_runs_settings_from_history_json_and_takes_explicit_ones(saved, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    hg.save(hg.load(saved / "model.safetensors"), run / "model.safetensors")  # a file that records nothing
    assert main(["trace", str(run / "model.safetensors"), "--samples", "2", "--json"]) == 0
    captured = capsys.readouterr()
    data = json.loads(captured.out)
    assert (data["optimizer"], data["lr"], data["update_ratio"]) == (None, 0.001, "lr*|grad|/|w|")
    assert "records no lr or optimizer of its training; the update ratios are for sgd lr 0.001" in captured.err
    # history.json beside it: its arguments (an unset optimizer is the model's default, adam).
    (run / "history.json").write_text((saved / "history.json").read_text())
    assert main(["trace", str(run / "model.safetensors"), "--samples", "2", "--json"]) == 0
    captured = capsys.readouterr()
    assert (json.loads(captured.out)["optimizer"], json.loads(captured.out)["lr"]) == ("adam", 0.003)
    assert captured.err == ""
    # --optimizer and --lr win over the record.
    assert main(["trace", str(run / "model.safetensors"), "--samples", "2", "--json", "--optimizer", "sgd",
                 "--lr", "0.1"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["optimizer"], data["lr"]) == ("sgd", 0.1)
    weights = data["layers"][0]["params"]["W"]
    assert weights["update_ratio"] == pytest.approx(0.1 * weights["grad_norm"] / weights["norm"], rel=1e-12)


@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_the_update_ratio_is_the_size_of_the_optimizers_own_first_step(name):
    """SGD's ratio is lr*|grad|/|w|; Adam's is lr/rms(w), whatever the gradient's size, because
    that is how far Adam moves the weights (its first step is lr*sign(grad))."""
    from handgrad.inspect import update_ratio

    rng = np.random.default_rng(0)
    w, g = rng.normal(0, 0.1, (20, 30)), rng.normal(0, 1e-3, (20, 30))
    for grad in (g, 1000 * g):
        params = {"w": w.copy()}
        hg.optim.OPTIMIZERS[name](lr=1e-3).update(params, {"w": grad})
        step = np.linalg.norm(params["w"] - w) / np.linalg.norm(w)
        assert update_ratio(1e-3, w, grad, name) == pytest.approx(step, rel=1e-4)
    assert update_ratio(1e-3, np.zeros(3), np.ones(3), name) is None  # no ratio to a zero weight


# --- pictures of a run: beside the model, and the curves again from history.json ----------------------


def test_plot_wrote_its_picture_into_the_current_folder(saved, tmp_path, monkeypatch, capsys):
    """`handgrad plot MODEL` wrote ./confusion.png wherever the user stood (a clone of the
    repository, say); it goes beside the model, into its run folder, unless --out says otherwise."""
    import shutil

    run, here = tmp_path / "run", tmp_path / "here"
    shutil.copytree(saved, run)
    here.mkdir()
    monkeypatch.chdir(here)
    assert main(["plot", str(run / "model.safetensors"), "--what", "weights"]) == 0
    assert capsys.readouterr().out.strip() == f"wrote {run / 'weights.png'}"
    assert png_pixels(run / "weights.png").std() > 10 and list(here.iterdir()) == []
    assert main(["plot", str(run / "model.safetensors"), "--out", "mine.png"]) == 0
    assert [p.name for p in here.iterdir()] == ["mine.png"]


def test_a_finished_runs_curves_could_not_be_redrawn(saved, tmp_path, capsys):
    """There was no way to draw a finished run's curves again (train --plot only, while training):
    `plot RUN --what curves` draws them from history.json, the same picture as train --plot."""
    import shutil

    for given in (saved, saved / "model.safetensors"):  # the run folder or the model file in it
        out = tmp_path / f"{given.name}.png"
        assert main(["plot", str(given), "--what", "curves", "--out", str(out)]) == 0
        assert capsys.readouterr().out.strip() == f"wrote {out}"
        assert np.array_equal(png_pixels(out), png_pixels(saved / "curves.png"))
    run = tmp_path / "run"
    shutil.copytree(saved, run, ignore=shutil.ignore_patterns("curves.png"))
    assert main(["plot", str(run), "--what", "curves"]) == 0  # by default into the run folder
    assert (run / "curves.png").is_file() and capsys.readouterr().out.strip() == f"wrote {run / 'curves.png'}"


def test_a_language_models_curves_are_drawn_by_step(tmp_path, monkeypatch, capsys):
    pytest.importorskip("matplotlib")
    from handgrad import plot

    drawn = []
    real = plot.lm_curves
    monkeypatch.setattr(plot, "lm_curves", lambda history, path: drawn.append(history) or real(history, path))
    evaluations = [{"step": s, "lr": 1e-3, "train_loss": 4.2 - s / 100, "val_loss": 4.3 - s / 120, "seconds": 0.1,
                    "tokens_per_second": None} for s in (0, 50, 100)]
    logged = [{"step": s, "train_loss": 4.2 - s / 90, "lr": 1e-3, "seconds": 0.1, "tokens_per_second": 1e4}
              for s in range(10, 101, 10)]
    (tmp_path / "history.json").write_text(json.dumps({"dataset": "shakespeare", "epochs": evaluations,
                                                       "best_epoch": None, "steps": logged}))
    assert main(["plot", str(tmp_path), "--what", "curves"]) == 0
    assert drawn[0]["step"] == [0, 50, 100] and drawn[0].steps == logged
    assert png_pixels(tmp_path / "curves.png").std() > 10


@pytest.mark.parametrize("history, message", [
    (None, "history.json: no such file; --what curves draws the history.json that handgrad train writes"),
    ("{not json", "history.json: not JSON"),
    ({"epochs": []}, "expected a handgrad history with a non-empty list 'epochs' of records"),
    ({"epochs": [{"epoch": 1, "train_loss": 0.5, "train_accuracy": 0.9, "val_loss": 0.4, "val_accuracy": 0.9},
                 {"epoch": 2, "train_accuracy": 0.9, "val_loss": 0.4, "val_accuracy": 0.9}]},
     "history.json: record 1 of 'epochs' has no 'train_loss'"),
    ({"epochs": [{"step": 0, "train_loss": "4.2", "val_loss": 4.3}]},
     "history.json: record 0 of 'epochs': 'train_loss' must be a number, got '4.2'"),
])
def test_curves_of_a_folder_without_a_readable_history_are_one_line(tmp_path, capsys, history, message):
    pytest.importorskip("matplotlib")
    if history is not None:
        (tmp_path / "history.json").write_text(history if isinstance(history, str) else json.dumps(history))
    assert main(["plot", str(tmp_path), "--what", "curves"]) == 1
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "curves.png").exists()


def test_trace_and_plot_read_the_data_root_the_model_was_trained_from(saved, tmp_path, monkeypatch, capsys):
    """As evaluate: the data root recorded with the model (``data_dir``), unless --data-dir is given."""
    from handgrad import data

    root, other = tmp_path / "root", tmp_path / "other"
    root.mkdir()
    other.mkdir()
    hg.save(hg.load(saved / "model.safetensors"), tmp_path / "m.safetensors",
            metadata={"dataset": "digits", "data_dir": str(root)})
    asked = []
    real = data.load_dataset
    monkeypatch.setattr(data, "load_dataset",
                        lambda name, data_dir=None, **kw: asked.append(data_dir) or real(name, data_dir, **kw))
    assert main(["trace", str(tmp_path / "m.safetensors"), "--samples", "2"]) == 0
    assert main(["plot", str(tmp_path / "m.safetensors"), "--what", "activations", "--samples", "20"]) == 0
    assert main(["trace", str(tmp_path / "m.safetensors"), "--samples", "2", "--data-dir", str(other)]) == 0
    assert asked == [str(root), str(root), str(other)]
