"""The drawn digits: digits drawn the way a person draws them on the page's canvas (mouse or
finger strokes; several styles of each digit, pen widths, slants, sizes and positions), and how
many of them a served model recognises through the page's own path.

The set ships as ``handgrad/data/drawn_digits.json.gz``: strokes, not pictures (the polylines
of pointer positions a canvas receives, in canvas pixels), made by
``python benchmarks/drawn_digits.py make`` (seeded; ``handgrad/data/DRAWN_DIGITS.md`` says how).
:func:`render` draws them as the page's canvas does (``static/app.js``: a 280x280 canvas filled
black, white strokes of the drawing's pen width with round caps and joins, anti-aliased), and
:func:`canvas_data_url` sends the canvas as the page does (``draw.toDataURL("image/png")``: an
opaque RGBA PNG). :func:`prepared_drawings` passes each one through the server's own decoding
and :mod:`handgrad.data.images` preparation (:func:`handgrad.serve.models.pixels_from_drawing`),
once per process and image style; :func:`recognised` then scores a model on them.

Two splits, drawn with different seeds: ``dev``, for choosing how drawings are prepared, and
``test``, held out, the one reported (on the page, in benchmarks/results/drawn_digits.json).

Pillow (the serve and images extras) is imported only where a drawing is rendered.
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import threading
from dataclasses import dataclass
from importlib import resources

import numpy as np

__all__ = ["DrawnDigit", "load_drawn_digits", "render", "canvas_data_url", "prepared_drawings", "recognised",
           "CANVAS_SIDE", "PAGE_PEN_WIDTH", "SPLITS", "FORMAT", "DRAWN_DIGITS_FILE"]

#: The page's drawing canvas, in pixels (index.html: ``<canvas id="draw" width="280" height="280">``).
CANVAS_SIDE = 280
#: The page's pen (app.js: ``pen.lineWidth = draw.width / 13``).
PAGE_PEN_WIDTH = CANVAS_SIDE / 13
#: The splits of the set: ``dev`` to choose with, ``test`` to report.
SPLITS = ("dev", "test")
#: The ``format`` the file declares; a file of another format is refused.
FORMAT = "handgrad drawn digits 1"
#: The file's name inside the package ``handgrad.data``.
DRAWN_DIGITS_FILE = "drawn_digits.json.gz"
# Rendering draws at this many times the canvas's resolution and averages blocks: the coverage
# anti-aliasing a browser's canvas gives a stroke's edges.
_SUPERSAMPLING = 4


@dataclass(frozen=True)
class DrawnDigit:
    """One drawing: its digit, the style it was drawn in (``"flag"``, ``"bar"``...), the pen's
    width in canvas pixels, and its strokes, each an array (points, 2) of canvas (x, y)."""

    label: int
    style: str
    pen_width: float
    strokes: tuple


def _drawing_error(where: str, message: str) -> ValueError:
    return ValueError(f"{DRAWN_DIGITS_FILE}: {where}: {message}")


def _parse(table: dict, split: str) -> list[DrawnDigit]:
    """The drawings of ``split`` in the decoded file ``table``, checked: one-line ValueErrors
    naming the key and what was wrong."""
    if not isinstance(table, dict) or table.get("format") != FORMAT:
        found = table.get("format") if isinstance(table, dict) else type(table).__name__
        raise _drawing_error("format", f"expected {FORMAT!r}, got {found!r}")
    unit = table.get("unit")
    if not isinstance(unit, (int, float)) or not unit > 0:
        raise _drawing_error("unit", f"expected a positive number (canvas pixels per stored step), got {unit!r}")
    if table.get("canvas") != CANVAS_SIDE:
        raise _drawing_error("canvas", f"expected {CANVAS_SIDE} (the page's canvas), got {table.get('canvas')!r}")
    splits = table.get("splits")
    if not isinstance(splits, dict) or split not in splits:
        raise _drawing_error("splits", f"no split {split!r} (the file has {sorted(splits) if isinstance(splits, dict) else []})")
    records = splits[split].get("drawings") if isinstance(splits[split], dict) else None
    if not isinstance(records, list) or not records:
        raise _drawing_error(f"splits.{split}.drawings", "expected a non-empty list of drawings")
    drawings = []
    for i, record in enumerate(records):
        where = f"splits.{split}.drawings[{i}]"
        try:
            label, style, pen, strokes = record["label"], record["style"], record["pen"], record["strokes"]
        except (KeyError, TypeError):
            raise _drawing_error(where, "expected an object with label, style, pen and strokes") from None
        if not isinstance(label, int) or not 0 <= label <= 9:
            raise _drawing_error(f"{where}.label", f"expected a digit 0..9, got {label!r}")
        if not isinstance(pen, (int, float)) or not 0 < pen < CANVAS_SIDE:
            raise _drawing_error(f"{where}.pen", f"expected a pen width in (0, {CANVAS_SIDE}) pixels, got {pen!r}")
        if not isinstance(strokes, list) or not strokes:
            raise _drawing_error(f"{where}.strokes", "expected a non-empty list of strokes")
        arrays = []
        for j, stroke in enumerate(strokes):
            values = np.asarray(stroke, dtype=np.float64) if isinstance(stroke, list) else np.empty(0)
            if values.ndim != 1 or values.size < 2 or values.size % 2 or not np.isfinite(values).all():
                raise _drawing_error(f"{where}.strokes[{j}]", "expected a flat list of x, y numbers "
                                     f"(an even count, at least 2), got {len(stroke) if isinstance(stroke, list) else stroke!r}")
            points = values.reshape(-1, 2) * unit
            if points.min() < 0 or points.max() > CANVAS_SIDE:
                raise _drawing_error(f"{where}.strokes[{j}]", f"a point lies outside the {CANVAS_SIDE}x{CANVAS_SIDE} canvas")
            arrays.append(points)
        drawings.append(DrawnDigit(label, str(style), float(pen), tuple(arrays)))
    return drawings


def load_drawn_digits(split: str = "test", path=None) -> list[DrawnDigit]:
    """The drawings of ``split`` (``"dev"`` or ``"test"``), in the file's order. ``path``: another
    file of the same format (the shipped one by default)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r} of the drawn digits; choose from {', '.join(SPLITS)}")
    try:
        if path is None:
            with resources.files("handgrad.data").joinpath(DRAWN_DIGITS_FILE).open("rb") as handle:
                raw = handle.read()
        else:
            with open(path, "rb") as handle:
                raw = handle.read()
        table = json.loads(gzip.decompress(raw))
    except (OSError, EOFError, ValueError) as error:  # a missing file, bad gzip, bad JSON
        raise ValueError(f"{path or DRAWN_DIGITS_FILE}: cannot read the drawn digits "
                         f"({type(error).__name__}: {error})".replace("\n", " ")) from None
    return _parse(table, split)


