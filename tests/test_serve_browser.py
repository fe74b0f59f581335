"""The page in a real browser: `handgrad serve` started as a command on a free port, headless
Chromium (Debian's package, driven by Playwright's Python package) drawing with the mouse and
typing a prompt. Skips only when Chromium or Playwright is absent; with
HANDGRAD_REQUIRE_BROWSER=1 (CI, see .ci/run) it fails instead of skipping.

HANDGRAD_SCREENSHOTS=DIR also copies the screenshots there (README's come from this test)."""

import contextlib
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

REQUIRED = bool(os.environ.get("HANDGRAD_REQUIRE_BROWSER"))
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if not REQUIRED:
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed", allow_module_level=True)
    pytest.importorskip("playwright.sync_api")
    pytest.importorskip("fastapi")
assert CHROMIUM is not None, "HANDGRAD_REQUIRE_BROWSER is set but chromium is not installed"


import handgrad as hg  # noqa: E402

from test_serve import free_port, make_models  # noqa: E402


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`handgrad serve` on the test's models and the book's SimpleConvNet at full size (its
    Flatten holds 4,320 units), as a user starts it; stopped with Ctrl-C's signal."""
    from handgrad.model import SimpleConvNet

    folder = tmp_path_factory.mktemp("browser")
    paths = make_models(folder)
    paths["mnist-convnet"] = folder / "mnist-convnet.safetensors"
    hg.save(SimpleConvNet(seed=4), paths["mnist-convnet"], metadata={"dataset": "mnist"})
    # No MNIST anywhere (the models' files record no data root): the MNIST models have no test images.
    with running_server([paths[name] for name in ("digits-cnn", "digits-mlp", "mnist-cnn", "mnist-convnet", "tiny-gpt")],
                        folder) as (url, finished):
        yield url
    out, err = finished
    assert f"serving digits-cnn, digits-mlp, mnist-cnn, mnist-convnet, tiny-gpt at {url}/" in out
    assert "mnist-cnn: the page's Random test image is off: no test images of mnist here" in err


@contextlib.contextmanager
def running_server(model_paths, folder, *options):
    """``handgrad serve MODEL...`` started as a user starts it, on a free port, with no data
    under $HANDGRAD_DATA or the cache; yields ``(url, finished)`` and, once the block ends,
    stops it with Ctrl-C's signal and fills ``finished`` with its ``(stdout, stderr)``."""
    port = free_port()
    command = [sys.executable, "-m", "handgrad", "serve", *map(str, model_paths), "--port", str(port), *options]
    env = dict(os.environ, HANDGRAD_DATA=str(folder / "no-data"), XDG_CACHE_HOME=str(folder / "cache"))
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{url}/api/models", timeout=2).read()
            break
        except OSError:
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "handgrad serve did not answer within 60 s"
            time.sleep(0.1)
    finished = []
    try:
        yield url, finished
    finally:
        process.send_signal(2)  # SIGINT: what Ctrl-C sends
        out, err = process.communicate(timeout=20)
        finished.extend((out, err))
        assert process.returncode in (0, 130), err


def check_screenshot(path: Path, width: int, height: int):
    """A real picture: the size asked for and far from one flat colour."""
    from PIL import Image

    with Image.open(path) as image:
        assert image.size == (width, height)
        grey = np.asarray(image.convert("L"), dtype=float)
    assert grey.std() > 10 and len(np.unique(grey)) > 20
    if os.environ.get("HANDGRAD_SCREENSHOTS"):
        shutil.copy(path, Path(os.environ["HANDGRAD_SCREENSHOTS"]) / path.name)


NON_BLANK = """(selector) => [...document.querySelectorAll(selector)].map((canvas) => {
    const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
    const colours = new Set();
    for (let i = 0; i < data.length; i += 4) colours.add(data[i] << 16 | data[i + 1] << 8 | data[i + 2]);
    return colours.size;
})"""


def open_page(browser, url, height, view):
    """A page showing the model named in ``url``, and the list its JavaScript errors go to."""
    page = browser.new_page(viewport={"width": 1280, "height": height})
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(url)
    page.wait_for_selector(f"#{view}-view:not([hidden])")
    return page, errors


