"""What the web page shows, computed with NumPy and the models' own forward and backward: no
web framework here, so all of it can be tested (and used) without a server.

Two kinds of served model:

* :class:`ImageModel`, a classifier of pictures (a ``Sequential`` whose inputs are 8x8 digits
  or 28x28 MNIST-style images): probabilities, every layer's output, the trace's warnings, and
  the saliency map ``dS_c / dx``, the gradient of class c's score S_c (the last layer's output,
  before the softmax; Simonyan et al. 2013) with respect to every input pixel, computed by the
  layers' own hand-written ``backward`` from ``dS / dS = e_c`` (one-hot) down to the input.
* :class:`TextModel`, a GPT with a character vocabulary: tokens one at a time, each with its
  probability and the 5 most likely alternatives, and every head's attention weights.
* :class:`WordModel`, a makemore model (any model file whose metadata records ``words``, the
  Transformer's GPT included): new words, each character with the model's probability of it and
  the 5 most likely alternatives, and each word's group as makemore prints it (in the training
  set, in the test set, new) where the words it learned can be read.

Layers keep one call's values between forward and backward, so a model object serves one
request at a time. Each served model is a :class:`ModelPool`: a few independent copies loaded
from the same file; a request borrows one and gives it back, and waits while all are busy (the
web app lets no more requests than copies reach a model at once, so that nobody waits here
holding a thread).

Nothing a client sends is trusted: a drawing's size is checked on its header before Pillow
decodes it (:data:`MAX_DRAWING_PIXELS`); numbers must be finite in the model's own dtype; a
model whose weights hold NaN or infinity, or whose vocabulary is not text, is refused when it is
loaded; and a model that still computes NaN says so (:class:`ModelOutputError`) instead of
answering numbers that JSON cannot carry.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import queue
import re
import threading
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .. import functions as F
from .. import validate

__all__ = ["RequestError", "ModelOutputError", "ModelPool", "ImageModel", "TextModel", "WordModel",
           "load_served_model", "served_name", "check_copies", "shown", "MAX_NEW_TOKENS", "MAX_WORDS",
           "TOP_ALTERNATIVES", "MAX_COPIES", "MAX_DRAWING_PIXELS"]

#: The most tokens one generation request may ask for (each costs a forward of the context).
MAX_NEW_TOKENS = 2000
#: The most words one request may ask a word model for (each costs a forward per character).
MAX_WORDS = 100
#: Alternatives listed with each generated token.
TOP_ALTERNATIVES = 5
#: The most copies of one model (``--copies``): one per request computed at once; more than a
#: machine has cores only costs memory.
MAX_COPIES = 64
#: The most pixels of a drawing decoded for predict (the page sends 280x280). Checked on the
#: image's header, before decoding: a PNG of 49 KB can declare 8000x8000 pixels, and decoding
#: and preparing an image takes about 50 bytes a pixel (50 MB for 1024x1024).
MAX_DRAWING_PIXELS = 1024 * 1024
#: Data URLs of images decoded for predict, and the formats Pillow may read them as: no other
#: decoder ever sees a client's bytes.
_DATA_URL_PREFIXES = ("data:image/png;base64,", "data:image/jpeg;base64,", "data:image/webp;base64,")
_DRAWING_FORMATS = ("PNG", "JPEG", "WEBP")
#: Characters of a client's text quoted back in a message, at most.
_SHOWN_CHARACTERS = 40
#: Decimals kept in the JSON answers: enough for any picture, and it halves the answer's size.
_DECIMALS = 6


class RequestError(ValueError):
    """A request the model cannot answer (a wrong size, NaN, an unknown character): the
    server answers it with a 4xx status and this message."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


class ModelOutputError(RequestError):
    """The model computed NaN or infinity where an answer needs a number (the next character's
    logits): a fault of the model, not of the request, answered with status 500."""

    def __init__(self, message: str) -> None:
        super().__init__(message, status=500)


def shown(text: str, limit: int = _SHOWN_CHARACTERS) -> str:
    """``text`` quoted for a message, cut to ``limit`` characters (with its length) when longer:
    an error never echoes a client's 60 KB back."""
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}… ({len(text):,} characters)"


def check_copies(copies) -> int:
    """``copies`` when it is a whole number from 1 to :data:`MAX_COPIES`; a one-line ValueError
    otherwise, before anything is loaded."""
    return validate.integer(copies, "copies (--copies)", minimum=1, maximum=MAX_COPIES,
                            what=f"a whole number from 1 to {MAX_COPIES} (one copy per request computed at once)")


