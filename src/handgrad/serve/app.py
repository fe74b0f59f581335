"""The web app: a JSON API (FastAPI, documented at ``/docs`` and ``/openapi.json``) over the
served models, and the page itself (``/``, plain HTML, CSS and JavaScript shipped in
``static/``, nothing fetched from elsewhere).

FastAPI rather than bare Starlette: the same handlers, but request bodies are declared once as
typed models, which gives the validation (and its 422 answers) and the OpenAPI page for free.

Turns. Handlers are ``async``: they read and check the request on the event loop and hand every
NumPy computation to a worker thread (NumPy releases the GIL in its BLAS calls, so two requests
on two model copies use two cores). Each served model has a :class:`_Gate`: at most ``copies``
of its requests compute at once, in threads of its own; the others wait for their turn on the
event loop, holding no thread, so a queue of requests on one model never delays the page or
another model. At most :data:`MAX_WAITING` requests wait per model; the next is answered 503
with ``Retry-After``. Drawings are decoded under a gate of their own (:data:`DECODERS` at once,
each at most :data:`~handgrad.serve.models.MAX_DRAWING_PIXELS`), so however many arrive, the
memory spent decoding them is bounded.

JSON. Every answer is written by :func:`_answer`: strict JSON (no NaN or Infinity, which
JavaScript's ``JSON.parse`` refuses; no lone surrogate, which is no UTF-8), or else a 500 saying
so. The models' descriptions are written once, at start, so that ``/api/models`` cannot fail.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import anyio
import anyio.to_thread
import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from .. import __version__
from .models import MAX_NEW_TOKENS, MAX_WORDS, RequestError, load_served_model, served_name, shown

__all__ = ["create_app", "guard_host_header", "MAX_BODY_BYTES", "MAX_WAITING", "DECODERS", "LOOPBACK_NAMES"]

#: The largest request body accepted: a 280x280 drawing as a PNG data URL is about 20 KiB.
MAX_BODY_BYTES = 1024 * 1024
#: Requests that may wait for a turn on one model (or on the decoders); the next gets a 503.
MAX_WAITING = 64
#: Drawings decoded at once, whatever the number of models and copies.
DECODERS = 2
#: Seconds a client told "busy" (503) is asked to wait before trying again.
RETRY_AFTER_SECONDS = 1
STATIC = Path(__file__).parent / "static"


class PredictRequest(BaseModel):
    """One image: ``image``, a drawing as a PNG data URL (prepared as the dataset's images were
    made, as ``handgrad predict`` does with a file), or ``pixels``, the model's input itself
    (H rows of W numbers, or H*W numbers, light ink on 0). ``saliency_classes``: classes whose
    saliency map to add to the predicted class's."""

    image: Optional[str] = None
    pixels: Optional[list] = None
    saliency_classes: list[int] = Field(default_factory=list, max_length=100)


class GenerateRequest(BaseModel):
    prompt: str = Field("", max_length=100_000)
    length: int = Field(200, description=f"characters to generate, at most {MAX_NEW_TOKENS}")
    temperature: float = Field(0.8, description="divide the logits by this (0: always the most likely)")
    top_k: Optional[int] = Field(200, description="sample among the k most likely (null: all)")
    seed: Optional[int] = Field(None, ge=0, description="for the same text again (null: fresh randomness)")


class AttentionRequest(BaseModel):
    prompt: str = Field(..., max_length=100_000)


class WordsRequest(BaseModel):
    count: int = Field(10, description=f"how many words, 1 to {MAX_WORDS}")
    temperature: float = Field(1.0, description="divide the logits by this (0: always the most likely)")
    top_k: Optional[int] = Field(None, description="sample among the k most likely, 1 to V (null: all)")
    seed: Optional[int] = Field(None, ge=0, description="for the same words again (null: fresh randomness)")


def _json_bytes(content) -> bytes:
    """Strict JSON, as UTF-8: ValueError for NaN or infinity, UnicodeEncodeError (a ValueError
    too) for a lone surrogate."""
    return json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")


def _answer(content, status: int = 200, headers=None) -> Response:
    """``content`` as a JSON response; a 500 saying why when it cannot be written as JSON."""
    try:
        body = _json_bytes(content)
    except ValueError as error:
        what = ("a character that is not text (a lone surrogate)" if isinstance(error, UnicodeError)
                else "NaN or infinity, which JSON cannot carry")
        body, status = _json_bytes({"detail": f"the answer holds {what}; nothing was sent"}), 500
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def _event(kind: str, content) -> str:
    """One server-sent event, its data strict JSON (an ``error`` event when it cannot be)."""
    try:
        data = json.dumps(content, allow_nan=False)  # ASCII, \u escapes for the rest: one line
    except ValueError:
        kind, data = "error", json.dumps({"detail": "the answer holds NaN or infinity, which JSON cannot carry"})
    return f"event: {kind}\ndata: {data}\n\n"


