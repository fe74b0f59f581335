"""The tutorial's two-layer example, reproduced with handgrad's layers and explained.

``x -> Affine(W1, b1) -> Relu -> Affine(W2, b2) -> Relu -> SoftmaxWithLoss(t)``, with every
backprop gradient printed in the tutorial's order beside the numerical gradient of the same
quantity, then the tutorial's cross-entropy examples and what its listings get wrong.

The explanations come in English (``TEXT`` below) and in Korean, the tutorial's own language
(``walkthrough_ko.TEXT``, the same keys): ``walkthrough(lang=)`` and ``format_text(result, lang=)``
choose; the numbers and the layout are the same in every language.
"""

from __future__ import annotations

import math
import re
import unicodedata
import warnings

import numpy as np

from . import functions as F
from .gradcheck import numerical_gradient, relative_error
from .inspect import trace
from .layers import Affine, Relu, SoftmaxWithLoss
from .model import Sequential

# The tutorial's numbers.
TUTORIAL_X = [[1.0, 2.0]]
TUTORIAL_W1 = [[1.0, 3.0, 5.0], [2.0, 4.0, 6.0]]
TUTORIAL_B1 = [1.0, 2.0, 3.0]
TUTORIAL_W2 = [[1.0, 4.0], [2.0, 5.0], [3.0, 6.0]]
TUTORIAL_B2 = [1.0, 2.0]
TUTORIAL_T = [[0.0, 1.0]]
# Same network, an input whose scores differ by 3.4 rather than 118: the softmax is not
# saturated, the gradients are of order 0.03 and numerical differences can see them. Its
# third hidden unit is negative, so the Relu mask is visible in relu_dout1.
UNSATURATED_X = [[-1.0, 0.3]]

# (tutorial's name, index of the stage whose *input* it is the gradient of); what each is, in
# words, is TEXT["meaning.<name>"].
# stages: 0 affine1, 1 relu1, 2 affine2, 3 relu2, 4 the loss
_INPUT_GRADIENTS = [("dout", 4), ("relu_dout", 3), ("dout1", 2), ("relu_dout1", 1), ("dx", 0)]
_PARAM_GRADIENTS = [("dW2", 2, "W"), ("db2", 2, "b"), ("dW1", 0, "W"), ("db1", 0, "b")]

#: The languages of the explanations: English, and Korean, the tutorial's own.
LANGUAGES = ("en", "ko")