def _rounded(array, decimals: int | None = _DECIMALS) -> list:
    """``array`` as nested lists of floats for JSON, rounded to ``decimals`` (None: as is);
    NaN and infinity, which JSON cannot carry, become null (the warnings say where they came from)."""
    a = np.asarray(array, dtype=np.float64)
    if decimals is not None:
        a = np.round(a, decimals)
    finite = np.isfinite(a)
    return a.tolist() if finite.all() else np.where(finite, a, None).tolist()


class ModelPool:
    """``copies`` independent copies of one model, loaded from one file: ``with pool.borrow()
    as model:`` hands a copy to one request at a time (waiting while all are busy)."""

    def __init__(self, load, copies: int, name: str = "model") -> None:
        copies = check_copies(copies)
        self._idle: queue.SimpleQueue = queue.SimpleQueue()
        for n in range(1, copies + 1):
            try:
                model = load()
            except MemoryError:
                raise ValueError(f"{name}: out of memory loading copy {n} of {copies}; serve it with fewer "
                                 "copies (--copies)") from None
            if n == 1:
                self.first = model
            self._idle.put(model)
        self.copies = copies

    @contextmanager
    def borrow(self):
        model = self._idle.get()
        try:
            yield model
        finally:
            self._idle.put(model)


def served_name(path: Path, taken) -> str:
    """A short name for the model at ``path``: the file's stem, or its folder's name for the
    ``model.safetensors`` that ``handgrad train`` writes; ``-2``, ``-3``... when already taken."""
    path = Path(path)
    stem = path.parent.name if path.stem == "model" and path.parent.name else path.stem
    base = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in stem) or "model"
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}-{n}"
    return name


def load_served_model(path, name: str, copies: int = 2, data_dir=None):
    """The :class:`ImageModel`, :class:`TextModel` or :class:`WordModel` for the handgrad model
    file at ``path``; a one-line ``ValueError`` naming the file when it cannot be loaded (out of
    memory too), is neither an image classifier, a GPT with a vocabulary nor a makemore model,
    or holds NaN or infinite weights. A file whose metadata records ``words`` (``handgrad train
    --dataset names`` or ``--data-file``) is a word model whatever its model: makemore's
    Transformer is a GPT with a vocabulary too, but of words, not of running text.
    ``data_dir``: where an image model's test images (or the names a word model learned) are;
    by default the data root the model was trained from (recorded in its file), then
    ``$HANDGRAD_DATA`` and the cache."""
    from ..data import DataError
    from ..data.images import STYLE_SHAPES, image_style
    from ..model import GPT, Sequential
    from ..serialize import load, read_metadata

    path = Path(path)
    copies = check_copies(copies)
    pool = ModelPool(lambda: load(path), copies, name=str(path))
    metadata = read_metadata(path)
    model, dataset = pool.first, metadata.get("dataset")
    recorded = metadata.get("data_dir")  # the data root the model learned from, as `handgrad train` records it
    if data_dir is None and recorded and Path(recorded).is_dir():
        data_dir = recorded
    arrays = {**model.params, **getattr(model, "buffers", {})}
    broken = next((key for key, value in arrays.items() if not np.isfinite(value).all()), None)
    if broken is not None:
        raise ValueError(f"{path}: weight {broken} holds NaN or infinity; serve refuses a model whose answers "
                         "would be NaN")
    if metadata.get("words") is not None:  # first: makemore's Transformer is a GPT with a vocabulary too
        return WordModel(name, path, pool, metadata["words"], data_dir)
    if isinstance(model, GPT):
        if model.vocab is None:
            raise ValueError(f"{path}: this GPT has no vocabulary saved with it, so text cannot be typed to it")
        return TextModel(name, path, pool, dataset)
    if not isinstance(model, Sequential):
        raise ValueError(f"{path}: serve shows image classifiers and GPTs; this is a {type(model).__name__}")
    try:
        style = image_style(dataset if dataset in STYLE_SHAPES else None, input_size=model.input_size)
    except DataError as error:
        raise ValueError(f"{path}: serve shows image classifiers and GPTs: {error}") from None
    return ImageModel(name, path, pool, dataset or ("digits" if style == "digits" else "mnist"), style, data_dir)


