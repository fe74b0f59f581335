"""handgrad serve under hostile or broken input (issue 22): each test is named after what went
wrong. Image bombs, numbers finite in float64 but not in float32, models that compute NaN or
whose vocabulary is not text, a 60 KB model name, absurd --copies, a queue on one model that
starved the page and the other models, and a foreign Host header (DNS rebinding)."""

import base64
import io
import json
import struct
import threading
import time
import warnings
import zlib
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("PIL")

from fastapi.testclient import TestClient
from test_serve import TINY_VOCAB, drawing_data_url, free_port, make_models

from handgrad.serve import create_app
from handgrad.serve.app import DECODERS, MAX_WAITING
from handgrad.serve.models import MAX_COPIES, MAX_DRAWING_PIXELS


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    return make_models(tmp_path_factory.mktemp("safety"))


@pytest.fixture(scope="module")
def client(model_files):
    with TestClient(create_app(list(model_files.values()), copies=1)) as c:
        yield c


def strict_json(text: str):
    """``text`` parsed as JSON that a browser's JSON.parse accepts: no NaN, no Infinity."""
    return json.loads(text, parse_constant=lambda word: pytest.fail(f"{word} in the server's JSON: {text[:200]}"))


def png_url(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def png_header_claiming(width: int, height: int) -> bytes:
    """A palette PNG that declares width x height pixels in its header; its pixel data is a
    few bytes (Pillow reads the header alone in Image.open)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 3, 0, 0, 0)  # 8 bits, palette
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"PLTE", b"\0\0\0\xff\xff\xff")
            + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b""))


@contextmanager
def live(app):
    """``app`` served by uvicorn on a free port of 127.0.0.1, in a thread: its base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


def wait_until(condition, what, seconds: float = 60) -> None:
    """Wait for ``condition()``; fail after ``seconds`` saying ``what()`` (the state seen)."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"still not the case after {seconds} s: {what()}"
        time.sleep(0.02)


def state(gate, futures) -> str:
    done = [f.exception() or f.result().text[:100] for f in futures if f.done()]
    return f"{gate.running} computing, {gate.waiting} waiting, {len(done)} answered: {set(map(repr, done))}"


# --- 5: image bombs ---------------------------------------------------------------------------------


def test_an_8000x8000_palette_png_is_refused_on_its_header_before_decoding(client, monkeypatch):
    """A few KB of PNG declaring 64 million pixels (under Pillow's own limit of 89 million) cost
    550 MB a request to decode. The header is read, the pixels counted, 413; nothing decoded."""
    from PIL import Image, ImageFile

    image = Image.new("P", (8000, 8000))
    image.paste(255, (3000, 1000, 3400, 7000))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    del image
    decoded = []
    real_load = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: decoded.append(self.size) or real_load(self))
    response = client.post("/api/models/mnist-cnn/predict", json={"image": png_url(buffer.getvalue())})
    assert response.status_code == 413
    assert response.json()["detail"] == (f"the drawing: an image of 8000x8000 = 64,000,000 pixels is over this "
                                         f"server's limit of {MAX_DRAWING_PIXELS:,} pixels; scale it down")
    assert decoded == []
    assert client.post("/api/models/mnist-cnn/predict", json={"image": drawing_data_url()}).status_code == 200
    assert decoded and set(decoded) == {(200, 200)}  # a drawing of the page's size is decoded as before


def test_images_over_pillows_own_bomb_limits_are_refused_with_413_too(client):
    """Pillow warns above Image.MAX_IMAGE_PIXELS and raises DecompressionBombError above twice
    it, in Image.open itself: both are answered 413 with the number of pixels."""
    from PIL import Image

    with pytest.warns(Image.DecompressionBombWarning):
        warned = client.post("/api/models/digits-mlp/predict", json={"image": png_url(png_header_claiming(10_000, 10_000))})
    assert warned.status_code == 413 and "10000x10000 = 100,000,000 pixels is over this server's limit" in warned.text
    refused = client.post("/api/models/digits-mlp/predict", json={"image": png_url(png_header_claiming(20_000, 20_000))})
    assert refused.status_code == 413
    assert "an image of 400,000,000 pixels is over this server's limit" in refused.json()["detail"]


def test_only_png_jpeg_and_webp_decoders_see_a_clients_bytes(client):
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (40, 40), 0).save(buffer, format="GIF")
    response = client.post("/api/models/digits-mlp/predict", json={"image": png_url(buffer.getvalue())})
    assert response.status_code == 422
    assert response.json()["detail"] == "the drawing: not an image Pillow can read (PNG, JPEG or WebP)"


def test_drawings_are_decoded_two_at_a_time_and_a_full_queue_answers_503(model_files, monkeypatch):
    """Decoding takes memory outside the model copies: at most DECODERS at once, MAX_WAITING
    waiting (holding no thread), the next refused with Retry-After; the pixels path goes on."""
    import httpx

    import handgrad.data.images

    release = threading.Event()
    real_read = handgrad.data.images.read_image

    def held_read(*args):
        release.wait(60)
        return real_read(*args)

    monkeypatch.setattr(handgrad.data.images, "read_image", held_read)
    app = create_app([model_files["digits-mlp"]], copies=1)
    decoders = app.state.decoders
    n = DECODERS + MAX_WAITING + 3
    url_of_drawing = drawing_data_url()
    with live(app) as url, ThreadPoolExecutor(n) as pool, \
            httpx.Client(limits=httpx.Limits(max_connections=n + 10), timeout=60) as http:
        try:
            futures = [pool.submit(http.post, f"{url}/api/models/digits-mlp/predict", json={"image": url_of_drawing})
                       for _ in range(n)]
            wait_until(lambda: decoders.running == DECODERS and decoders.waiting == MAX_WAITING
                       and sum(f.done() for f in futures) == 3, lambda: state(decoders, futures))
            other = http.post(f"{url}/api/models/digits-mlp/predict", json={"pixels": [0.5] * 64}, timeout=20)
            assert other.status_code == 200
            refused = [f.result() for f in futures if f.done()]
            assert decoders.running == DECODERS and decoders.waiting == MAX_WAITING
        finally:
            release.set()
        answers = [f.result() for f in futures]
    assert all(r.status_code == 503 and r.headers["retry-after"] == "1" for r in refused)
    assert "the image decoder is busy: 64 requests are waiting for it already" in refused[0].json()["detail"]
    assert sorted(r.status_code for r in answers) == [200] * (DECODERS + MAX_WAITING) + [503] * 3


# --- 8: numbers finite in float64 but not in the model's float32 --------------------------------------


@pytest.mark.parametrize("value", [1e300, -1e300, 3.5e38, 10**400])
def test_pixels_finite_in_float64_but_not_in_float32_are_refused_without_runtime_warnings(client, value):
    body = json.dumps({"pixels": [0.5] * 63 + [value]})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        response = client.post("/api/models/digits-mlp/predict", content=body,
                               headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert "too large for float32" in response.json()["detail"]
    assert [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)] == []


def test_pixels_that_overflow_inside_the_model_predict_no_class(client):
    """3e38 is a float32, but the first layer's sums overflow: the answer says NaN where it is
    (null, and the trace's warning) and predicts nothing, rather than class 0."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        response = client.post("/api/models/digits-mlp/predict", json={"pixels": [3e38] * 64})
    assert response.status_code == 200
    answer = strict_json(response.text)
    assert answer["predicted"] is None and None in answer["probabilities"]
    assert any("NaN or infinity" in w for w in answer["warnings"])
    assert [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)] == []
    small = client.post("/api/models/digits-mlp/predict", json={"pixels": [1e-300] * 64})  # 0 in float32
    assert small.status_code == 200 and strict_json(small.text)["predicted"] is not None


# --- 9: a GPT that computes NaN -----------------------------------------------------------------------


def poison(model) -> None:
    """NaN in the weights of a loaded model (a file with NaN weights is refused at load)."""
    for value in model.params.values():
        value[...] = np.nan


def test_a_gpt_computing_nan_answers_500_in_json_not_a_stream_of_nan_and_token_0(model_files):
    app = create_app([model_files["tiny-gpt"]], copies=1)
    poison(app.state.served["tiny-gpt"].pool.first)
    with TestClient(app) as c:
        response = c.post("/api/models/tiny-gpt/generate", json={"prompt": "hello", "length": 5, "seed": 0})
        assert response.status_code == 500 and response.headers["content-type"] == "application/json"
        assert strict_json(response.text)["detail"] == (
            "model tiny-gpt: the logits of character 1 hold NaN or infinity (weights or values overflowing its "
            "dtype); no character can be sampled")
        attention = c.post("/api/models/tiny-gpt/attention", json={"prompt": "hello"})
        assert attention.status_code == 200 and strict_json(attention.text)["weights"][0][0][0][0] is None


def test_a_gpt_computing_nan_mid_stream_ends_it_with_an_error_event_of_valid_json(model_files):
    """The stream has started (200) when the second character's copy computes NaN: an 'error'
    event ends it, and every event's data parses in a browser."""
    app = create_app([model_files["tiny-gpt"]], copies=2)
    pool = app.state.served["tiny-gpt"].pool
    with pool.borrow() as first, pool.borrow():
        pass  # copies are handed out in turn: the second, then the first again
    poison(first)
    with TestClient(app) as c:
        response = c.post("/api/models/tiny-gpt/generate", json={"prompt": "hello", "length": 5, "seed": 0})
    assert response.status_code == 200
    events = []
    for block in response.text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((lines["event"], strict_json(lines["data"])))
    assert [kind for kind, _ in events] == ["token", "error"]
    assert events[0][1]["token"] in TINY_VOCAB
    assert "the logits of character 2 hold NaN or infinity" in events[1][1]["detail"]


def test_no_answer_is_written_with_nan_infinity_or_a_lone_surrogate():
    """Every JSON answer goes through one writer: what JSON.parse would refuse becomes a 500
    that says why, itself valid JSON."""
    from handgrad.serve.app import _answer, _event

    for content, why in (({"p": [0.5, float("nan")]}, "NaN or infinity"), ({"p": float("inf")}, "NaN or infinity"),
                         ({"token": "\ud800"}, "a lone surrogate")):
        response = _answer(content)
        assert response.status_code == 500 and why in strict_json(response.body.decode("utf-8"))["detail"]
    event = _event("token", {"probability": float("nan")})
    assert event.startswith("event: error\ndata: ") and "NaN or infinity" in strict_json(event.split("data: ")[1])["detail"]


def test_a_model_with_nan_weights_is_refused_at_start_naming_its_file(model_files, monkeypatch, capsys):
    """hg.load refuses such a file; should a loader let one through, serve refuses it itself."""
    import handgrad.serialize
    from handgrad.cli import main

    real_load = handgrad.serialize.load

    def load_with_nan(path):
        model = real_load(path)
        poison(model)
        return model

    monkeypatch.setattr(handgrad.serialize, "load", load_with_nan)
    assert main(["serve", str(model_files["tiny-gpt"]), "--copies", "1", "--port", str(free_port())]) == 1
    err = capsys.readouterr().err
    assert f"{model_files['tiny-gpt']}: weight " in err and "holds NaN or infinity; serve refuses a model" in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_a_file_that_fails_to_load_is_reported_in_one_line_not_served(model_files, tmp_path, capsys):
    from handgrad.cli import main

    (tmp_path / "garbage.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}")
    assert main(["serve", str(model_files["digits-mlp"]), str(tmp_path / "garbage.safetensors"),
                 "--port", str(free_port())]) == 1
    err = capsys.readouterr().err
    assert "garbage.safetensors" in err and err.count("\n") == 1 and "Traceback" not in err


# --- 12: a model that cannot be described ---------------------------------------------------------------


def test_a_vocabulary_with_a_lone_surrogate_is_refused_at_start_in_one_line(model_files, monkeypatch):
    """Its description cannot be written as UTF-8: /api/models answered 500 and the page showed
    no model at all. hg.load refuses such a vocabulary; serve refuses it too, naming it."""
    import handgrad.serialize
    from handgrad.data.text import CharVocab

    real_load = handgrad.serialize.load

    def load_lone_surrogate(path):
        model = real_load(path)
        if model.__class__.__name__ == "GPT":
            model.vocab = CharVocab(TINY_VOCAB[:-1] + "\ud800")
        return model

    monkeypatch.setattr(handgrad.serialize, "load", load_lone_surrogate)
    with pytest.raises(ValueError) as refused:
        create_app([model_files["digits-mlp"], model_files["tiny-gpt"]], copies=1)
    message = str(refused.value)
    assert message == (f"{model_files['tiny-gpt']}: vocabulary character {len(TINY_VOCAB) - 1} is '\\ud800', a lone "
                       "surrogate, not a character of text; serve cannot show it")


def test_a_description_that_is_not_json_is_refused_at_start_and_the_listing_cannot_fail(model_files, monkeypatch):
    from handgrad.serve.models import ImageModel

    real_describe = ImageModel.describe
    monkeypatch.setattr(ImageModel, "describe", lambda self: {**real_describe(self), "parameters": float("nan")})
    with pytest.raises(ValueError, match=r"digits-mlp.safetensors: cannot describe this model for the page "
                                         r"\(ValueError: Out of range float values are not JSON compliant"):
        create_app([model_files["digits-mlp"]], copies=1)
    monkeypatch.setattr(ImageModel, "describe", real_describe)
    app = create_app([model_files["digits-mlp"], model_files["tiny-gpt"]], copies=1)
    monkeypatch.setattr(ImageModel, "describe", lambda self: 1 / 0)  # written at start: never again
    with TestClient(app) as c:
        listing = c.get("/api/models")
    assert listing.status_code == 200 and [m["name"] for m in strict_json(listing.text)] == ["digits-mlp", "tiny-gpt"]


# --- 14: unbounded echoes, absurd copies ----------------------------------------------------------------


def test_a_60_kb_model_name_is_not_echoed_back(client):
    response = client.post(f"/api/models/{'a' * 60_000}/predict", json={"pixels": [0] * 64})
    assert response.status_code == 404 and len(response.content) < 300
    assert response.json()["detail"] == (f"unknown model {'a' * 40!r}… (60,000 characters); this server has "
                                         "digits-mlp, digits-cnn, mnist-cnn, tiny-gpt")


def test_thousands_of_unknown_prompt_characters_are_not_echoed_back(client):
    prompt = "".join(chr(0x4E00 + i) for i in range(5000))
    response = client.post("/api/models/tiny-gpt/generate", json={"prompt": prompt})
    assert response.status_code == 422 and len(response.content) < 500
    assert "(5,000 characters) are not in the vocabulary of model tiny-gpt" in response.json()["detail"]


def test_copies_over_the_maximum_are_refused_in_one_line_before_loading(model_files, monkeypatch):
    import handgrad.serialize

    loaded = []
    monkeypatch.setattr(handgrad.serialize, "load", lambda path: loaded.append(path))
    for copies in (100_000, 0, MAX_COPIES + 1):
        with pytest.raises(ValueError) as refused:
            create_app([model_files["digits-mlp"]], copies=copies)
        assert str(refused.value) == (f"copies (--copies) must be a whole number from 1 to {MAX_COPIES} (one copy "
                                      f"per request computed at once), got {copies}")
    assert loaded == []


def test_running_out_of_memory_loading_copies_says_so_instead_of_out_of_memory_empty(model_files, monkeypatch,
                                                                                       capsys):
    import handgrad.serialize
    from handgrad.cli import main

    real_load, calls = handgrad.serialize.load, []

    def load_until_full(path):
        calls.append(path)
        if len(calls) == 3:
            raise MemoryError
        return real_load(path)

    monkeypatch.setattr(handgrad.serialize, "load", load_until_full)
    assert main(["serve", str(model_files["digits-mlp"]), "--copies", "4", "--port", str(free_port())]) == 1
    err = capsys.readouterr().err
    assert err == (f"handgrad serve: error: {model_files['digits-mlp']}: out of memory loading copy 3 of 4; "
                   "serve it with fewer copies (--copies)\n")


# --- 15: fairness, and the Host header --------------------------------------------------------------------


def test_a_queue_on_one_model_holds_no_thread_the_page_and_other_models_need(model_files):
    """100 predicts queued on one model with one copy made GET / and another model wait 7 s:
    each waiting request held one of the server's 40 threads. Now, while that copy is held busy,
    the page, the listing and another model answer; 64 requests wait and the rest get 503."""
    import httpx

    app = create_app([model_files["digits-mlp"], model_files["digits-cnn"]], copies=1)
    busy = app.state.served["digits-mlp"]
    gate = app.state.gates["digits-mlp"]
    release = threading.Event()
    real_explain = busy.explain

    def held_explain(*args):  # the only copy stays busy until released
        release.wait(60)
        return real_explain(*args)

    busy.explain = held_explain
    n = 100
    refused_count = n - 1 - MAX_WAITING
    with live(app) as url, ThreadPoolExecutor(n) as pool, \
            httpx.Client(limits=httpx.Limits(max_connections=n + 10), timeout=60) as http:
        try:
            futures = [pool.submit(http.post, f"{url}/api/models/digits-mlp/predict", json={"pixels": [0.5] * 64})
                       for _ in range(n)]
            wait_until(lambda: gate.running == 1 and gate.waiting == MAX_WAITING
                       and sum(f.done() for f in futures) == refused_count, lambda: state(gate, futures))
            page = http.get(f"{url}/", timeout=20)
            listing = http.get(f"{url}/api/models", timeout=20)
            other = http.post(f"{url}/api/models/digits-cnn/predict", json={"pixels": [0.5] * 64}, timeout=20)
            # ... all answered while the busy model's requests still wait: none had to finish first.
            assert gate.running == 1 and gate.waiting == MAX_WAITING and not release.is_set()
            refused = [f.result() for f in futures if f.done()]
        finally:
            release.set()
        answers = [f.result() for f in futures]
    assert page.status_code == 200 and "<canvas" in page.text
    assert listing.status_code == 200 and other.status_code == 200
    assert strict_json(other.text)["predicted"] in range(10)
    assert all(r.status_code == 503 and r.headers["retry-after"] == "1" for r in refused)
    assert refused[0].json()["detail"] == ("model digits-mlp is busy: 64 requests are waiting for it already; try "
                                           "again in 1 s")
    assert sorted(r.status_code for r in answers) == [200] * (1 + MAX_WAITING) + [503] * refused_count
    assert len({r.text for r in answers if r.status_code == 200}) == 1  # the same image, the same answer


def served_app(monkeypatch, model_file, host):
    """The app `handgrad serve --host HOST` would run, and its port (uvicorn not started)."""
    import handgrad.serve

    started = []

    def record(uvicorn, app, listening):
        started.append((app, listening.getsockname()[1]))
        listening.close()

    monkeypatch.setattr(handgrad.serve, "_run_server", record)
    handgrad.serve.serve([model_file], host=host, port=free_port(), copies=1)
    return started[-1]


def test_a_loopback_server_refuses_a_foreign_host_header_against_dns_rebinding(model_files, monkeypatch, capsys):
    app, port = served_app(monkeypatch, model_files["digits-mlp"], "127.0.0.1")
    with TestClient(app, base_url=f"http://127.0.0.1:{port}") as c:
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", "LOCALHOST"):
            assert c.get("/api/models", headers={"host": host}).status_code == 200, host
        for host in (f"evil.example:{port}", f"127.0.0.1.evil.example:{port}", "localhost.evil.example", "[::2]"):
            response = c.post("/api/models/digits-mlp/predict", json={"pixels": [0.5] * 64}, headers={"host": host})
            assert response.status_code == 400 and response.text == "Invalid host header", host
    # Bound to every interface (which prints a warning), other names are the point: no check.
    app, port = served_app(monkeypatch, model_files["digits-mlp"], "0.0.0.0")
    with TestClient(app, base_url=f"http://127.0.0.1:{port}") as c:
        assert c.get("/api/models", headers={"host": f"my-machine.lan:{port}"}).status_code == 200
    assert "warning: serving on 0.0.0.0" in capsys.readouterr().err
