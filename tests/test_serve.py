"""handgrad serve's JSON API, through FastAPI's test client and through a live uvicorn server:
what it answers for images and prompts, that the saliency map is the model's own backward, that
concurrent requests do not share a model's cached values, and what it refuses."""

import base64
import io
import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("PIL")

import handgrad as hg  # noqa: E402
from handgrad import functions as F  # noqa: E402
from handgrad.model import GPT, SimpleConvNet  # noqa: E402
from handgrad.serve import create_app  # noqa: E402
from handgrad.serve.app import MAX_BODY_BYTES  # noqa: E402
from handgrad.serve.models import MAX_NEW_TOKENS  # noqa: E402

from fastapi.testclient import TestClient  # noqa: E402

TINY_VOCAB = "\n abcdefghijklmnopqrstuvwxyz.,!?"


def make_models(folder):
    """Small models, quickly: the digits MLP after 2 epochs, a random SimpleConvNet on 8x8
    digits, a random small one on 28x28 MNIST-style drawings, and a tiny GPT."""
    (x, t), (x_test, t_test) = hg.data.load_dataset("digits")
    mlp = hg.mlp(64, [32], 10, seed=0)
    hg.fit(mlp, hg.optim.Adam(lr=1e-2), (x, t), epochs=2, batch_size=32, seed=0, progress=False)
    paths = {"digits-mlp": folder / "digits-mlp.safetensors", "digits-cnn": folder / "digits-cnn.safetensors",
             "mnist-cnn": folder / "mnist-cnn.safetensors", "tiny-gpt": folder / "tiny-gpt.safetensors"}
    hg.save(mlp, paths["digits-mlp"], metadata={"dataset": "digits"})
    hg.save(SimpleConvNet(input_dim=(1, 8, 8), filter_num=6, filter_size=3, hidden_size=20, seed=1),
            paths["digits-cnn"], metadata={"dataset": "digits"})
    hg.save(SimpleConvNet(input_dim=(1, 28, 28), filter_num=4, hidden_size=16, seed=2), paths["mnist-cnn"],
            metadata={"dataset": "mnist"})
    hg.save(GPT(len(TINY_VOCAB), 16, 2, 2, 16, seed=3, vocab=TINY_VOCAB), paths["tiny-gpt"])
    return paths


@pytest.fixture(scope="module")
def model_files(tmp_path_factory):
    return make_models(tmp_path_factory.mktemp("served"))


@pytest.fixture(scope="module")
def client(model_files):
    with TestClient(create_app(list(model_files.values()), copies=2)) as c:
        yield c


def digit_pixels(index=0):
    _, (x_test, t_test) = hg.data.load_dataset("digits")
    return x_test[index].reshape(8, 8), int(t_test[index])


def drawing_data_url(size=200, thickness=18):
    """A white '1' (a vertical bar, off centre) on black, as the page's canvas sends it."""
    from PIL import Image

    canvas = np.zeros((size, size), np.uint8)
    canvas[30:170, 40:40 + thickness] = 255
    buffer = io.BytesIO()
    Image.fromarray(canvas).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


# --- what it answers ------------------------------------------------------------------------------


def test_models_lists_every_model_with_what_it_takes(client):
    answer = client.get("/api/models").json()
    assert [m["name"] for m in answer] == ["digits-mlp", "digits-cnn", "mnist-cnn", "tiny-gpt"]
    assert answer[0]["kind"] == "image" and answer[0]["image_shape"] == [8, 8] and answer[0]["dataset"] == "digits"
    assert answer[2]["image_shape"] == [28, 28] and answer[2]["class_names"] == [str(c) for c in range(10)]
    assert answer[3]["kind"] == "text" and answer[3]["vocab"] == TINY_VOCAB and answer[3]["n_head"] == 2


