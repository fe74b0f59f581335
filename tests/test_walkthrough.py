"""The walkthrough's numbers, checked against values computed here independently (plain NumPy,
no handgrad layers), and the command that prints them."""

import json
import subprocess
import sys

import numpy as np
import pytest

from handgrad.cli import main
from handgrad.walkthrough import walkthrough

W1 = np.array([[1.0, 3.0, 5.0], [2.0, 4.0, 6.0]])
b1 = np.array([1.0, 2.0, 3.0])
W2 = np.array([[1.0, 4.0], [2.0, 5.0], [3.0, 6.0]])
b2 = np.array([1.0, 2.0])
T = np.array([[0.0, 1.0]])
ORDER = ["dout", "relu_dout", "dout1", "relu_dout1", "dx", "dW2", "db2", "dW1", "db1"]


def by_hand(x):
    """The two-layer network's forward and backward, written out from the chain rule."""
    a1 = x @ W1 + b1
    h1 = np.maximum(a1, 0)
    a2 = h1 @ W2 + b2
    out = np.maximum(a2, 0)
    e = np.exp(out - out.max())
    y = e / e.sum()
    dout = y - T  # batch of one
    relu_dout = dout * (a2 > 0)
    dout1 = relu_dout @ W2.T
    relu_dout1 = dout1 * (a1 > 0)
    dx = relu_dout1 @ W1.T
    grads = {"dout": dout, "relu_dout": relu_dout, "dout1": dout1, "relu_dout1": relu_dout1, "dx": dx,
             "dW2": h1.T @ relu_dout, "db2": relu_dout.sum(0), "dW1": x.T @ relu_dout1, "db1": relu_dout1.sum(0)}
    return out, y, grads


@pytest.fixture(scope="module")
def result():
    return walkthrough()


def test_tutorial_example_forward(result):
    ex = result["tutorial_example"]
    out, y, _ = by_hand(np.array([[1.0, 2.0]]))
    np.testing.assert_array_equal(ex["out"], [[93.0, 211.0]])
    np.testing.assert_array_equal(ex["out"], out)
    np.testing.assert_allclose(ex["softmax"], y, rtol=1e-12)
    assert ex["loss"] == 0.0  # exp(-118) is below float64's resolution next to 211
    assert ex["loss_exact"] == pytest.approx(np.exp(-118.0), rel=1e-12)  # about 5.67e-52
    assert ex["loss_tutorial_delta"] == pytest.approx(-1e-7, rel=1e-6)


def test_tutorial_example_gradients_in_order_and_saturated(result):
    ex = result["tutorial_example"]
    assert [g["name"] for g in ex["gradients"]] == ORDER
    _, _, expected = by_hand(np.array([[1.0, 2.0]]))
    for grad in ex["gradients"]:
        np.testing.assert_allclose(grad["backprop"], expected[grad["name"]], rtol=1e-12, atol=0, err_msg=grad["name"])
        assert np.max(np.abs(grad["backprop"])) < 1e-49  # saturated: around 1e-51
        np.testing.assert_array_equal(grad["numerical"], np.zeros_like(expected[grad["name"]]))
        assert grad["relative_error"] == 1.0


def test_unsaturated_example_agrees_with_numerical(result):
    ex = result["unsaturated_example"]
    out, y, expected = by_hand(np.array([[-1.0, 0.3]]))
    np.testing.assert_allclose(ex["out"], out, rtol=1e-14)
    assert 0.01 < y[0, 0] < 0.1  # not saturated
    assert ex["loss"] == pytest.approx(-np.log(y[0, 1]), rel=1e-12)
    assert [g["name"] for g in ex["gradients"]] == ORDER
    for grad in ex["gradients"]:
        np.testing.assert_allclose(grad["backprop"], expected[grad["name"]], rtol=1e-12, atol=1e-15, err_msg=grad["name"])
        np.testing.assert_allclose(grad["numerical"], expected[grad["name"]], rtol=1e-6, atol=1e-9, err_msg=grad["name"])
        assert grad["relative_error"] < 1e-7
    relu_dout1 = next(g for g in ex["gradients"] if g["name"] == "relu_dout1")
    assert relu_dout1["backprop"][0][2] == 0.0  # the closed third unit


def test_cross_entropy_examples(result):
    values = [case["cross_entropy_error"] for case in result["cross_entropy_examples"]]
    assert values[0] == pytest.approx(-np.log(0.9 + 1e-7), rel=1e-12)
    assert values[1] == pytest.approx(-np.log(1e-7), rel=1e-12)
    assert [round(v, 3) for v in values] == [0.105, 16.118]


def test_pitfalls(result):
    pitfalls = {p["name"]: p for p in result["pitfalls"]}
    overflow = pitfalls["softmax_max_never_subtracted"]
    assert overflow["tutorial"] == [None, None]  # NaN, written as JSON null
    assert any("overflow" in w for w in overflow["tutorial_warnings"])
    np.testing.assert_allclose(overflow["handgrad"], [1 / (1 + np.exp(10)), 1 / (1 + np.exp(-10))], rtol=1e-14)
    batch = pitfalls["softmax_normalises_whole_batch"]
    e = np.exp([[1.0, 2.0], [3.0, 4.0]])
    np.testing.assert_allclose(batch["tutorial"], e / e.sum(), rtol=1e-14)
    np.testing.assert_allclose(batch["handgrad_row_sums"], [1.0, 1.0], rtol=1e-15)
    delta = pitfalls["delta_makes_loss_negative"]
    assert delta["tutorial"] < 0 < delta["exact"] and delta["handgrad"] >= 0


def test_text_output_follows_the_tutorials_order(capsys):
    assert main(["walkthrough"]) == 0
    text = capsys.readouterr().out
    positions = [text.index(f"  {name}: ") for name in ORDER]
    assert positions == sorted(positions)
    for phrase in ["out        = [[ 93., 211.]]", "saturated", "16.1181", "0.1054",
                   "softmax_max_never_subtracted", "softmax_normalises_whole_batch", "delta_makes_loss_negative"]:
        assert phrase in text, phrase


def test_json_output_parses_and_matches(capsys):
    assert main(["walkthrough", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["tutorial_example"]["out"] == [[93.0, 211.0]]
    assert [g["name"] for g in data["unsaturated_example"]["gradients"]] == ORDER


def test_python_dash_m_runs_the_command():
    proc = subprocess.run([sys.executable, "-m", "handgrad", "walkthrough", "--json"],
                          capture_output=True, text=True, check=True)
    assert json.loads(proc.stdout)["cross_entropy_examples"][0]["cross_entropy_error"] == pytest.approx(0.10536, rel=1e-4)


def test_readme_excerpt_is_what_the_command_prints(capsys):
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    excerpt = readme.split("An excerpt of `handgrad walkthrough`:")[1].split("```")[1]
    main(["walkthrough"])
    printed = capsys.readouterr().out.splitlines()
    lines = [line for line in excerpt.strip("\n").splitlines() if line != "..."]
    assert lines and all(line in printed for line in lines), lines