def draw_stroke(page, points):
    box = page.locator("#draw").bounding_box()
    page.mouse.move(box["x"] + points[0][0] * box["width"], box["y"] + points[0][1] * box["height"])
    page.mouse.down()
    for x, y in points[1:]:
        page.mouse.move(box["x"] + x * box["width"], box["y"] + y * box["height"], steps=4)
    page.mouse.up()


def test_draw_a_digit_and_see_every_layer(server, browser, tmp_path):
    page, errors = open_page(browser, f"{server}/?model=digits-cnn", 1000, "image")
    draw_stroke(page, [(0.5, 0.15), (0.5, 0.5), (0.45, 0.85)])   # a 1
    draw_stroke(page, [(0.4, 0.15), (0.5, 0.15)])
    page.wait_for_function("document.querySelectorAll('#bars .bar').length === 10")
    page.wait_for_function("document.querySelectorAll('#layers .layer').length === 7")
    probabilities = page.eval_on_selector_all("#bars .bar", "rows => rows.map(r => Number(r.dataset.probability))")
    assert abs(sum(probabilities) - 1) < 1e-6 and len(probabilities) == 10
    assert page.text_content("#prediction") == str(int(np.argmax(probabilities)))
    colours = page.evaluate(NON_BLANK, "#layers canvas, #seen, #saliency")
    assert len(colours) == 9 and min(colours) > 1, colours  # each layer's picture, the input and the saliency
    page.screenshot(path=tmp_path / "serve-digits.png")
    check_screenshot(tmp_path / "serve-digits.png", 1280, 1000)

    page.click("#random")  # a test image with its true label, then its prediction
    page.wait_for_function("document.querySelector('#truth').textContent.includes('true label')")
    label = page.get_attribute("#truth", "data-label")
    assert label in [str(c) for c in range(10)]
    page.click("#bars .bar:nth-child(3)")  # the saliency map of class 2
    page.wait_for_function("document.querySelector('#saliency-class').textContent.startsWith('of 2')")
    assert errors == []


def test_the_picker_says_what_each_model_learned_and_how_well_it_reads_drawings(server, browser):
    page, errors = open_page(browser, f"{server}/?model=digits-mlp", 900, "image")
    # The server scores each digits model on its held-out drawn digits once, on the first request.
    page.wait_for_function("[...document.querySelectorAll('#model option')].filter("
                           "o => o.text.includes('% of drawn digits')).length === 4", timeout=120_000)
    options = page.eval_on_selector_all("#model option", "options => options.map(o => o.text)")
    assert options[1].startswith("digits-mlp: digits (UCI 8x8), ") and options[1].endswith(" % of drawn digits")
    assert options[2].startswith("mnist-cnn: MNIST 28x28, ") and options[4] == "tiny-gpt: text (characters)"
    note = page.text_content("#drawn-note")
    share = float(page.get_attribute("#drawn-note", "data-recognised"))
    assert note.startswith("Learned digits (UCI 8x8). Recognises ")
    assert f"{round(100 * share)} % of handgrad's 400 drawn test digits" in note and f"{round(100 * share)} %" in options[1]
    assert errors == []


def test_a_convnets_4320_unit_flatten_is_folded_so_the_page_stays_short(server, browser):
    page, errors = open_page(browser, f"{server}/?model=mnist-convnet", 900, "image")
    draw_stroke(page, [(0.3, 0.2), (0.7, 0.2), (0.4, 0.85)])  # a 7
    page.wait_for_function("document.querySelectorAll('#layers .layer').length === 7")
    page.wait_for_function("document.querySelector('#bars .bar') !== null")
    height = page.evaluate("document.documentElement.scrollHeight")
    flatten = page.locator("#layers .layer", has_text="Flatten (4320)")
    assert flatten.get_attribute("data-folded") == "true"
    folded_canvas = flatten.locator("canvas").evaluate("c => c.height")
    # Measured at 1280 px wide: 1,432 px folded; unfolded, the Flatten alone is 1,512 px tall
    # (108 rows of 40 units) and the page about 2,800.
    assert height < 1600, height
    flatten.locator("button.fold").click()
    assert flatten.get_attribute("data-folded") == "false"
    assert flatten.locator("canvas").evaluate("c => c.height") >= 10 * folded_canvas   # all 108 rows of 40
    assert page.evaluate("document.documentElement.scrollHeight") > height + 1000
    flatten.locator("button.fold").click()
    assert flatten.locator("canvas").evaluate("c => c.height") == folded_canvas
    assert "first 400 of 4,320 units shown" in flatten.locator("button.fold").text_content()
    assert errors == []