def test_predict_gives_the_models_probabilities_and_every_layers_output(client, model_files):
    pixels, _ = digit_pixels(3)
    answer = client.post("/api/models/digits-mlp/predict", json={"pixels": pixels.tolist()}).json()
    model = hg.load(model_files["digits-mlp"])
    expected = model.predict_proba(pixels.reshape(1, 64))[0]
    np.testing.assert_allclose(answer["probabilities"], expected, rtol=1e-5, atol=1e-7)  # float32 model
    assert abs(sum(answer["probabilities"]) - 1) < 1e-9
    assert answer["predicted"] == int(expected.argmax())
    assert [(layer["name"], layer["shape"]) for layer in answer["layers"]] == [("Affine", [32]), ("Relu", [32]),
                                                                            ("Affine", [10])]
    with model.mode(False):
        hidden = model.layers[1].forward(model.layers[0].forward(pixels.reshape(1, 64)))[0]
    np.testing.assert_allclose(answer["layers"][1]["values"], hidden, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(answer["input"], pixels, atol=1e-6)


def test_convolution_layers_answer_feature_maps(client):
    pixels, _ = digit_pixels(0)
    answer = client.post("/api/models/digits-cnn/predict", json={"pixels": pixels.ravel().tolist()}).json()
    # Convolution, then max pooling, then Relu (the ConvNets pool first: max and Relu commute).
    assert [(layer["name"], layer["shape"]) for layer in answer["layers"][:3]] == [
        ("Convolution", [6, 6, 6]), ("Pooling", [6, 3, 3]), ("Relu", [6, 3, 3])]
    assert np.array(answer["layers"][0]["values"]).shape == (6, 6, 6)


def test_saliency_is_the_class_scores_gradient_by_the_models_own_backward(client, model_files):
    """dS_c/dx for the predicted class and a chosen one, against central differences of the
    class score in float64 (the float32 model, cast)."""
    pixels, _ = digit_pixels(5)
    answer = client.post("/api/models/digits-cnn/predict",
                         json={"pixels": pixels.tolist(), "saliency_classes": [7]}).json()
    assert [s["class"] for s in answer["saliency"]] == list(dict.fromkeys([answer["predicted"], 7]))
    model = hg.load(model_files["digits-cnn"])
    for layer in model.layers:  # float64, so that the numerical gradient is exact to 1e-9
        for key in layer.params:
            layer.params[key][...] = layer.params[key]
    model64 = SimpleConvNet(input_dim=(1, 8, 8), filter_num=6, filter_size=3, hidden_size=20, dtype=np.float64)
    for name, value in model.params.items():
        model64.params[name][...] = value
    x = pixels.astype(np.float64).reshape(1, 1, 8, 8)
    for entry in answer["saliency"]:
        c = entry["class"]
        numerical = hg.gradcheck.numerical_gradient(lambda z: float(model64.predict(z)[0, c]), x.copy(), 1e-6)  # noqa: B023
        # The server's model is float32: its gradient agrees with float64 to float32's precision.
        np.testing.assert_allclose(np.array(entry["gradient"]).reshape(1, 1, 8, 8), numerical, rtol=1e-4, atol=1e-5)
        assert np.abs(numerical).max() > 1e-3


def test_a_drawing_is_prepared_as_handgrad_predict_prepares_an_image_file(client, tmp_path, model_files):
    """The data URL path gives what `read_image` gives for the same PNG: cropped, scaled into
    20x20 and centred by its centre of mass in 28x28 (MNIST's procedure)."""
    from handgrad.data.images import read_image

    url = drawing_data_url()
    answer = client.post("/api/models/mnist-cnn/predict", json={"image": url}).json()
    seen = np.array(answer["input"])
    (tmp_path / "one.png").write_bytes(base64.b64decode(url.split(",", 1)[1]))
    expected, _ = read_image(tmp_path / "one.png", "mnist")
    np.testing.assert_allclose(seen, expected, atol=1e-6)
    rows, cols = np.indices(seen.shape)
    assert abs((seen * rows).sum() / seen.sum() - 14) <= 0.5 and abs((seen * cols).sum() / seen.sum() - 14) <= 0.5
    assert abs(sum(answer["probabilities"]) - 1) < 1e-9 and len(answer["layers"]) == 7


def test_random_test_image_comes_with_its_true_label(client):
    first = client.get("/api/models/digits-mlp/test-image", params={"index": 10}).json()
    pixels, label = digit_pixels(10)
    assert first["label"] == label and first["index"] == 10 and first["class_name"] == str(label)
    np.testing.assert_allclose(first["pixels"], pixels, atol=1e-6)
    drawn = {client.get("/api/models/digits-mlp/test-image").json()["index"] for _ in range(5)}
    assert len(drawn) > 1  # random when no index is given


def read_events(response_text):
    events = []
    for block in response_text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        events.append((lines["event"], json.loads(lines["data"])))
    return events


def test_generate_streams_each_token_with_its_probability_and_top_5(client, model_files):
    response = client.post("/api/models/tiny-gpt/generate", json={"prompt": "hello", "length": 12,
                                                                    "temperature": 0, "seed": 0})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    events = read_events(response.text)
    assert [kind for kind, _ in events] == ["token"] * 12 + ["done"]
    gpt = hg.load(model_files["tiny-gpt"])
    greedy = gpt.generate(gpt.encode("hello")[None], 12, temperature=0)[0, 5:]
    assert [token["id"] for _, token in events[:-1]] == greedy.tolist()
    ids = gpt.encode("hello")
    for _, token in events[:-1]:
        with gpt.mode(False):
            p = F.softmax(gpt.predict(ids[None, -16:])[0, -1].astype(np.float64))
        assert token["token"] == TINY_VOCAB[token["id"]]
        np.testing.assert_allclose(token["probability"], p[token["id"]], rtol=1e-4)
        assert [alt["token"] for alt in token["top"]][0] == token["token"]  # greedy: the most likely
        assert len(token["top"]) == 5 and all(a["probability"] >= b["probability"]
                                              for a, b in zip(token["top"], token["top"][1:]))
        ids = np.append(ids, token["id"])


def test_generate_with_a_seed_repeats_itself(client):
    body = {"prompt": "the ", "length": 20, "temperature": 1.0, "top_k": 10, "seed": 7}
    first = client.post("/api/models/tiny-gpt/generate", json=body).text
    assert client.post("/api/models/tiny-gpt/generate", json=body).text == first


def test_attention_gives_every_heads_causal_weights(client):
    answer = client.post("/api/models/tiny-gpt/attention", json={"prompt": "abc abc"}).json()
    weights = np.array(answer["weights"])
    assert answer["tokens"] == list("abc abc") and weights.shape == (2, 2, 7, 7)
    np.testing.assert_allclose(weights.sum(axis=-1), 1, atol=1e-5)
    assert np.all(np.triu(weights, 1) == 0)  # no position sees the future
    long = client.post("/api/models/tiny-gpt/attention", json={"prompt": "x" * 40}).json()
    assert long["start"] == 24 and len(long["tokens"]) == 16  # the last block_size characters


def test_the_page_and_its_files_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and "<canvas" in page.text
    for name in ("app.js", "style.css"):
        assert client.get(f"/static/{name}").status_code == 200
    assert "/api/models/{name}/predict" in client.get("/openapi.json").json()["paths"]


# --- what it refuses, and how -------------------------------------------------------------------


@pytest.mark.parametrize("url, body, status, message", [
    ("/api/models/nope/predict", {"pixels": [0] * 64}, 404, "unknown model 'nope'; this server has digits-mlp"),
    ("/api/models/digits-mlp/predict", {"pixels": [0.5] * 63}, 422, "takes 8x8 images (64 pixels), got 63 pixels"),
    ("/api/models/mnist-cnn/predict", {"pixels": [[0.0] * 8] * 8}, 422, "takes 28x28 images (784 pixels), got 64"),
    ("/api/models/digits-mlp/predict", {"pixels": [[1, 2], [3]]}, 422, "pixels must be a list of numbers"),
    ("/api/models/digits-mlp/predict", {}, 422, "give exactly one of image (a PNG data URL) and pixels"),
    ("/api/models/digits-mlp/predict", {"image": "data:text/html;base64,AAAA"}, 422, "image must be a data URL"),
    ("/api/models/digits-mlp/predict", {"image": "data:image/png;base64,@@@"}, 422, "base64 is malformed"),
    ("/api/models/digits-mlp/predict", {"image": "data:image/png;base64,AAAA"}, 422,
     "the drawing: not an image Pillow can read"),
    ("/api/models/digits-mlp/predict", {"pixels": [0] * 64, "saliency_classes": [10]}, 422,
     "saliency class 10 is not one of the model's classes 0..9"),
    ("/api/models/tiny-gpt/predict", {"pixels": [0] * 64}, 400, "model tiny-gpt is a text model; this needs an image"),
    ("/api/models/digits-mlp/generate", {"prompt": "a"}, 400, "model digits-mlp is an image model"),
    ("/api/models/tiny-gpt/generate", {"prompt": "a", "length": MAX_NEW_TOKENS + 1}, 422,
     f"length {MAX_NEW_TOKENS + 1} is over the cap of {MAX_NEW_TOKENS} tokens"),
    ("/api/models/tiny-gpt/generate", {"prompt": "ABC"}, 422, "prompt: characters 'ABC' are not in the vocabulary"),
    ("/api/models/tiny-gpt/generate", {"prompt": "a", "length": "many"}, 422, "body.length: Input should be a valid"),
    ("/api/models/tiny-gpt/generate", {"prompt": "a", "temperature": -1}, 422, "temperature must be a finite number"),
    ("/api/models/tiny-gpt/attention", {"prompt": "É"}, 422, "characters 'É' are not in the vocabulary"),
])
def test_bad_requests_get_a_4xx_naming_what_was_wrong(client, url, body, status, message):
    response = client.post(url, json=body)
    assert response.status_code == status
    assert message in response.json()["detail"]


def test_nan_and_infinity_are_refused(client):
    for value in ("NaN", "Infinity", "-Infinity"):  # Python's JSON reader accepts these words
        body = '{"pixels": [' + ", ".join(["0.5"] * 63 + [value]) + "]}"
        response = client.post("/api/models/digits-mlp/predict", content=body,
                               headers={"content-type": "application/json"})
        assert response.status_code == 422 and "NaN or infinity" in response.json()["detail"]


def test_a_blank_drawing_is_refused_as_no_digit(client):
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (100, 100), 0).save(buffer, format="PNG")
    url = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    response = client.post("/api/models/digits-mlp/predict", json={"image": url})
    assert response.status_code == 422 and "the drawing: no digit found" in response.json()["detail"]


