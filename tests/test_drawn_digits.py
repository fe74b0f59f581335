"""The drawn digits (handgrad.serve.drawn, made by benchmarks/drawn_digits.py): the shipped file
is what the script says it draws, it is rendered as the page's canvas draws, and a model is
scored on it through the page's own path (the server's decoding and handgrad.data.images), as
the page and the benchmark report it. How well a model does is the benchmark's business, not
these tests'."""

import gzip
import importlib.util
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("PIL")

import handgrad as hg  # noqa: E402
from handgrad.serve import drawn  # noqa: E402
from handgrad.serve.models import load_served_model, pixels_from_drawing  # noqa: E402

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "drawn_digits.py"


def load_script():
    spec = importlib.util.spec_from_file_location("drawn_digits_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def script():
    return load_script()


@pytest.fixture(scope="module")
def digits_model(tmp_path_factory):
    """The digits MLP of test_serve after 2 epochs, saved as `handgrad train` saves it."""
    (x, t), _ = hg.data.load_dataset("digits")
    model = hg.mlp(64, [32], 10, seed=0)
    hg.fit(model, hg.optim.Adam(lr=1e-2), (x, t), epochs=2, batch_size=32, seed=0, progress=False)
    path = tmp_path_factory.mktemp("drawn") / "digits-mlp.safetensors"
    hg.save(model, path, metadata={"dataset": "digits"})
    return path


# --- the set is what the script describes ---------------------------------------------------------


@pytest.mark.parametrize("split", drawn.SPLITS)
def test_each_split_holds_30_or_more_drawings_of_every_digit_in_every_style(script, split):
    drawings = drawn.load_drawn_digits(split)
    per_digit = Counter(d.label for d in drawings)
    assert sorted(per_digit) == list(range(10)) and min(per_digit.values()) >= 30, per_digit
    assert per_digit == {digit: script.PER_DIGIT for digit in range(10)}
    for digit, (_, styles) in script.STYLES.items():
        counts = Counter(d.style for d in drawings if d.label == digit)
        assert sorted(counts) == sorted(styles)                       # every style of the digit, no other
        assert max(counts.values()) - min(counts.values()) <= 1       # taken in turn
    pens = np.array([d.pen_width for d in drawings])
    assert 0.75 * drawn.PAGE_PEN_WIDTH - 0.01 <= pens.min() and pens.max() <= 1.3 * drawn.PAGE_PEN_WIDTH + 0.01
    for d in drawings:
        points = np.concatenate(d.strokes)
        assert points.min() >= 0 and points.max() <= drawn.CANVAS_SIDE
        assert all(len(stroke) >= 2 for stroke in d.strokes)          # pointer positions, not single dots
        height = np.ptp(points[:, 1])
        assert 90 <= height <= drawn.CANVAS_SIDE, (d.label, d.style, height)


def test_the_dev_and_test_splits_are_drawn_apart():
    def key(d):
        return d.label, tuple(np.concatenate(d.strokes).ravel())

    dev, test = drawn.load_drawn_digits("dev"), drawn.load_drawn_digits("test")
    assert len({key(d) for d in dev}) == len(dev)
    assert not {key(d) for d in dev} & {key(d) for d in test}             # no drawing in both


def test_the_shipped_file_is_what_the_script_makes_today(script):
    # Another processor's sin and cos may differ in their last bits: points are compared to
    # within a pixel, not bit for bit (the file stores whole pixels).
    made = script.make_table()
    with gzip.open(Path(drawn.__file__).resolve().parents[1] / "data" / drawn.DRAWN_DIGITS_FILE) as handle:
        shipped = json.load(handle)
    assert {k: v for k, v in made.items() if k != "splits"} == {k: v for k, v in shipped.items() if k != "splits"}
    for split in drawn.SPLITS:
        ours, theirs = made["splits"][split], shipped["splits"][split]
        assert ours["seed"] == theirs["seed"] == script.SEEDS[split]
        assert len(ours["drawings"]) == len(theirs["drawings"])
        for a, b in zip(ours["drawings"], theirs["drawings"]):
            assert (a["label"], a["style"]) == (b["label"], b["style"])
            assert abs(a["pen"] - b["pen"]) < 0.02
            assert [len(s) for s in a["strokes"]] == [len(s) for s in b["strokes"]]
            for s, t in zip(a["strokes"], b["strokes"]):
                assert np.abs(np.subtract(s, t)).max() <= 1


@pytest.mark.parametrize("change, message", [
    (lambda t: t.update(format="something else"), "format: expected 'handgrad drawn digits 1'"),
    (lambda t: t.update(canvas=256), "canvas: expected 280"),
    (lambda t: t["splits"].pop("test"), "splits: no split 'test'"),
    (lambda t: t["splits"]["test"]["drawings"][3].update(label=12), "splits.test.drawings[3].label: expected a digit"),
    (lambda t: t["splits"]["test"]["drawings"][5]["strokes"][0].append(7), "splits.test.drawings[5].strokes[0]: "
                                                                            "expected a flat list of x, y numbers"),
    (lambda t: t["splits"]["test"]["drawings"][0]["strokes"][0].__setitem__(0, 9999),
     "splits.test.drawings[0].strokes[0]: a point lies outside the 280x280 canvas"),
])
def test_a_damaged_file_is_refused_in_one_line_naming_the_key(tmp_path, change, message):
    with gzip.open(Path(drawn.__file__).resolve().parents[1] / "data" / drawn.DRAWN_DIGITS_FILE) as handle:
        table = json.load(handle)
    change(table)
    path = tmp_path / "drawn.json.gz"
    path.write_bytes(gzip.compress(json.dumps(table).encode()))
    with pytest.raises(ValueError) as error:
        drawn.load_drawn_digits("test", path=path)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_a_file_that_is_not_gzip_is_refused_in_one_line(tmp_path):
    path = tmp_path / "drawn.json.gz"
    path.write_text("not gzip")
    with pytest.raises(ValueError, match="cannot read the drawn digits"):
        drawn.load_drawn_digits("test", path=path)
    with pytest.raises(ValueError, match="unknown split 'train'"):
        drawn.load_drawn_digits("train")


# --- rendered as the page's canvas draws ----------------------------------------------------------


def test_rendering_draws_round_capped_anti_aliased_strokes_of_the_pen_width():
    pen = drawn.PAGE_PEN_WIDTH
    dot = drawn.render([np.array([[140.0, 140.0]])], pen)           # a click: a disc of the pen's width
    assert dot.dtype == np.uint8 and dot.shape == (280, 280) and dot[0, 0] == 0 and dot[140, 140] == 255
    assert abs(dot.sum() / 255 - np.pi * (pen / 2) ** 2) < 0.03 * np.pi * (pen / 2) ** 2
    line = drawn.render([np.array([[60.0, 100.0], [220.0, 100.0]])], pen)
    # A round-capped segment: a pen-wide band, 160 pixels plus a pen width long.
    assert abs(line.sum() / 255 - (160 * pen + np.pi * (pen / 2) ** 2)) < 0.03 * 160 * pen
    assert abs((line[:, 140] > 127).sum() - pen) <= 1 and abs((line[100] > 127).sum() - (160 + pen)) <= 1
    assert ((line > 0) & (line < 255)).any()                       # grey edges, as a canvas draws them


def test_a_drawing_is_sent_as_the_page_sends_its_canvas():
    from PIL import Image
    import base64
    import io

    canvas = drawn.render(drawn.load_drawn_digits("test")[0].strokes, drawn.PAGE_PEN_WIDTH)
    url = drawn.canvas_data_url(canvas)
    assert url.startswith("data:image/png;base64,")
    with Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))) as image:
        assert image.mode == "RGBA" and image.size == (280, 280)   # toDataURL: RGBA, opaque
        rgba = np.asarray(image)
    assert (rgba[..., 3] == 255).all() and (rgba[..., 0] == canvas).all()


