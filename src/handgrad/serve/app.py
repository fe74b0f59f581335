"""The web app: a JSON API (FastAPI, documented at ``/docs`` and ``/openapi.json``) over the
served models, and the page itself (``/``, plain HTML, CSS and JavaScript shipped in
``static/``, nothing fetched from elsewhere).

FastAPI rather than bare Starlette: the same handlers, but request bodies are declared once as
typed models, which gives the validation (and its 422 answers) and the OpenAPI page for free.
Handlers are plain ``def``: FastAPI runs them in its thread pool, and NumPy releases the GIL in
its BLAS calls, so two requests on two model copies use two cores.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field

from .. import __version__
from .models import MAX_NEW_TOKENS, RequestError, load_served_model, served_name

__all__ = ["create_app", "MAX_BODY_BYTES"]

#: The largest request body accepted: a 280x280 drawing as a PNG data URL is about 20 KiB.
MAX_BODY_BYTES = 1024 * 1024
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
    images of MNIST-like datasets are (the digits are built in)."""
    served = {}
    for path in model_paths:
        name = served_name(Path(path), served)
        served[name] = load_served_model(path, name, copies=copies, data_dir=data_dir)
    if not served:
        raise ValueError("serve: give at least one model file")
    rng = np.random.default_rng()

    app = FastAPI(title="handgrad", version=__version__,
                  description="Every layer's values and the gradients of handgrad's hand-written backward, "
                              "for the models this server was started with.")
    app.state.served = served
    app.add_middleware(_LimitBody, limit=MAX_BODY_BYTES)

    @app.exception_handler(RequestError)
    def request_error(request: Request, error: RequestError):
        return JSONResponse({"detail": str(error)}, status_code=error.status)

    @app.exception_handler(RequestValidationError)
    def validation_error(request: Request, error: RequestValidationError):
        # One readable line per problem ("body.length: Input should be a valid integer"),
        # instead of pydantic's nested records.
        lines = [".".join(str(part) for part in e["loc"]) + f": {e['msg']}" for e in error.errors()]
        return JSONResponse({"detail": "; ".join(lines)}, status_code=422)

    def model_of(name: str, kind: str):
        if name not in served:
            raise RequestError(f"unknown model {name!r}; this server has {', '.join(served)}", status=404)
        model = served[name]
        if model.kind != kind:
            raise RequestError(f"model {name} is a{'n' if model.kind == 'image' else ''} {model.kind} model; "
                               f"this needs a{'n' if kind == 'image' else ''} {kind} model", status=400)
        return model

    @app.get("/", include_in_schema=False)
    def page():
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/api/models", summary="The served models and what each takes")
    def models():
        return [model.describe() for model in served.values()]

    @app.post("/api/models/{name}/predict", summary="Probabilities, every layer's output, saliency and warnings")
    def predict(name: str, request: PredictRequest):
        model = model_of(name, "image")
        if (request.image is None) == (request.pixels is None):
            raise RequestError("give exactly one of image (a PNG data URL) and pixels (numbers)")
        if request.image is not None:
            pixels, notes = model.pixels_from_data_url(request.image)
        else:
            pixels, notes = model.pixels_from_array(request.pixels), []
        answer = model.explain(pixels, request.saliency_classes)
        answer["warnings"] = notes + answer["warnings"]
        # Plain lists of floats already: JSONResponse skips FastAPI's encoder, which would walk
        # every one of a ConvNet's 45,000 values again (60 ms of a 100 ms answer).
        return JSONResponse(answer)

    @app.get("/api/models/{name}/test-image", summary="A test image of the model's dataset and its true label")
    def test_image(name: str, index: Optional[int] = None):
        return model_of(name, "image").test_image(index, rng)

    @app.post("/api/models/{name}/generate", summary="Generated characters as server-sent events",
              response_description="text/event-stream: one 'token' event per character (its probability and "
                                   "the 5 most likely alternatives), then 'done'")
    def generate(name: str, request: GenerateRequest):
        model = model_of(name, "text")
        model.check_generation(request.length, request.temperature, request.top_k)
        model.encode(request.prompt)  # refuse unknown characters now, with a 422, not inside the stream
        tokens = model.tokens(request.prompt, request.length, request.temperature, request.top_k, request.seed)

        def events():
            for token in tokens:
                yield f"event: token\ndata: {json.dumps(token)}\n\n"
            yield "event: done\ndata: {}\n\n"

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @app.post("/api/models/{name}/attention", summary="Every head's attention weights on a prompt")
    def attention(name: str, request: AttentionRequest):
        return JSONResponse(model_of(name, "text").attention(request.prompt))

    return app