def test_bodies_over_one_mebibyte_are_refused_announced_or_streamed(client):
    big = b'{"pixels": [' + b"0," * (MAX_BODY_BYTES // 2) + b"0]}"
    response = client.post("/api/models/digits-mlp/predict", content=big, headers={"content-type": "application/json"})
    assert response.status_code == 413 and "over the limit of 1,048,576 bytes" in response.json()["detail"]

    def chunks():  # no content-length: the server counts as it reads
        for _ in range(len(big) // 65536 + 1):
            yield big[:65536]
    response = client.post("/api/models/digits-mlp/predict", content=chunks(),
                           headers={"content-type": "application/json"})
    assert response.status_code == 413


def test_a_model_that_serve_cannot_show_is_refused_at_start(tmp_path):
    signals = hg.mlp(40, [8], 10, seed=0)
    hg.save(signals, tmp_path / "m1d.safetensors", metadata={"dataset": "mnist1d"})
    with pytest.raises(ValueError, match="m1d.safetensors: serve shows image classifiers and GPTs: a model with "
                                         "40 inputs takes no images"):
        create_app([tmp_path / "m1d.safetensors"])
    hg.save(GPT(5, 4, 1, 1, 4, seed=0), tmp_path / "novocab.safetensors")
    with pytest.raises(ValueError, match="this GPT has no vocabulary"):
        create_app([tmp_path / "novocab.safetensors"])


def test_two_files_with_the_same_name_get_two_names(tmp_path, model_files):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "model.safetensors").write_bytes(model_files["digits-mlp"].read_bytes())
    (tmp_path / "a" / "x.safetensors").write_bytes(model_files["digits-mlp"].read_bytes())
    app = create_app([tmp_path / "a" / "model.safetensors", tmp_path / "b" / "model.safetensors",
                      tmp_path / "a" / "x.safetensors", tmp_path / "a" / "x.safetensors"], copies=1)
    assert list(app.state.served) == ["a", "b", "x", "x-2"]


# --- concurrency, against a live server -------------------------------------------------------------


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def live_server(model_files):
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(list(model_files.values()), copies=3), host="127.0.0.1",
                                           port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def test_50_concurrent_requests_each_get_the_sequential_answer(live_server):
    """Layers cache values between forward and backward: one model object shared by two
    requests would mix their activations and saliency maps. 50 requests at once, on 3 copies
    of each model, must each give exactly the answer it gets alone."""
    import httpx

    _, (x_test, _) = hg.data.load_dataset("digits")
    jobs = [("digits-mlp" if i % 2 else "digits-cnn", x_test[i].reshape(8, 8).tolist(), [i % 10]) for i in range(50)]

    def ask(job, http):
        name, pixels, classes = job
        response = http.post(f"{live_server}/api/models/{name}/predict",
                             json={"pixels": pixels, "saliency_classes": classes}, timeout=60)
        assert response.status_code == 200, response.text
        return response.json()

    with httpx.Client() as http:
        alone = [ask(job, http) for job in jobs]
    with ThreadPoolExecutor(max_workers=50) as pool, httpx.Client(limits=httpx.Limits(max_connections=50)) as http:
        together = list(pool.map(lambda job: ask(job, http), jobs))
    assert len({json.dumps(a["probabilities"]) for a in alone}) > 10  # the requests do differ
    for one, other in zip(alone, together):
        assert one == other  # the same process, model and input: the same numbers


# --- the command ------------------------------------------------------------------------------------


def test_serve_command_binds_this_machine_by_default_and_warns_for_another_host(model_files, monkeypatch, capsys):
    import handgrad.serve
    from handgrad.cli import main

    calls = []

    def record(uvicorn, app, listening):
        host, port = listening.getsockname()[:2]
        calls.append({"host": host, "port": port})
        listening.close()

    monkeypatch.setattr(handgrad.serve, "_run_server", record)
    port = free_port()
    assert main(["serve", str(model_files["digits-mlp"]), "--port", str(port)]) == 0
    assert calls[-1]["host"] == "127.0.0.1" and calls[-1]["port"] == port
    captured = capsys.readouterr()
    assert f"serving digits-mlp at http://127.0.0.1:{port}/ (API: http://127.0.0.1:{port}/docs)" in captured.out
    assert "warning" not in captured.err
    assert main(["serve", str(model_files["digits-mlp"]), "--host", "0.0.0.0", "--port", str(free_port())]) == 0
    assert calls[-1]["host"] == "0.0.0.0"
    assert "warning: serving on 0.0.0.0: the page and its API are reachable from other machines" in capsys.readouterr().err


def test_serve_command_says_in_one_line_that_a_port_is_busy_or_out_of_range(model_files, capsys):
    from handgrad.cli import main

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["serve", str(model_files["digits-mlp"]), "--port", str(port)]) == 1
    captured = capsys.readouterr()
    assert f"handgrad serve: error: cannot listen on 127.0.0.1:{port}:" in captured.err
    assert "serving" not in captured.out and "Traceback" not in captured.err
    with pytest.raises(SystemExit):
        main(["serve", str(model_files["digits-mlp"]), "--port", "65536"])
    assert "must be a port number from 1 to 65535, got 65536" in capsys.readouterr().err