# --- scored through the page's path ----------------------------------------------------------------


def test_a_model_is_scored_on_the_drawings_as_the_page_prepares_them(digits_model):
    served = load_served_model(digits_model, "digits-mlp", copies=1)
    result = served.drawn_digits()
    drawings = drawn.load_drawn_digits("test")
    assert result["split"] == "test" and result["count"] == len(drawings) == 400
    assert len(result["per_digit"]) == 10 and all(0 <= share <= 1 for share in result["per_digit"])
    # The prepared pixels are those of a drawing sent to predict, drawing by drawing.
    pixels, labels = drawn.prepared_drawings("digits", pixels_from_drawing)
    assert pixels.shape == (400, 8, 8) and (labels == [d.label for d in drawings]).all()
    for i in (0, 57, 133, 399):
        url = drawn.canvas_data_url(drawn.render(drawings[i].strokes, drawings[i].pen_width))
        np.testing.assert_array_equal(pixels[i], pixels_from_drawing(url, "digits")[0])
    # The share is the model's own predictions on them, counted.
    model = hg.load(digits_model)
    right = model.predict(pixels.reshape(400, 64)).argmax(axis=1) == labels
    assert result["recognised"] == pytest.approx(right.mean())
    assert result["per_digit"] == pytest.approx([right[labels == d].mean() for d in range(10)])
    assert served.drawn_digits() is result                          # computed once, kept


def test_the_api_gives_the_share_and_refuses_models_of_other_classes(tmp_path, digits_model):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from handgrad.model import SimpleConvNet
    from handgrad.serve import create_app

    fashion = tmp_path / "fashion.safetensors"
    hg.save(SimpleConvNet(input_dim=(1, 28, 28), filter_num=2, hidden_size=8, seed=0), fashion,
            metadata={"dataset": "fashion-mnist"})
    with TestClient(create_app([digits_model, fashion], copies=1)) as client:
        listing = client.get("/api/models").json()
        assert [m["reads_digits"] for m in listing] == [True, False]
        answer = client.get("/api/models/digits-mlp/drawn-digits")
        assert answer.status_code == 200
        expected = load_served_model(digits_model, "digits-mlp", copies=1).drawn_digits()
        assert answer.json() == expected
        refused = client.get("/api/models/fashion/drawn-digits")
        assert refused.status_code == 404 and "not the digits 0 to 9" in refused.json()["detail"]
        assert client.get("/api/models/nothing/drawn-digits").status_code == 404


def test_the_benchmark_scores_a_model_file_as_the_page_does(script, digits_model):
    row = script.score_file(digits_model, "test")
    expected = load_served_model(digits_model, "m", copies=1).drawn_digits("test")
    assert row == {"dataset": "digits", **expected}