def render(strokes, pen_width: float, side: int = CANVAS_SIDE) -> np.ndarray:
    """The canvas after drawing ``strokes`` as the page draws them: (side, side) uint8, white
    (255) strokes on black, ``pen_width`` pixels wide, round caps and joins, anti-aliased.

    app.js draws a dot (a disc of the pen's width) where a stroke starts and a round-capped line
    to each next pointer position: the union of those discs and of the segments' rectangles,
    which is what is drawn here, at 4 times the resolution, then averaged down."""
    from PIL import Image, ImageDraw

    scale = _SUPERSAMPLING
    image = Image.new("L", (side * scale, side * scale), 0)
    draw = ImageDraw.Draw(image)
    # Pillow fills the pixels on a shape's outline as well: half a (fine) pixel less radius gives
    # a disc and a band of the pen's own area and width, centred where the canvas centres them.
    radius = pen_width * scale / 2 - 0.5
    for stroke in strokes:
        points = [(float(x) * scale, float(y) * scale) for x, y in np.asarray(stroke, dtype=np.float64)]
        for (x0, y0), (x1, y1) in zip(points, points[1:]):
            length = float(np.hypot(x1 - x0, y1 - y0))
            if length == 0:
                continue
            # The segment's rectangle: the pen's half width on either side of it.
            nx, ny = -(y1 - y0) / length * radius, (x1 - x0) / length * radius
            draw.polygon([(x0 + nx, y0 + ny), (x1 + nx, y1 + ny), (x1 - nx, y1 - ny), (x0 - nx, y0 - ny)], fill=255)
        for x, y in points:  # round caps and joins
            draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=255)
    return np.asarray(image.reduce(scale), dtype=np.uint8)


def canvas_data_url(canvas: np.ndarray) -> str:
    """``canvas`` (grey levels, uint8) as the page sends its drawing: ``toDataURL("image/png")``
    of an opaque canvas, an RGBA PNG whose alpha is 255 everywhere."""
    from PIL import Image

    grey = np.asarray(canvas, dtype=np.uint8)
    rgba = np.empty((*grey.shape, 4), dtype=np.uint8)
    rgba[..., :3] = grey[..., None]
    rgba[..., 3] = 255
    buffer = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buffer, format="PNG", compress_level=1)  # fast, and lossless all the same
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


_prepared: dict = {}
_locks: dict = {}
_locks_lock = threading.Lock()


def prepared_drawings(style: str, prepare, split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """``(pixels, labels)``: every drawing of ``split`` rendered, sent as the page sends it and
    prepared for ``style`` by ``prepare(data_url, style) -> (pixels, warnings)``, the server's
    own path (:func:`handgrad.serve.models.pixels_from_drawing`; passed in, so that this module,
    which the server imports, never imports the server back). Pixels (N, H, W) float32, labels
    (N,). Computed once per process, style and split (a few seconds for 400 drawings), then
    shared; callers asking for the same meanwhile wait for that one computation."""
    key = (style, split)
    with _locks_lock:
        lock = _locks.setdefault(key, threading.Lock())
    with lock:
        if key not in _prepared:
            drawings = load_drawn_digits(split)
            pixels = [prepare(canvas_data_url(render(d.strokes, d.pen_width)), style)[0] for d in drawings]
            _prepared[key] = (np.stack(pixels), np.array([d.label for d in drawings], dtype=np.int64))
        return _prepared[key]


def recognised(model, input_shape, prepared: tuple, split: str = "test") -> dict:
    """How many of the ``prepared`` drawings (:func:`prepared_drawings` of ``split``) ``model``
    (a handgrad classifier of the 10 digits, taking ``input_shape``) recognises: ``{"split",
    "count", "recognised" (the share, 0..1), "per_digit" (ten shares)}``. A prediction of NaN
    counts as wrong."""
    pixels, labels = prepared
    x = pixels.reshape(len(pixels), *input_shape)
    with model.mode(False), np.errstate(all="ignore"):
        scores = np.asarray(model.predict(x), dtype=np.float64)
    right = np.isfinite(scores).all(axis=1) & (scores.argmax(axis=1) == labels)
    per_digit = [float(right[labels == d].mean()) if (labels == d).any() else None for d in range(10)]
    return {"split": split, "count": int(len(labels)), "recognised": float(right.mean()), "per_digit": per_digit}
