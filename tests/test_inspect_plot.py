"""trace: numbers checked against values computed here; warnings; pictures: real, non-blank PNGs."""

import json

import numpy as np
import pytest

import handgrad as hg
from handgrad.cli import main
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
    assert data["layers"][0]["output"]["shape"] == [4, 100]


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