class _LabelledTestImages:
    """The test images of a dataset, loaded on first use (MNIST's take a second): ``(x, t)``.

    Whether they can be had is decided at start-up, not on the first click: ``missing`` is None
    when they are here (the embedded digits always are; MNIST's test files where ``data_dir``,
    ``$HANDGRAD_DATA`` or the cache hold them, checksums verified), else the reason in words,
    which the page shows on its disabled "Random test image" button. Nothing is downloaded."""

    def __init__(self, dataset: str, data_dir) -> None:
        self.dataset, self.data_dir = dataset, data_dir
        self._data, self._lock = None, threading.Lock()
        self.missing = self._missing()

    def _missing(self) -> str | None:
        from ..data import REMOTE_DATASETS, DataError
        from ..data.fetch import locate

        remote = REMOTE_DATASETS.get(self.dataset)
        if remote is None:
            return None
        try:
            for key in ("test_images", "test_labels"):
                locate(remote, remote.files[key], self.data_dir, download=False)
        except (DataError, OSError, ValueError) as error:
            return (f"no test images of {self.dataset} here ({str(error).split('. ')[0]}); start the server with "
                    f"--data-dir DIR holding {self.dataset}/")
        return None

    def get(self):
        from ..data import DataError, load_dataset

        if self.missing is not None:
            raise RequestError(self.missing, status=404)
        with self._lock:
            if self._data is None:
                try:
                    _, self._data = load_dataset(self.dataset, data_dir=self.data_dir, download=False)
                except (DataError, OSError, ValueError) as error:  # the files changed since start-up
                    raise RequestError(f"no test images of {self.dataset} here ({error}); start the server with "
                                       f"--data-dir DIR holding {self.dataset}/", status=404) from None
            return self._data