class _Gate:
    """Turns for one model (or for the decoders): ``function(*args)`` runs in a worker thread of
    its own once fewer than ``at_once`` calls run; until then the request waits on the event
    loop, holding no thread. With ``max_waiting`` requests waiting already, the next is refused
    at once: 503, with ``Retry-After``. (The counts are kept here, on the event loop, between
    two awaits: anyio's own statistics miss a request that has been let in but is not yet
    queued, and would let a burst past the limit.)"""

    def __init__(self, what: str, at_once: int, max_waiting: int = MAX_WAITING) -> None:
        self.what, self.max_waiting = what, max_waiting
        self._turns = anyio.Semaphore(at_once)
        self._threads = anyio.CapacityLimiter(at_once)  # never waited on: a turn comes first
        self.waiting = self.running = 0

    async def run(self, function, *args, queued: bool = True):
        """``function(*args)``'s result. ``queued=False``: a request already admitted (a stream's
        next character) waits its turn whatever the queue's length, so that no stream breaks off."""
        if queued and self.waiting >= self.max_waiting:
            raise RequestError(f"{self.what} is busy: {self.max_waiting} requests are waiting for it already; "
                               f"try again in {RETRY_AFTER_SECONDS} s", status=503)
        self.waiting += 1
        try:
            await self._turns.acquire()
        finally:
            self.waiting -= 1
        self.running += 1
        try:
            return await anyio.to_thread.run_sync(function, *args, limiter=self._threads)
        finally:
            self.running -= 1
            self._turns.release()


#: Each kind of served model, as a message names it.
_KINDS = {"image": "an image model", "text": "a text model", "words": "a word model (makemore)"}


class _BodyTooLarge(Exception):
    pass


class _LimitBody:
    """ASGI middleware: refuse a request body over ``limit`` bytes with 413, whether the client
    announces its length (refused before reading) or streams it in chunks (refused once over)."""

    def __init__(self, app, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            return await _too_large(send, self.limit)
        received, over, started = 0, False, False

        async def counting_receive():
            nonlocal received, over
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                over = True
                raise _BodyTooLarge
            return message

        async def checked_send(message):
            # The framework may catch our exception while reading the body and answer 400
            # ("error parsing the body"): the client gets our 413 instead.
            nonlocal started
            if over:
                if not started:
                    started = True
                    await _too_large(send, self.limit)
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, checked_send)
        except _BodyTooLarge:
            if not started:
                await _too_large(send, self.limit)