def test_serve_command_names_a_folder_as_export_does(tmp_path, capsys):
    from handgrad.cli import main

    (tmp_path / "run").mkdir()
    hg.save(hg.mlp(64, [8], 10, seed=0), tmp_path / "run" / "model.safetensors")
    assert main(["serve", str(tmp_path / "run")]) == 1
    assert f"{tmp_path / 'run'} is a folder, not a model file (did you mean" in capsys.readouterr().err


def test_serve_command_refuses_a_missing_file_or_a_model_it_cannot_show(tmp_path, capsys):
    from handgrad.cli import main

    assert main(["serve", str(tmp_path / "nothing.safetensors")]) == 1
    assert "nothing.safetensors: no such model file" in capsys.readouterr().err
    hg.save(hg.mlp(40, [8], 10, seed=0), tmp_path / "m1d.safetensors", metadata={"dataset": "mnist1d"})
    assert main(["serve", str(tmp_path / "m1d.safetensors")]) == 1
    assert "serve shows image classifiers and GPTs" in capsys.readouterr().err


def test_a_model_computing_nan_answers_null_values_no_prediction_and_says_where(tmp_path):
    """JSON has no NaN: the answer carries null there, the trace's warnings name the layer, and
    no class is called predicted (the argmax of NaN would say class 0). A file with NaN weights
    is refused when loaded, so the weights turn NaN after loading here (as an overflow would)."""
    hg.save(hg.mlp(64, [8], 10, seed=0), tmp_path / "broken.safetensors")
    app = create_app([tmp_path / "broken.safetensors"], copies=1)
    app.state.served["broken"].pool.first.layers[2].W[0, 0] = np.nan
    with TestClient(app) as c:
        response = c.post("/api/models/broken/predict", json={"pixels": [0.5] * 64})
    assert response.status_code == 200
    answer = json.loads(response.text, parse_constant=lambda word: pytest.fail(f"{word} in the JSON"))
    assert None in answer["probabilities"] and None in answer["layers"][2]["values"]
    assert answer["predicted"] is None and answer["saliency"] == []
    assert any("layer 2 Affine: NaN or infinity in its output" in w for w in answer["warnings"])