class ImageModel:
    """A served image classifier (see the module docstring)."""

    kind = "image"

    def __init__(self, name: str, path: Path, pool: ModelPool, dataset: str, style: str, data_dir=None) -> None:
        from ..data import CLASS_NAMES
        from ..data.images import STYLE_SHAPES

        self.name, self.path, self.pool, self.dataset, self.style = name, path, pool, dataset, style
        model = pool.first
        self.dtype = np.result_type(*model.params.values()) if model.params else np.dtype(np.float32)
        self.image_shape = STYLE_SHAPES[style]                           # (H, W)
        self.input_shape = model.input_shape or (model.input_size,)      # one sample, as the model takes it
        with model.mode(False):
            classes = model.predict(np.zeros((1, *self.input_shape), np.float32)).shape[-1]
        self.class_names = list(CLASS_NAMES.get(dataset, [str(c) for c in range(classes)]))
        self.test_images = _LabelledTestImages(dataset, data_dir)
        self._drawn: dict = {}  # split -> drawn_digits()'s answer, computed on the first request

    def describe(self) -> dict:
        model = self.pool.first
        return {"name": self.name, "kind": self.kind, "file": self.path.name, "dataset": self.dataset,
                "image_shape": list(self.image_shape), "class_names": self.class_names,
                "layers": [f"{i} {layer!r}" for i, layer in enumerate(model.layers)],
                "parameters": model.num_params, "copies": self.pool.copies, "reads_digits": self.reads_digits,
                "test_images_missing": self.test_images.missing}

    @property
    def reads_digits(self) -> bool:
        """Whether the model's ten classes are the digits 0 to 9 (not Fashion-MNIST's garments):
        whether the drawn digits (:meth:`drawn_digits`) say anything about it."""
        return self.dataset != "fashion-mnist" and self.class_names == [str(d) for d in range(10)]

    def drawn_digits(self, split: str = "test") -> dict:
        """The share of handgrad's drawn digits (:mod:`handgrad.serve.drawn`; the held-out
        ``test`` split by default) this model recognises through the page's own path, per digit
        and overall: ``{"split", "count", "recognised", "per_digit"}``. The drawings are prepared
        once per process and style (seconds); each model then costs one forward pass over them,
        once: the answer is kept. :class:`RequestError` (404) for a model of other classes."""
        if not self.reads_digits:
            raise RequestError(f"model {self.name} classifies {self.dataset}, not the digits 0 to 9; the drawn "
                               "digits say nothing about it", status=404)
        from .drawn import recognised

        if split not in self._drawn:
            prepared = self.prepared_drawn_digits(split)
            with self.pool.borrow() as model:
                self._drawn[split] = recognised(model, self.input_shape, prepared, split)
        return self._drawn[split]

    def prepared_drawn_digits(self, split: str = "test") -> tuple[np.ndarray, np.ndarray]:
        """The drawn digits of ``split`` prepared for this model's style by the page's own path
        (:func:`pixels_from_drawing`): seconds the first time in a process, then shared."""
        from .drawn import prepared_drawings

        return prepared_drawings(self.style, pixels_from_drawing, split)

    # --- inputs ---------------------------------------------------------------------------------------

    def pixels_from_array(self, values) -> np.ndarray:
        """The model's input image (H, W), in the model's dtype, from numbers as given: (H, W)
        or H*W of them, finite in that dtype (1e300 is a float64 but no float32)."""
        try:
            x = np.asarray(values, dtype=np.float64)
        except OverflowError:  # an integer of hundreds of digits
            raise RequestError(f"pixels: a value is too large for {self.dtype}") from None
        except (ValueError, TypeError):
            raise RequestError("pixels must be a list of numbers (rows of the image, or one flat list)") from None
        h, w = self.image_shape
        if x.size != h * w:
            raise RequestError(f"model {self.name} takes {h}x{w} images ({h * w} pixels), got {x.size} pixels "
                               f"(shape {list(x.shape)})")
        if not np.isfinite(x).all():
            raise RequestError("pixels contain NaN or infinity; a prediction of them would mean nothing")
        with np.errstate(over="ignore"):  # overflow is looked for just below, and said in words
            cast = x.reshape(h, w).astype(self.dtype)
        if not np.isfinite(cast).all():
            largest = float(np.abs(x).max())
            raise RequestError(f"pixels: {largest:.3g} is too large for {self.dtype}, the model's dtype (largest "
                               f"{float(np.finfo(self.dtype).max):.3g}); pixels are grey levels, 0 to 1")
        return cast

    def pixels_from_data_url(self, url: str) -> tuple[np.ndarray, list]:
        """A drawing sent as a data URL, prepared exactly as ``handgrad predict`` prepares an
        image file for this dataset (see :func:`pixels_from_drawing`)."""
        return pixels_from_drawing(url, self.style)

    def test_image(self, index: int | None, rng: np.random.Generator) -> dict:
        """One test image of the model's dataset and its true label (a random one without index)."""
        x, t = self.test_images.get()
        if index is None:
            index = int(rng.integers(len(x)))
        if not 0 <= index < len(x):
            raise RequestError(f"index must be in [0, {len(x)}), got {index}")
        label = int(t[index])
        return {"index": index, "label": label, "class_name": self.class_names[label],
                "pixels": _rounded(x[index].reshape(self.image_shape)), "dataset": self.dataset}

    # --- the pass -------------------------------------------------------------------------------------

    def explain(self, pixels: np.ndarray, saliency_classes=()) -> dict:
        """Everything the page shows for one image (H, W): the probabilities, each layer's
        output for this image, the saliency map of the predicted class and of each class in
        ``saliency_classes``, and the warnings of :func:`handgrad.inspect.trace`.

        Where the model computes NaN or infinity (values overflowing its dtype) the answer
        carries null, the trace's warnings name the first layer, and ``predicted`` is null: the
        argmax of NaN would name class 0 as if it had been chosen."""
        from ..inspect import trace

        classes = len(self.class_names)
        for c in saliency_classes:
            if not 0 <= c < classes:
                raise RequestError(f"saliency class {c} is not one of the model's classes 0..{classes - 1}")
        x = pixels.reshape(1, *self.input_shape)
        # NaN and overflow are reported in the answer (null, and the trace's warnings), not as
        # RuntimeWarnings on the server's console.
        with self.pool.borrow() as model, model.mode(False), np.errstate(all="ignore"):
            outputs = [output[0] for _, _, output in model.forward_steps(x)]   # each layer's, one sample
            scores = outputs[-1]                                         # (classes,), before the softmax
            probabilities = F.softmax(scores.astype(np.float64))
            answered = bool(np.isfinite(probabilities).all())
            predicted = int(probabilities.argmax()) if answered else None
            wanted = list(dict.fromkeys([c for c in (predicted, *saliency_classes) if c is not None]))
            saliency = [{"class": c, "gradient": _rounded(self._score_gradient(model, c, classes))} for c in wanted]
            warnings = trace(model, x, np.array([0 if predicted is None else predicted]), max_values=0).warnings
        layers = [{"index": i, "name": layer.name, "shape": list(out.shape), "values": _rounded(out)}
                  for i, (layer, out) in enumerate(zip(model.layers, outputs))]
        return {"model": self.name, "input": _rounded(pixels), "probabilities": _rounded(probabilities, None),
                "predicted": predicted, "class_names": self.class_names, "layers": layers, "saliency": saliency,
                "warnings": warnings}

    def _score_gradient(self, model, c: int, classes: int) -> np.ndarray:
        """dS_c/dx (H, W) of the last forward: each layer's backward, last to first, from e_c."""
        grad = np.zeros((1, classes), dtype=np.float32)
        grad[0, c] = 1.0                                                 # dS_c / dS = e_c
        for _, _, dx in model.backward_steps(grad):
            grad = dx
        return np.asarray(grad).reshape(self.image_shape)