async def _too_large(send, limit: int) -> None:
    body = json.dumps({"detail": f"request body over the limit of {limit:,} bytes"}).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def create_app(model_paths, copies: int = 2, data_dir=None) -> FastAPI:
    """The app serving the handgrad model files ``model_paths`` (each loaded ``copies`` times,
    once, here; see :class:`handgrad.serve.models.ModelPool`). ``data_dir``: where the test
    images of MNIST-like datasets are (the digits are built in).

    A model that cannot be loaded, served or described (its description is written as JSON
    here, once) is refused with a one-line ValueError naming its file: the server never starts
    with a model that would fail its requests, or its neighbours' ``/api/models``."""
    served, descriptions = {}, []
    for path in model_paths:
        name = served_name(Path(path), served)
        model = load_served_model(path, name, copies=copies, data_dir=data_dir)
        try:
            descriptions.append(_json_bytes(model.describe()))
        except Exception as error:  # noqa: BLE001 - any failure refuses this model, in one line
            raise ValueError(f"{path}: cannot describe this model for the page ({type(error).__name__}: "
                             f"{error})".replace("\n", " ")) from None
        served[name] = model
    if not served:
        raise ValueError("serve: give at least one model file")
    listing = b"[" + b",".join(descriptions) + b"]"
    gates = {name: _Gate(f"model {name}", model.pool.copies) for name, model in served.items()}
    decoders = _Gate("the image decoder", DECODERS)
    rng = np.random.default_rng()

    app = FastAPI(title="handgrad", version=__version__,
                  description="Every layer's values and the gradients of handgrad's hand-written backward, "
                              "for the models this server was started with.")
    app.state.served, app.state.gates, app.state.decoders = served, gates, decoders
    app.add_middleware(_LimitBody, limit=MAX_BODY_BYTES)

    @app.exception_handler(RequestError)
    def request_error(request: Request, error: RequestError):
        busy = {"Retry-After": str(RETRY_AFTER_SECONDS)} if error.status == 503 else None
        return _answer({"detail": str(error)}, status=error.status, headers=busy)

    @app.exception_handler(RequestValidationError)
    def validation_error(request: Request, error: RequestValidationError):
        # One readable line per problem ("body.length: Input should be a valid integer"),
        # instead of pydantic's nested records.
        lines = [".".join(shown(part) if isinstance(part, str) and len(part) > 40 else str(part) for part in e["loc"])
                 + f": {e['msg']}" for e in error.errors()]
        return _answer({"detail": "; ".join(lines)}, status=422)

    def model_of(name: str, kind: str):
        if name not in served:
            raise RequestError(f"unknown model {shown(name)}; this server has {', '.join(served)}", status=404)
        model = served[name]
        if model.kind != kind:
            raise RequestError(f"model {name} is {_KINDS[model.kind]}; this needs {_KINDS[kind]}", status=400)
        return model

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/api/models", summary="The served models and what each takes")
    async def models():
        return Response(listing, media_type="application/json")

    @app.post("/api/models/{name}/predict", summary="Probabilities, every layer's output, saliency and warnings")
    async def predict(name: str, request: PredictRequest):
        model = model_of(name, "image")
        if (request.image is None) == (request.pixels is None):
            raise RequestError("give exactly one of image (a PNG data URL) and pixels (numbers)")
        drawing = None
        if request.image is not None:
            drawing = await decoders.run(model.pixels_from_data_url, request.image)

        def answer():
            pixels, notes = drawing if drawing is not None else (model.pixels_from_array(request.pixels), [])
            result = model.explain(pixels, request.saliency_classes)
            result["warnings"] = notes + result["warnings"]
            # Written here, in the worker thread: a ConvNet's 45,000 values take milliseconds.
            return _answer(result)

        return await gates[name].run(answer)

    @app.get("/api/models/{name}/drawn-digits",
             summary="The share of handgrad's drawn test digits the model recognises, per digit and overall",
             response_description='{"split": "test", "count": 400, "recognised": 0.93, "per_digit": [ten shares]}: '
                                  "the held-out drawings of handgrad.serve.drawn, each rendered as the page's canvas "
                                  "draws it and prepared as a drawing sent to predict; 404 for a model of other classes")
    async def drawn_digits(name: str):
        model = model_of(name, "image")
        if not model.reads_digits:
            model.drawn_digits()  # raises the 404 saying why
        # Rendering and preparing the 400 drawings takes seconds, once per process and style: in a
        # thread of its own, not a turn of the model (its requests go on meanwhile).
        await anyio.to_thread.run_sync(model.prepared_drawn_digits)
        return await gates[name].run(lambda: _answer(model.drawn_digits()))

    @app.get("/api/models/{name}/test-image", summary="A test image of the model's dataset and its true label")
    async def test_image(name: str, index: Optional[int] = None):
        model = model_of(name, "image")
        return await anyio.to_thread.run_sync(lambda: _answer(model.test_image(index, rng)))

    @app.post("/api/models/{name}/generate", summary="Generated characters as server-sent events",
              response_description="text/event-stream: one 'token' event per character (its probability and "
                                   "the 5 most likely alternatives), then 'done'; or an 'error' event "
                                   "({\"detail\": ...}) when the model computes NaN")
    async def generate(name: str, request: GenerateRequest):
        model = model_of(name, "text")
        model.check_generation(request.length, request.temperature, request.top_k)
        model.encode(request.prompt)  # refuse unknown characters now, with a 422, not inside the stream
        tokens = model.tokens(request.prompt, request.length, request.temperature, request.top_k, request.seed)
        gate = gates[name]
        # The first character before the answer starts: a busy model (503) or NaN logits (500)
        # get a status, not an event inside a 200.
        first = await gate.run(next, tokens, None)

        async def events():
            token = first
            while token is not None:
                yield _event("token", token)
                try:  # each character takes its own turn: a long stream holds no copy from others
                    token = await gate.run(next, tokens, None, queued=False)
                except RequestError as error:
                    yield _event("error", {"detail": str(error)})
                    return
            yield _event("done", {})

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @app.post("/api/models/{name}/attention", summary="Every head's attention weights on a prompt")
    async def attention(name: str, request: AttentionRequest):
        model = model_of(name, "text")
        return await gates[name].run(lambda: _answer(model.attention(request.prompt)))

    @app.post("/api/models/{name}/words", summary="New words, each character's probability, each word's group",
              response_description='{"model", "seed", "groups_missing": null or why, "words": [{"word", "group": '
                                   '"train"/"test"/"new" (null where the words it learned are not here), "ended", '
                                   '"characters": [{"character" (null: the end token), "id", "probability", "top": '
                                   "[the 5 most likely: character, id, probability]}]}]}")
    async def words(name: str, request: WordsRequest):
        model = model_of(name, "words")
        model.check_words(request.count, request.temperature, request.top_k)
        return await gates[name].run(
            lambda: _answer(model.words(request.count, request.temperature, request.top_k, request.seed)))

    return app


#: The Host header's names accepted by a server bound to a loopback address (see
#: :func:`guard_host_header`).
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")


def guard_host_header(app: FastAPI) -> None:
    """Answer 400 to any request whose ``Host`` is not one of :data:`LOOPBACK_NAMES`, for a
    server bound to a loopback address: DNS rebinding (a page of evil.example whose name is then
    pointed at 127.0.0.1) reaches such a server from the user's browser, but with its own name
    in ``Host``. Starlette's TrustedHostMiddleware does the check; it compares the name, not the
    port (an attacker's page has its own name whatever the port)."""
    from starlette.middleware.trustedhost import TrustedHostMiddleware

    app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(LOOPBACK_NAMES), www_redirect=False)