#: Every sentence the walkthrough prints, in English. ``walkthrough_ko.TEXT`` has the same keys and
#: the same ``{fields}``; only the prose differs. Names of the tutorial's variables and of
#: handgrad's classes stay as they are in every language.
TEXT = {
    "title": "handgrad walkthrough: the tutorial's two-layer network, backpropagated by hand",
    "network": "network: {network}",
    "meaning.dout": "dL/d out, from SoftmaxWithLoss.backward()",
    "meaning.relu_dout": "dL/d out2 (before the second Relu), from relu2.backward(dout)",
    "meaning.dout1": "dL/d relu_out1, from affine2.backward(relu_dout)",
    "meaning.relu_dout1": "dL/d out1 (before the first Relu), from relu1.backward(dout1)",
    "meaning.dx": "dL/d x, from affine1.backward(relu_dout1)",
    "meaning.parameter": "dL/d {parameter}",
    "example.tutorial": "1. The tutorial's example",
    "example.tutorial.explanation": (
        "Be warned: the two scores differ by {gap:.0f}, so the softmax is saturated (probabilities\n"
        "1 - {p:.2g} and {p:.2g}). The true gradients are around 1e-51: backprop computes them, but a\n"
        "float64 loss near 0 cannot change by 1e-56 when an input moves by 1e-5, so the numerical\n"
        "gradients are 0 and the relative errors are 1. That is float64's limit, not a bug."),
    "example.unsaturated": "2. The same network on an unsaturated input",
    "example.unsaturated.explanation": (
        "x = [[-1, 0.3]]: the scores differ by {gap:.1f}, the gradients are of order 0.03, and\n"
        "backprop and numerical gradients agree (largest relative error {worst:.1e}). The third hidden\n"
        "unit is negative, so the first Relu blocks its gradient (the 0 in relu_dout1)."),
    "scores": "(scores after the second Relu)",
    "loss": "(exact value {exact:.4g}; the tutorial's delta version gives {delta:.6g})",
    "trace_warnings": "trace warnings: {warnings}",
    "none": "none",
    "backward": ("Backward, in the tutorial's order: backprop, then the numerical gradient of the same\n"
                 "quantity by central differences (eps = 1e-5), and their relative error."),
    "label.backprop": "backprop",
    "label.numerical": "numerical",
    "relative_error": "relative error = {error:.2e}",
    "cross_entropy": "3. The tutorial's cross-entropy examples",
    "cross_entropy.formula": "cross_entropy_error(y, t) = -sum(t * log(y + 1e-7)), label 5 (index 4):",
    "cross_entropy.correct": "correct (y[4] = 0.9)",
    "cross_entropy.wrong": "wrong (y[4] = 0.0)",
    "cross_entropy.cap": "{cap:.3f} = -log(1e-7) is the most this loss can ever say, however wrong the network.",
    "pitfalls": "4. What the tutorial's listings get wrong",
    "pitfall.softmax_max_never_subtracted":
        "The tutorial computes c = np.max(a) but never subtracts it: exp(1000) overflows.",
    "pitfall.softmax_normalises_whole_batch":
        "np.sum(exp_a) sums over the whole batch, so rows do not each sum to 1.",
    "pitfall.delta_makes_loss_negative": (
        "cross_entropy_error adds delta = 1e-7 inside the log. On this network the correct "
        "class has probability 1.0, so the tutorial's loss is -log(1 + 1e-7), slightly negative."),
    "label.input": "input",
    "label.tutorial": "tutorial",
    "label.handgrad": "handgrad",
    "numpy_warned": "(NumPy warned: {warnings})",
    "row_sums": "row sums {sums}",
    "delta.values": "tutorial: {tutorial:.6g}   exact: {exact:.4g}   handgrad (log-softmax): {handgrad:.6g}",
    "delta.note": "(handgrad's 0.0 is the exact value rounded to float64; it is never negative.)",
    "pitfalls.more": (
        "* relu_backward_writes_into_dout: the tutorial's Relu.backward does dout[mask] = 0, changing\n"
        "    the caller's array; handgrad returns a new array (dout * mask).\n"
        "* loss_backward_ignores_dout: SoftmaxWithLoss.backward(dout) must scale by dout; handgrad does.\n"
        "* batch_size_from_labels: dividing by t.shape[0] is wrong for one sample with one-hot t (it\n"
        "    divides by the number of classes); handgrad divides by the rows of x."),
}

#: handgrad.inspect.trace's warnings as (pattern, rewording) in each language; a warning that
#: matches none is printed as trace wrote it.
TRACE_WARNINGS: list[tuple[str, str]] = []


def _language(lang: str) -> tuple[dict, list]:
    """The prose table and the trace warnings' rewordings of ``lang``; a one-line ValueError
    naming the choices for any other."""
    if lang == "en":
        return TEXT, TRACE_WARNINGS
    if lang == "ko":
        from . import walkthrough_ko

        return walkthrough_ko.TEXT, walkthrough_ko.TRACE_WARNINGS
    raise ValueError(f"walkthrough: unknown language {lang!r}; choose from {', '.join(LANGUAGES)}")


def _reworded(warning: str, rewordings: list) -> str:
    for pattern, rewording in rewordings:
        if re.fullmatch(pattern, warning):
            return re.sub(pattern, rewording, warning)
    return warning


def tutorial_network() -> Sequential:
    """The tutorial's network with its weights: Affine -> Relu -> Affine -> Relu -> SoftmaxWithLoss."""
    layers = [Affine(TUTORIAL_W1, TUTORIAL_B1), Relu(), Affine(TUTORIAL_W2, TUTORIAL_B2), Relu()]
    return Sequential(layers, loss=SoftmaxWithLoss())