def pixels_from_drawing(url: str, style: str) -> tuple[np.ndarray, list]:
    """``(pixels, warnings)`` of a drawing sent as a data URL (PNG, JPEG or WebP), prepared for
    ``style`` (a key of :data:`handgrad.data.images.STYLE_SHAPES`) exactly as ``handgrad predict``
    prepares an image file (:func:`handgrad.data.images.read_image`: ink found, cropped, scaled;
    MNIST centred by mass). The page's path, and the drawn digits' (:mod:`handgrad.serve.drawn`).
    Raises :class:`RequestError` for anything that is not such an image, or holds no digit."""
    from ..data import DataError
    from ..data.images import read_image

    prefix = next((p for p in _DATA_URL_PREFIXES if url.startswith(p)), None)
    if prefix is None:
        raise RequestError(f"image must be a data URL starting with one of {', '.join(_DATA_URL_PREFIXES)}; "
                           f"got {url[:30]!r}")
    try:
        data = base64.b64decode(url[len(prefix):], validate=True)
    except (binascii.Error, ValueError):
        raise RequestError("image: the data URL's base64 is malformed") from None
    _check_drawing_size(data, "the drawing")
    try:
        return read_image(_NamedBytes(data, "the drawing"), style)
    except DataError as error:
        raise RequestError(str(error)) from None