def test_an_mnist_model_takes_the_drawing_centred_by_mass(server, browser):
    page, errors = open_page(browser, f"{server}/?model=mnist-cnn", 900, "image")
    draw_stroke(page, [(0.2, 0.2), (0.3, 0.6)])  # in a corner: the model still sees it centred
    page.wait_for_function("document.querySelectorAll('#layers .layer').length === 7")
    shape = page.text_content("#layers .layer h3")
    assert shape == "0 Convolution (4×24×24)"
    assert page.evaluate(NON_BLANK, "#seen")[0] > 2 and errors == []



def test_without_test_images_the_random_button_is_off_and_says_why(server, browser):
    """It answered 500 and showed a pink "Internal Server Error"; the server now knows at
    start-up, and the page disables the button with the reason, which stays after Clear."""
    page, errors = open_page(browser, f"{server}/?model=mnist-cnn", 900, "image")
    assert page.is_disabled("#random")
    reason = page.get_attribute("#random", "title")
    assert "no test images of mnist here" in reason and "--data-dir DIR holding mnist/" in reason
    assert page.text_content("#truth") == f"Random test image is off: {reason}."
    page.click("#clear")
    assert page.text_content("#truth") == f"Random test image is off: {reason}."
    page.select_option("#model", "digits-mlp")  # the embedded digits are always here
    assert not page.is_disabled("#random") and page.text_content("#truth") == ""
    assert errors == []


def test_type_a_prompt_and_watch_tokens_stream(server, browser, tmp_path):
    page, errors = open_page(browser, f"{server}/?model=tiny-gpt", 900, "text")
    page.fill("#prompt", "to be or not")
    page.fill("#length", "40")
    page.fill("#seed", "1")
    page.click("#generate")
    page.wait_for_function("document.querySelectorAll('#output .tok').length === 40")
    page.wait_for_function("document.querySelectorAll('#attention canvas').length === 4")  # 2 layers x 2 heads
    probabilities = page.eval_on_selector_all("#output .tok", "spans => spans.map(s => Number(s.dataset.probability))")
    assert all(0 < p <= 1 for p in probabilities)
    page.hover("#output .tok >> nth=3")
    assert "the 5 most likely" in page.text_content("#tooltip")
    assert page.locator("#tooltip div").count() == 6
    assert min(page.evaluate(NON_BLANK, "#attention canvas")) > 1
    # Every head's picture carries its characters on both axes: the last 16 (the context).
    text = page.evaluate("textSoFar()")
    labels = page.eval_on_selector_all("#attention canvas", """canvases => canvases.map(c => {
        const ctx = c.getContext("2d"), margin = 14;
        const dark = (x, y, w, h) => [...ctx.getImageData(x, y, w, h).data].filter((v, i) => i % 4 === 0 && v < 128).length;
        return [c.dataset.characters, c.dataset.labelledEvery, dark(margin, 0, c.width - margin, margin),
                dark(0, margin, margin, c.height - margin)];
    })""")
    for characters, every, top, left in labels:
        assert characters == text[-16:] and every == "1" and top > 20 and left > 20, labels
    page.screenshot(path=tmp_path / "serve-gpt.png")
    check_screenshot(tmp_path / "serve-gpt.png", 1280, 900)
    page.fill("#prompt", "ÉÉ")  # a character the model does not know: said on the page
    page.click("#generate")
    page.wait_for_function("!document.querySelector('#error').hidden")
    assert "not in the vocabulary" in page.text_content("#error")
    assert errors == []
