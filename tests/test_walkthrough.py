"""The walkthrough's numbers, checked against values computed here independently (plain NumPy,
no handgrad layers), and the command that prints them, in English and in Korean (--lang ko)."""

import json
import re
import string
import subprocess
import sys

import numpy as np
import pytest

from handgrad.cli import main
from handgrad.cli.book import WALKTHROUGH_LANGUAGES
from handgrad.walkthrough import LANGUAGES, TEXT, format_text, walkthrough
from handgrad.walkthrough_ko import TEXT as TEXT_KO

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


# --- the explanations in Korean (handgrad walkthrough --lang ko) ---------------------------------

#: A number standing alone: not the 64 of float64 nor the 1 of dout1 (a Korean particle may follow).
NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?:e[-+]?\d+)?")
#: Lines of data, not prose: the weights, inputs, scores and every gradient array.
DATA_LINE = re.compile(r"^(W\d = |b\d = |x = .*    t = |softmax {4}= |\s+(backprop|numerical) += |\s+\[)")
HANGUL = re.compile(r"[\uac00-\ud7a3]")


def _printed(capsys, *args) -> list[str]:
    assert main(["walkthrough", *args]) == 0
    return capsys.readouterr().out.splitlines()


def test_the_korean_text_has_every_key_and_field_of_the_english():
    fields = {key: sorted(f for _, f, _, _ in string.Formatter().parse(value) if f) for key, value in TEXT.items()}
    ko_fields = {key: sorted(f for _, f, _, _ in string.Formatter().parse(value) if f) for key, value in TEXT_KO.items()}
    assert ko_fields == fields
    assert sum(bool(HANGUL.search(value)) for value in TEXT_KO.values()) >= len(TEXT_KO) - 5
    for key in ("example.tutorial.explanation", "example.unsaturated.explanation", "backward", "pitfalls.more"):
        assert TEXT_KO[key].count("\n") == TEXT[key].count("\n"), f"{key}: the Korean wraps into other lines"


def test_lang_ko_prints_the_same_numbers_and_data_lines_in_korean(capsys):
    english, korean = _printed(capsys), _printed(capsys, "--lang", "ko")
    assert len(korean) == len(english)
    for en_line, ko_line in zip(english, korean):
        if DATA_LINE.match(en_line):
            assert ko_line == en_line
        elif en_line.startswith(("out        = ", "loss       = ")):  # the values, then a note in words
            assert ko_line.split("(")[0] == en_line.split("(")[0]
            assert NUMBER.findall(ko_line) == NUMBER.findall(en_line)
        elif en_line.startswith("      relative error = "):
            assert ko_line == "      상대 오차 = " + en_line.split(" = ")[1]
    # The title calls the network 2층 (the tutorial's "2층짜리 신경망"), English "two-layer".
    assert sorted(NUMBER.findall("\n".join(korean[1:]))) == sorted(NUMBER.findall("\n".join(english[1:])))
    text = "\n".join(korean)
    for phrase in ("softmax가 포화", "상대 오차 = 4.61e-11", "정답인 경우 (y[4] = 0.9)", "오류인 경우 (y[4] = 0.0)",
                   "튜토리얼: [nan, nan]", "행의 합 [1., 1.]", "trace 경고: softmax 포화: 샘플의 100%",
                   "softmax_max_never_subtracted", "batch_size_from_labels"):
        assert phrase in text, phrase
    # Korean takes two columns a character: titles are underlined to their width in a terminal.
    title = korean.index("3. 튜토리얼의 cross entropy 예제")
    assert korean[title + 1] == "-" * (len("3.  cross entropy ") + 2 * len("튜토리얼의예제"))


def test_lang_ko_json_has_the_same_numbers_and_korean_explanations(capsys):
    english = json.loads("\n".join(_printed(capsys, "--json")))
    korean = json.loads("\n".join(_printed(capsys, "--json", "--lang", "ko")))
    prose = {"meaning", "what", "case", "trace_warnings"}

    def data(value):
        if isinstance(value, dict):
            return {key: data(item) for key, item in value.items() if key not in prose}
        return [data(item) for item in value] if isinstance(value, list) else value

    assert data(korean) == data(english)
    meanings = [g["meaning"] for g in korean["tutorial_example"]["gradients"]]
    assert all(HANGUL.search(m) for m in meanings[:5]) and meanings[5:] == ["dL/d W2", "dL/d b2", "dL/d W1", "dL/d b1"]
    assert all(HANGUL.search(p["what"]) for p in korean["pitfalls"])
    assert [c["case"] for c in korean["cross_entropy_examples"]] == ["정답인 경우 (y[4] = 0.9)", "오류인 경우 (y[4] = 0.0)"]


def test_an_unknown_language_is_one_line_naming_the_choices(capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["walkthrough", "--lang", "fr"])
    assert stopped.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "--lang" in err and "'fr'" in err and "en" in err and "ko" in err, err
    with pytest.raises(ValueError, match=r"^walkthrough: unknown language 'fr'; choose from en, ko$"):
        walkthrough("fr")
    with pytest.raises(ValueError, match="choose from en, ko"):
        format_text(walkthrough(), "kr")


def test_the_parser_offers_every_language_the_walkthrough_speaks():
    assert WALKTHROUGH_LANGUAGES == LANGUAGES