def _check_drawing_size(data: bytes, name: str) -> None:
    """Refuse (413) an image whose header declares more than :data:`MAX_DRAWING_PIXELS`, before
    anything is decoded: ``Image.open`` reads the header alone. Pillow's own guard is far above
    ours (``Image.MAX_IMAGE_PIXELS``, 89 million: a warning above it, DecompressionBombError
    above twice it, raised by ``Image.open`` itself), so both are caught here too."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data), formats=_DRAWING_FORMATS) as image:
            width, height = image.size
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        count = re.search(r"\((\d+) pixels\)", str(error))
        size = f"{int(count.group(1)):,} pixels" if count else "too many pixels"
        raise RequestError(f"{name}: an image of {size} is over this server's limit of {MAX_DRAWING_PIXELS:,} "
                           "pixels; scale it down", status=413) from None
    except Image.UnidentifiedImageError:
        raise RequestError(f"{name}: not an image Pillow can read (PNG, JPEG or WebP)") from None
    except Exception as error:  # noqa: BLE001 - decoders of untrusted bytes raise many types
        raise RequestError(f"{name}: cannot read image ({type(error).__name__}: {error})".replace("\n", " ")) from None
    if width * height > MAX_DRAWING_PIXELS:
        raise RequestError(f"{name}: an image of {width}x{height} = {width * height:,} pixels is over this server's "
                           f"limit of {MAX_DRAWING_PIXELS:,} pixels; scale it down", status=413)


class _NamedBytes(io.BytesIO):
    """Bytes that Pillow opens as a file and that error messages name like one."""

    def __init__(self, data: bytes, name: str) -> None:
        super().__init__(data)
        self._name = name

    def __str__(self) -> str:
        return self._name


class TextModel:
    """A served GPT with a character vocabulary (see the module docstring)."""

    kind = "text"

    def __init__(self, name: str, path: Path, pool: ModelPool, dataset: str | None) -> None:
        self.name, self.path, self.pool, self.dataset = name, path, pool, dataset
        for index, char in enumerate(pool.first.vocab.chars):
            try:
                char.encode("utf-8")
            except UnicodeEncodeError:  # a lone surrogate: no text, so no JSON or page can show it
                raise ValueError(f"{path}: vocabulary character {index} is {char!r}, a lone surrogate, not a "
                                 "character of text; serve cannot show it") from None

    def describe(self) -> dict:
        model = self.pool.first
        return {"name": self.name, "kind": self.kind, "file": self.path.name, "dataset": self.dataset,
                "description": model.describe(), "block_size": model.block_size, "n_layer": model.n_layer,
                "n_head": model.n_head, "vocab": "".join(model.vocab.chars), "parameters": model.num_params,
                "copies": self.pool.copies, "max_new_tokens": MAX_NEW_TOKENS}

    def encode(self, prompt: str) -> np.ndarray:
        """Ids (T,) of ``prompt``; an empty prompt starts from a newline, as nanoGPT's sample.py."""
        vocab = self.pool.first.vocab
        if not prompt:
            prompt = "\n" if "\n" in vocab.chars else vocab.chars[0]
        unknown = sorted(set(prompt) - set(vocab.chars))
        if unknown:
            raise RequestError(f"prompt: characters {shown(''.join(unknown))} are not in the vocabulary of model "
                               f"{self.name} ({len(vocab)} characters)")
        return vocab.encode(prompt)

    def check_generation(self, length: int, temperature: float, top_k: int | None) -> None:
        if not 0 <= length <= MAX_NEW_TOKENS:
            raise RequestError(f"length {length} is over the cap of {MAX_NEW_TOKENS} tokens per request"
                               if length > MAX_NEW_TOKENS else f"length must be >= 0, got {length}")
        if not (math.isfinite(temperature) and temperature >= 0):
            raise RequestError(f"temperature must be a finite number >= 0 (0: always the most likely), got {temperature}")
        if top_k is not None and top_k < 1:
            raise RequestError(f"top_k must be >= 1 (or null: all tokens), got {top_k}")

    def tokens(self, prompt: str, length: int, temperature: float = 0.8, top_k: int | None = 200, seed=None):
        """Yield ``length`` generated tokens, one dict each: the character, its id, the model's
        probability of it (softmax of its logits, before temperature and top-k: how sure the
        model itself was) and the :data:`TOP_ALTERNATIVES` most likely characters with theirs.
        Sampling is ``GPT.generate``'s (temperature, top-k, seed), one token per call, each
        call on a borrowed copy, so a long stream does not hold a copy from other requests.

        Raises :class:`ModelOutputError` when the logits hold NaN or infinity: no character can
        be sampled from them (``generate`` would say id 0 each time)."""
        self.check_generation(length, temperature, top_k)
        ids = self.encode(prompt)[None]                                 # (1, T)
        rng = np.random.default_rng(seed)
        vocab = self.pool.first.vocab
        top_k = None if top_k is None else min(top_k, len(vocab))
        for step in range(length):
            nan = ModelOutputError(f"model {self.name}: the logits of character {step + 1} hold NaN or infinity "
                                   "(weights or values overflowing its dtype); no character can be sampled")
            # Sampling from NaN warns inside generate (or refuses, with a ValueError); the logits
            # are looked at here.
            with self.pool.borrow() as model, np.errstate(all="ignore"):
                context = ids[:, -model.block_size:]
                try:
                    ids, logits = model.generate(context, 1, temperature=temperature, top_k=top_k, seed=rng,
                                                 return_logits=True)
                except ValueError:
                    with model.mode(False):
                        if not np.isfinite(model.predict(context)[0, -1]).all():
                            raise nan from None
                    raise
            if not np.isfinite(logits[0, -1]).all():
                raise nan
            p = F.softmax(logits[0, -1].astype(np.float64))             # (V,)
            token = int(ids[0, -1])
            best = np.argsort(-p, kind="stable")[:TOP_ALTERNATIVES]
            yield {"token": vocab.chars[token], "id": token, "probability": float(p[token]),
                   "top": [{"token": vocab.chars[i], "probability": float(p[i])} for i in best]}

    def attention(self, prompt: str) -> dict:
        """Every head's attention weights on the last ``block_size`` characters of ``prompt``:
        ``weights[layer][head]`` (T, T), row i the weights position i gives positions 0..i."""
        ids = self.encode(prompt)
        with self.pool.borrow() as model, model.mode(False):
            start = max(0, len(ids) - model.block_size)
            model.predict(ids[None, start:])
            weights = [_rounded(dict(block.children())["attn"].attention[0]) for block in model.blocks]
        return {"model": self.name, "tokens": list(model.vocab.decode(ids[start:])), "start": start,
                "weights": weights}