def _run_network(x, t, text: dict = TEXT, rewordings: list = TRACE_WARNINGS) -> dict:
    """Forward and backward through the tutorial's network in float64 (recorded by
    :func:`handgrad.inspect.trace`), with a numerical check of every gradient; what each
    gradient is, and the trace's warnings, in the words of ``text``."""
    x = np.array(x, dtype=np.float64)
    t = np.array(t, dtype=np.float64)
    model = tutorial_network()
    layers, loss_layer = model.layers, model.loss_layer
    recorded = trace(model, x, t, max_values=10**6)
    loss = recorded.loss
    probabilities = loss_layer.y.copy()  # the numerical passes below re-run forward
    out = np.array(recorded.layers[-1].values["output"])
    stage_inputs = [x] + [np.array(r.values["output"]) for r in recorded.layers]

    # What each layer's backward received and returned, in the tutorial's names.
    backprop = {"dout": np.array(recorded.layers[3].values["grad_output"])}
    for (name, _), record in zip(_INPUT_GRADIENTS[1:], reversed(recorded.layers)):
        backprop[name] = np.array(record.values["grad_input"])
    for name, index, key in _PARAM_GRADIENTS:
        backprop[name] = np.array(recorded.layers[index].values[f"d{key}"])

    def loss_from_stage(k: int, z: np.ndarray) -> float:
        for layer in layers[k:]:
            z = layer.forward(z)
        return loss_layer.forward(z, t)

    numerical = {}
    for name, k in _INPUT_GRADIENTS:
        z = stage_inputs[k].copy()
        numerical[name] = numerical_gradient(lambda z_: loss_from_stage(k, z_), z)  # noqa: B023 (called here, now)
    for name, index, key in _PARAM_GRADIENTS:
        numerical[name] = numerical_gradient(lambda _: loss_from_stage(0, x), layers[index].params[key])

    meanings = {name: text[f"meaning.{name}"] for name, _ in _INPUT_GRADIENTS}
    meanings.update({name: text["meaning.parameter"].format(parameter=name[1:]) for name, _, _ in _PARAM_GRADIENTS})
    scores = out.reshape(-1)
    correct = int(np.argmax(t.reshape(-1)))
    others = np.delete(scores, correct)
    # log(1 + sum_j exp(s_j - s_correct)) with log1p: exact even where float64 rounds it to 0.
    exact_loss = float(np.log1p(np.sum(np.exp(others - scores[correct]))))
    return {
        "x": x.tolist(),
        "t": t.tolist(),
        "out": out.tolist(),
        "softmax": probabilities.tolist(),
        "loss": loss,
        "loss_exact": exact_loss,
        "loss_tutorial_delta": F.cross_entropy_error(F.softmax(out), t),
        "trace_warnings": [_reworded(warning, rewordings) for warning in recorded.warnings],
        "gradients": [
            {
                "name": name,
                "meaning": meanings[name],
                "backprop": backprop[name].tolist(),
                "numerical": numerical[name].tolist(),
                "relative_error": relative_error(backprop[name], numerical[name]),
            }
            for name in list(backprop)
        ],
    }


def _tutorial_softmax(a):
    """The tutorial's listing, verbatim in substance: the max is computed and never used, and
    the sum runs over the whole array rather than each row."""
    c = np.max(a)  # noqa: F841 - the tutorial's unused line, kept to show the pitfall
    exp_a = np.exp(a)
    return exp_a / np.sum(exp_a)