def test_without_the_serve_extra_the_command_says_what_to_install(model_files, monkeypatch, capsys):
    import sys

    from handgrad.cli import main

    monkeypatch.setitem(sys.modules, "uvicorn", None)  # as if it were not installed
    assert main(["serve", str(model_files["digits-mlp"])]) == 1
    assert 'uvicorn is missing): pip install "handgrad[serve]"' in capsys.readouterr().err


# --- "Random test image": decided at start-up, never a 500 ---------------------------------------


@pytest.fixture
def no_data_anywhere(tmp_path, monkeypatch):
    """No MNIST under $HANDGRAD_DATA or the cache."""
    monkeypatch.setenv("HANDGRAD_DATA", str(tmp_path / "empty-root"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


def test_random_test_image_without_mnist_is_switched_off_at_start_up_with_the_reason_not_a_500(
        model_files, no_data_anywhere):
    """An MNIST model served without --data-dir answered 500 (a DataError escaped) on "Random
    test image". Now the server knows at start-up, says why in the model's description (the page
    disables the button with that reason), and the endpoint answers 404 with the same words."""
    with TestClient(create_app([model_files["mnist-cnn"], model_files["digits-mlp"]]), raise_server_exceptions=False) as c:
        described = {m["name"]: m for m in c.get("/api/models").json()}
        missing = described["mnist-cnn"]["test_images_missing"]
        assert "no test images of mnist here" in missing and "--data-dir DIR holding mnist/" in missing
        assert "t10k-images-idx3-ubyte.gz not found" in missing
        assert described["digits-mlp"]["test_images_missing"] is None  # embedded: always here
        answer = c.get("/api/models/mnist-cnn/test-image")
        assert answer.status_code == 404 and answer.json()["detail"] == missing
        assert c.get("/api/models/digits-mlp/test-image").status_code == 200


def test_random_test_image_uses_the_data_root_the_model_was_trained_from(tmp_path, model_files, no_data_anywhere):
    from conftest import SHARED_DATA

    if not (SHARED_DATA / "mnist" / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"MNIST not found under {SHARED_DATA}")
    model = hg.load(model_files["mnist-cnn"])
    path = tmp_path / "trained-with-root.safetensors"
    hg.save(model, path, metadata={"dataset": "mnist", "data_dir": str(SHARED_DATA.resolve())})
    with TestClient(create_app([path])) as c:
        assert c.get("/api/models").json()[0]["test_images_missing"] is None
        sample = c.get("/api/models/trained-with-root/test-image", params={"index": 0}).json()
        assert len(sample["pixels"]) == 28 and sample["label"] == 7  # MNIST's first test image is a 7


def test_test_images_that_vanish_after_start_up_are_a_404_not_a_500(tmp_path, model_files, no_data_anywhere):
    import shutil

    from conftest import SHARED_DATA

    source = SHARED_DATA / "mnist"
    if not (source / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"MNIST not found under {SHARED_DATA}")
    root = tmp_path / "root"
    (root / "mnist").mkdir(parents=True)
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy(source / name, root / "mnist" / name)
    with TestClient(create_app([model_files["mnist-cnn"]], data_dir=root), raise_server_exceptions=False) as c:
        assert c.get("/api/models").json()[0]["test_images_missing"] is None
        (root / "mnist" / "t10k-images-idx3-ubyte.gz").unlink()
        answer = c.get("/api/models/mnist-cnn/test-image")
        assert answer.status_code == 404 and "no test images of mnist here" in answer.json()["detail"]