class _WordGroups:
    """The words a word model learned, split as its training split them: which words were in
    its training set and which in its test set, to mark each new word as makemore does.

    Decided at start-up, as :class:`_LabelledTestImages`: ``missing`` is None when the words
    were read (makemore's names.txt under ``data_dir``, ``$HANDGRAD_DATA`` or the cache,
    checksum verified; or the ``--data-file`` recorded in the model file), else the reason in
    words, which the page shows instead of the groups. Nothing is downloaded. Words whose
    characters are not the ones the model learned are not its words (the file changed since):
    missing too, rather than groups that would be wrong."""

    def __init__(self, source: dict, data_dir) -> None:
        self.train: frozenset = frozenset()
        self.test: frozenset = frozenset()
        self.missing = self._read(source, data_dir)

    def _read(self, source: dict, data_dir) -> str | None:
        from ..data import DataError
        from ..data.words import load_names, makemore_split, read_words, zero_to_hero_split

        data_file = source.get("data_file")
        try:
            words = read_words(data_file) if data_file else load_names(data_dir, download=False)
        except (DataError, OSError, ValueError) as error:
            where = ("the model learned them from a file that cannot be read now" if data_file else
                     "start the server with --data-dir DIR holding names/names.txt")
            return f"the words it learned are not here ({str(error).split('. ')[0]}); {where}"
        if words.chars != source["chars"]:
            return (f"{words.source} is not the file the model learned: its characters {shown(words.chars)} are not "
                    f"the model's {shown(source['chars'])} (the file changed since)")
        try:
            splits = zero_to_hero_split(words) if source.get("split") == "zero-to-hero" else makemore_split(words)
        except ValueError as error:
            return f"the words it learned cannot be split as its training split them ({error})"
        # Held out: the test split, and Zero to Hero's dev split too (a dev word is not new).
        self.train, self.test = frozenset(splits[0].words), frozenset(w for part in splits[1:] for w in part.words)
        return None


#: A makemore model's name, from its layers (the file records what it learned, not which model).
_WORD_MODEL_NAMES = (("GRU", "gru"), ("RNN", "rnn"), ("FlattenConsecutive", "wavenet"), ("BatchNorm", "mlp-bn"))


def _word_model_description(model) -> str:
    """What a served word model is, in a line: a GPT's own description; for a ``Sequential``,
    makemore's name for it and its layers."""
    from ..model import GPT

    if isinstance(model, GPT):
        return f"transformer ({model.describe()})"
    names = [layer.name for layer in model.layers]
    kind = next((label for layer, label in _WORD_MODEL_NAMES if layer in names),
                "bigram" if names == ["Embedding"] else "a makemore model")
    context = model.input_shape
    reads = f", the last {context[0]} characters" if context else ""
    return f"{kind}: {' → '.join(names)} ({model.num_params:,} parameters{reads})"