def _pitfalls(text: dict = TEXT) -> list[dict]:
    large = np.array([1000.0, 1010.0])
    with warnings.catch_warnings(record=True) as caught, np.errstate(over="warn", invalid="warn"):
        warnings.simplefilter("always")
        naive = _tutorial_softmax(large)
    batch = np.array([[1.0, 2.0], [3.0, 4.0]])
    return [
        {
            "name": "softmax_max_never_subtracted",
            "what": text["pitfall.softmax_max_never_subtracted"],
            "input": large.tolist(),
            "tutorial": [None if math.isnan(v) else v for v in naive.tolist()],
            "tutorial_warnings": sorted({str(w.message) for w in caught}),
            "handgrad": F.softmax(large).tolist(),
        },
        {
            "name": "softmax_normalises_whole_batch",
            "what": text["pitfall.softmax_normalises_whole_batch"],
            "input": batch.tolist(),
            "tutorial": _tutorial_softmax(batch).tolist(),
            "tutorial_row_sums": _tutorial_softmax(batch).sum(axis=1).tolist(),
            "handgrad": F.softmax(batch).tolist(),
            "handgrad_row_sums": F.softmax(batch).sum(axis=1).tolist(),
        },
    ]


def walkthrough(lang: str = "en") -> dict:
    """Everything the ``handgrad walkthrough`` command shows, as plain Python data; the
    explanations in it (``meaning``, ``what``, ``case``) in the language ``lang`` (one of
    :data:`LANGUAGES`), the numbers the same in all."""
    text, rewordings = _language(lang)
    t_five = np.zeros(10)
    t_five[4] = 1.0  # the tutorial's "label = 5": the fifth entry, index 4
    y_right = np.array([0.1, 0.03, 0.05, 0.2, 0.9, 0.0, 0.1, 0.2, 0.12, 0.03])
    y_wrong = np.array([0.1, 0.03, 0.05, 0.2, 0.0, 0.1, 0.2, 0.12, 0.03, 0.9])
    tutorial = _run_network(TUTORIAL_X, TUTORIAL_T, text, rewordings)
    delta_pitfall = {
        "name": "delta_makes_loss_negative",
        "what": text["pitfall.delta_makes_loss_negative"],
        "tutorial": tutorial["loss_tutorial_delta"],
        "exact": tutorial["loss_exact"],
        "handgrad": tutorial["loss"],
    }
    return {
        "network": "x -> Affine(W1, b1) -> Relu -> Affine(W2, b2) -> Relu -> SoftmaxWithLoss(t)",
        "W1": TUTORIAL_W1,
        "b1": TUTORIAL_B1,
        "W2": TUTORIAL_W2,
        "b2": TUTORIAL_B2,
        "tutorial_example": tutorial,
        "unsaturated_example": _run_network(UNSATURATED_X, TUTORIAL_T, text, rewordings),
        "cross_entropy_examples": [
            {"case": text["cross_entropy.correct"], "y": y_right.tolist(), "t": t_five.tolist(),
             "cross_entropy_error": F.cross_entropy_error(y_right, t_five)},
            {"case": text["cross_entropy.wrong"], "y": y_wrong.tolist(), "t": t_five.tolist(),
             "cross_entropy_error": F.cross_entropy_error(y_wrong, t_five)},
        ],
        "pitfalls": _pitfalls(text) + [delta_pitfall],
    }


# --- text ---------------------------------------------------------------------------------------


def _width(text: str) -> int:
    """Columns ``text`` takes in a terminal: Hangul and other wide characters take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _pad(text: str, width: int) -> str:
    return text + " " * max(0, width - _width(text))


def _underlined(title: str) -> list[str]:
    return [title, "-" * _width(title)]


def _fmt(value, label: str = "") -> str:
    """``label`` then the array, continuation lines aligned under the first element."""
    # + 0.0 turns -0.0 (a negative gradient times a closed Relu mask) into a plain 0.
    array = np.asarray(value, dtype=np.float64) + 0.0
    return label + np.array2string(array, precision=6, separator=", ", prefix=" " * _width(label))


def _format_example(title: str, example: dict, explanation: str, text: dict) -> list[str]:
    lines = [*_underlined(title), explanation, ""]
    lines.append(f"x = {_fmt(example['x'])}    t = {_fmt(example['t'])}")
    lines.append(f"out        = {_fmt(example['out'])}    {text['scores']}")
    lines.append(f"softmax    = {_fmt(example['softmax'])}")
    lines.append(f"loss       = {example['loss']:.6g}    "
                 + text["loss"].format(exact=example["loss_exact"], delta=example["loss_tutorial_delta"]))
    lines.append(text["trace_warnings"].format(warnings="; ".join(example["trace_warnings"]) or text["none"]))
    lines.append("")
    lines.append(text["backward"])
    backprop, numerical = text["label.backprop"], text["label.numerical"]
    width = max(_width(backprop), _width(numerical))
    for grad in example["gradients"]:
        lines.append(f"  {grad['name']}: {grad['meaning']}")
        lines.append(_fmt(grad["backprop"], f"      {_pad(backprop, width)} = "))
        lines.append(_fmt(grad["numerical"], f"      {_pad(numerical, width)} = "))
        lines.append("      " + text["relative_error"].format(error=grad["relative_error"]))
    lines.append("")
    return lines


def format_text(result: dict, lang: str = "en") -> str:
    """A readable report of :func:`walkthrough`'s result, explained in the language ``lang`` (one
    of :data:`LANGUAGES`; give ``walkthrough`` the same, so that the explanations carried in the
    result agree)."""
    text, _ = _language(lang)
    tut = result["tutorial_example"]
    lines = [
        text["title"],
        "",
        text["network"].format(network=result["network"]),
        _fmt(result["W1"], "W1 = "),
        _fmt(result["b1"], "b1 = "),
        _fmt(result["W2"], "W2 = "),
        _fmt(result["b2"], "b2 = "),
        "",
    ]
    gap = tut["out"][0][1] - tut["out"][0][0]
    lines += _format_example(text["example.tutorial"], tut,
                             text["example.tutorial.explanation"].format(gap=gap, p=tut["loss_exact"]), text)
    unsaturated = result["unsaturated_example"]
    worst = max(grad["relative_error"] for grad in unsaturated["gradients"])
    gap = unsaturated["out"][0][1] - unsaturated["out"][0][0]
    lines += _format_example(text["example.unsaturated"], unsaturated,
                             text["example.unsaturated.explanation"].format(gap=gap, worst=worst), text)
    lines += [*_underlined(text["cross_entropy"]), text["cross_entropy.formula"]]
    for case in result["cross_entropy_examples"]:
        lines.append(f"  {_pad(case['case'], 22)} CEE = {case['cross_entropy_error']:.4f}")
    lines.append(text["cross_entropy.cap"].format(cap=-math.log(F.CROSS_ENTROPY_DELTA)))
    labels = {key: _pad(text[f"label.{key}"] + ":", 10) for key in ("input", "tutorial", "handgrad")}
    under = " " * (4 + 10)  # notes sit under the values
    lines += ["", *_underlined(text["pitfalls"])]
    for pitfall in result["pitfalls"]:
        lines.append(f"* {pitfall['name']}: {pitfall['what']}")
        if pitfall["name"] == "delta_makes_loss_negative":
            lines.append("    " + text["delta.values"].format(
                tutorial=pitfall["tutorial"], exact=pitfall["exact"], handgrad=pitfall["handgrad"]))
            lines.append("    " + text["delta.note"])
        else:
            lines.append(_fmt(pitfall["input"], f"    {labels['input']}"))
            tutorial_value = np.array(pitfall["tutorial"], dtype=np.float64)  # None -> nan
            lines.append(_fmt(tutorial_value, f"    {labels['tutorial']}"))
            if pitfall.get("tutorial_warnings"):
                lines.append(under + text["numpy_warned"].format(warnings="; ".join(pitfall["tutorial_warnings"])))
            if "tutorial_row_sums" in pitfall:
                lines.append(under + text["row_sums"].format(sums=_fmt(pitfall["tutorial_row_sums"])))
            lines.append(_fmt(pitfall["handgrad"], f"    {labels['handgrad']}"))
            if "handgrad_row_sums" in pitfall:
                lines.append(under + text["row_sums"].format(sums=_fmt(pitfall["handgrad_row_sums"])))
    lines += text["pitfalls.more"].split("\n")
    return "\n".join(lines)