class WordModel:
    """A served makemore model (see the module docstring): ``handgrad train --dataset names``
    or ``--data-file FILE`` with any of the makemore models. ``recorded``: the model file's
    ``words`` metadata, JSON with the characters it learned (``chars``), ``block_size``, where
    its words came from (``dataset``, ``data_file``) and how they were split (``split``)."""

    kind = "words"

    def __init__(self, name: str, path: Path, pool: ModelPool, recorded: str, data_dir=None) -> None:
        import json

        from ..data.words import Words
        from ..model import GPT, Sequential

        self.name, self.path, self.pool = name, path, pool
        try:
            source = json.loads(recorded)
            chars, block_size = source["chars"], int(source["block_size"])
            if not isinstance(chars, str) or not chars or block_size < 2:
                raise ValueError(f"chars {chars!r}, block_size {block_size}")
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError(f"{path}: its record of the words it learned is malformed ({error!r})") from None
        for index, char in enumerate(chars):
            try:
                char.encode("utf-8")
            except UnicodeEncodeError:  # a lone surrogate: no text, so no JSON or page can show it
                raise ValueError(f"{path}: character {index} of the words it learned is {char!r}, a lone surrogate, "
                                 "not a character of text; serve cannot show it") from None
        model = pool.first
        if not isinstance(model, (GPT, Sequential)):
            raise ValueError(f"{path}: its metadata records words, but a {type(model).__name__} is no makemore model")
        self.source = source
        self.vocab = Words((), chars, source.get("dataset") or "words")
        self.max_length = min(block_size - 1, model.block_size - 1) if isinstance(model, GPT) else block_size - 1
        scores = self._vocabulary_size(model)
        if scores != self.vocab.vocab_size:
            raise ValueError(f"{path}: the model scores {scores} next characters, but the words it learned have "
                             f"{len(chars)} characters and the end token ({self.vocab.vocab_size})")
        self.groups = _WordGroups(source, data_dir)

    def _vocabulary_size(self, model) -> int:
        """How many next characters the model scores: one forward from the start token."""
        from ..model import GPT
        from ..model.makemore import _context_size

        if isinstance(model, GPT):
            return model.vocab_size
        context = _context_size(model)
        try:  # only the shape is looked at: values overflowing here are the requests' to report
            with model.mode(False), np.errstate(all="ignore"):
                logits = model.predict(np.zeros((1, context or 1), np.int64))
        except Exception as error:  # noqa: BLE001 - any failure refuses this model, in one line
            raise ValueError(f"{self.path}: its metadata records words, but it cannot read the start of a word "
                             f"({type(error).__name__}: {error})".replace("\n", " ")) from None
        return int(logits.shape[-1])

    @property
    def source_name(self) -> str:
        """Where the words came from, for the page: the file's name, or the dataset's."""
        data_file = self.source.get("data_file")
        return Path(data_file).name if data_file else self.source.get("dataset") or "words"

    def describe(self) -> dict:
        model = self.pool.first
        return {"name": self.name, "kind": self.kind, "file": self.path.name, "dataset": self.source.get("dataset"),
                "source": self.source_name, "split": self.source.get("split"),
                "description": _word_model_description(model), "parameters": model.num_params,
                "characters": self.vocab.chars, "max_length": self.max_length, "max_count": MAX_WORDS,
                "copies": self.pool.copies, "groups": self.groups.missing is None,
                "groups_missing": self.groups.missing}

    def check_words(self, count: int, temperature: float, top_k: int | None) -> None:
        """A one-line :class:`RequestError` (422) for a request this model cannot answer."""
        if not 1 <= count <= MAX_WORDS:
            raise RequestError(f"count must be a whole number from 1 to {MAX_WORDS}, got {count}")
        if not (math.isfinite(temperature) and temperature >= 0):
            raise RequestError(f"temperature must be a finite number >= 0 (0: always the most likely), got {temperature}")
        V = self.vocab.vocab_size
        if top_k is not None and not 1 <= top_k <= V:
            raise RequestError(f"top_k must be from 1 to {V} (the model's {V - 1} characters and the end token), "
                               f"or null: all of them; got {top_k}")

    def words(self, count: int = 10, temperature: float = 1.0, top_k: int | None = None, seed=None) -> dict:
        """``count`` new words, drawn as :func:`handgrad.model.makemore.generate_words` draws them
        (``handgrad generate`` gives the same words for the same seed), each with, for every
        character and the end token: its id, the model's probability of it (softmax of its
        logits, before temperature and top-k: how sure the model itself was) and the
        :data:`TOP_ALTERNATIVES` most likely with theirs (the end token's character is null);
        and its ``group``: ``"train"``, ``"test"`` or ``"new"``, or null where the words it
        learned are not here (``groups_missing`` says why). A word that reached the longest
        length without drawing the end token has ``ended`` false."""
        from ..model.makemore import mark_words, sample_words

        self.check_words(count, temperature, top_k)
        with self.pool.borrow() as model, np.errstate(all="ignore"):
            try:
                ids, probabilities = sample_words(model, self.vocab, count, max_length=self.max_length,
                                                  temperature=temperature, top_k=top_k, seed=seed)
            except ValueError:  # the arguments were checked above: it is the logits, NaN or infinite
                raise ModelOutputError(f"model {self.name}: its logits of the next character hold NaN or infinity "
                                       "(weights or values overflowing its dtype); no word can be drawn") from None
        if not np.isfinite(probabilities).all():
            raise ModelOutputError(f"model {self.name}: its probabilities of the next character hold NaN (weights or "
                                   "values overflowing its dtype)")
        samples = [self.vocab.decode(row) for row in ids]
        groups = mark_words(samples, self.groups.train, self.groups.test) if self.groups.missing is None \
            else [None] * count
        answer = []
        for n, (word, group) in enumerate(zip(samples, groups)):
            ended = len(word) < ids.shape[1]                  # the end token was drawn after the word
            steps = len(word) + 1 if ended else len(word)
            answer.append({"word": word, "group": group, "ended": ended,
                           "characters": [self._character(probabilities[n, t], int(ids[n, t])) for t in range(steps)]})
        return {"model": self.name, "words": answer, "groups_missing": self.groups.missing, "seed": seed}

    def _character(self, p: np.ndarray, drawn: int) -> dict:
        """One drawn character (id 0: the end token, character null), the model's probability
        of it, and the most likely characters with theirs."""
        chars = self.vocab.chars
        best = np.argsort(-p, kind="stable")[:TOP_ALTERNATIVES]
        character = lambda i: chars[i - 1] if i else None  # noqa: E731
        return {"character": character(drawn), "id": drawn, "probability": float(p[drawn]),
                "top": [{"character": character(int(i)), "id": int(i), "probability": float(p[i])} for i in best]}
