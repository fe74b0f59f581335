"""A user's picture of a digit (or a garment) turned into a model input, made the way the
dataset's own images were made.

A drawing app exports dark strokes on a white or transparent 256x256 canvas with wide margins;
the datasets hold light strokes on black, cropped to the strokes and normalised in size. A
model trained on one and shown the other, merely resized, is right about 2 times in 10.
:func:`read_image` closes that gap in two stages:

1. **Ink.** Decode with Pillow, turn the camera's EXIF orientation upright, and find the ink:
   transparent pixels are background (a single-colour drawing on a transparent canvas is read
   through its alpha channel; anything else is composited onto white); the background level is
   the median of the image's border, its noise the spread of the border, and the ink is whatever
   departs from it in the dominant direction (darker or lighter). Ink is mapped to [0, 1]: the
   background to 0, the strokes' typical peak to 1 (contrast stretching). A nearly uniform image
   is refused; a faint one gets a warning.
2. **Normalisation**, per dataset (``style``):

   * ``"mnist"`` (28x28): LeCun's procedure. The ink's bounding box is scaled, keeping its
     aspect ratio, so that its longer side is 20 pixels (area averaging, which gives the grey
     anti-aliased edges), then pasted into 28x28 so that its centre of mass falls on pixel
     (14, 14), the centre the MNIST images have.
   * ``"fashion-mnist"`` (28x28): Zalando's procedure. The bounding box is scaled so that its
     longer side is 28 and centred (by the box, not by mass) in 28x28.
   * ``"digits"`` (UCI 8x8): the 32x32 black-and-white bitmaps that UCI counted in 4x4 blocks
     came out of NIST's character normalisation, whose traces the shipped images show: every
     digit spans the bitmap's full height and about 20 of its 32 columns, upright, with about
     313 of its 1024 pixels on whatever the writer's pen (the count varies little from digit to
     digit, so the strokes' thickness was normalised too). A drawing is made the same way: cut
     to the box of the pixels at half the ink's peak or more (the pixels a bitmap turns on),
     sheared upright (the slant its ink's second moments show is removed), scaled to 32 pixels
     tall and at most :data:`DIGITS_WIDTH` wide (keeping the aspect ratio of narrower digits: a
     plain 1 stays a bar), centred, thresholded, then its strokes thickened or thinned evenly
     (by distance to the stroke) until :data:`DIGITS_INK_PIXELS` pixels are on, and each 4x4
     block becomes the fraction of its pixels that are on (the dataset's counts 0..16, divided
     by 16 as :func:`handgrad.data.load_dataset` does). Merely scaling the box to fill 32x32
     kept a thin pen's 1 at a third of the ink of UCI's 1s and a slanted 7 slanted: the first
     run's model (``handgrad train``) recognised 70 % of the held-out drawn digits of
     :mod:`handgrad.serve.drawn` that way, 88 % this way; trained on batches warped by
     :func:`warp_digits`, as the first run now is (``--augment warp``), 89.8 to 94.5 % (seeds 0
     to 4; benchmarks/results/drawn_digits.json).

Pillow is an optional extra (``pip install 'handgrad[images]'``), imported only here.
"""

from __future__ import annotations

import re
import warnings
from os import PathLike

import numpy as np

from .fetch import DataError

__all__ = ["PREPROCESSING_HELP", "STYLES", "STYLE_SHAPES", "image_style", "preprocess", "read_image", "warp_digits"]

#: Each style's output shape (height, width).
STYLE_SHAPES = {"mnist": (28, 28), "fashion-mnist": (28, 28), "digits": (8, 8)}
STYLES = tuple(STYLE_SHAPES)

PREPROCESSING_HELP = (
    "Images (PNG, JPEG, or any format Pillow reads) are prepared the way the dataset was made: "
    "turned upright by their EXIF orientation; transparent pixels count as background; the "
    "background is the colour of the image's border and the ink whatever differs from it (dark "
    "on light or light on dark), mapped to light strokes on black with the contrast stretched; "
    "then the ink is cropped to its bounding box and, for MNIST (784 inputs), scaled to fit "
    "20x20 and centred by its centre of mass in 28x28; for Fashion-MNIST, scaled to fit 28x28 "
    "and centred; for the 8x8 digits (64 inputs), as UCI's were made: sheared upright, scaled to "
    "32 pixels tall and at most 18 wide in a 32x32 bitmap, its strokes thickened or thinned to "
    "UCI's amount of ink, and counted in 4x4 blocks. A blank image is refused. Draw one digit "
    "per image; it need not be centred or cropped."
)

# Below this ink contrast (in grey levels, 0..1) the image holds no digit: refuse it.
BLANK_CONTRAST = 0.04
# Below this the digit is faint (a grey pencil line, a dim photo): predict, but warn.
LOW_CONTRAST = 0.25
# A drawing in one colour on a transparent canvas: the visible pixels' grey levels span at most
# this much (anti-aliased edges of a premultiplied canvas export are slightly off-colour).
UNIFORM_COLOUR_SPREAD = 0.1
# Larger images are first shrunk by a whole factor (see _reduced).
MAX_SIDE = 2048
# The geometry of each dataset (see the module docstring).
MNIST_BOX, MNIST_SIDE, MNIST_CENTRE = 20, 28, 14.0  # MNIST's centres of mass average (14.0, 14.0)
FASHION_SIDE = 28
DIGITS_BITMAP, DIGITS_BLOCK = 32, 4
#: The widest a digit is drawn in the 32x32 bitmap (UCI's span about 20 columns; 18 read
#: handgrad's drawn digits best of 14 to 22, on their dev split).
DIGITS_WIDTH = 18
#: Pixels on in a UCI bitmap, of 1024: the shipped training images' mean count (312.8, sd 34).
DIGITS_INK_PIXELS = 313
# A shear larger than this (a 45-degree slant) is no handwriting slant: a flat dash, a scribble.
MAX_DESLANT = 1.0


def image_style(dataset: str | None = None, input_size: int | None = None) -> str:
    """The style (a key of :data:`STYLE_SHAPES`) for a dataset name, or else for a model's
    number of inputs: 784 -> ``"mnist"`` (Fashion-MNIST models also take 784 inputs; name the
    dataset to get its style), 64 -> ``"digits"``. Anything else raises :class:`DataError`: a
    plain resize to some other square would not match any data the model was trained on."""
    if dataset is not None:
        key = dataset.lower().replace("_", "-")
        if key in STYLE_SHAPES:
            return key
        if key in ("mnist1d", "mnist-1d"):
            raise DataError("mnist1d models take 40-point signals, not images: give a .npy file")
        raise DataError(f"no image preprocessing for dataset {dataset!r}; choose from {', '.join(STYLES)}")
    if input_size == 28 * 28:
        return "mnist"
    if input_size == 8 * 8:
        return "digits"
    raise DataError(f"a model with {input_size} inputs takes no images handgrad knows how to prepare "
                    f"(784: MNIST 28x28, 64: digits 8x8); give a .npy file of {input_size} values")


def read_image(path: str | PathLike, style: str) -> tuple[np.ndarray, list[str]]:
    """Read an image file and prepare it as ``style``'s dataset was made (see the module
    docstring).

    Returns ``(pixels, warnings)``: ``pixels`` a float32 array of shape ``STYLE_SHAPES[style]``
    ((28, 28) or (8, 8)), light ink on 0, values in [0, 1]; ``warnings`` a list of one-line
    strings naming the file (faint digit, several frames), empty when all is well.

    Raises :class:`DataError` (one line naming the file) when Pillow is missing, the file cannot
    be read or decoded, it is over Pillow's decompression-bomb limit, or it is nearly uniform
    (no digit). ``style`` must be one of :data:`STYLES` (``ValueError`` otherwise: a caller's bug).
    """
    _check_style(style)
    try:
        from PIL import Image, ImageOps
    except ImportError:
        raise DataError(f"{path}: reading images needs Pillow (pip install 'handgrad[images]')") from None
    notes: list[str] = []
    try:
        # Pillow only warns between MAX_IMAGE_PIXELS and twice that; refuse both alike.
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                frames = getattr(image, "n_frames", 1)
                if frames > 1:
                    notes.append(f"{path}: {frames} frames; reading the first")
                image.load()
                image = _reduced(ImageOps.exif_transpose(image))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        count = re.search(r"\((\d+) pixels\)", str(error))
        size = f"{int(count.group(1)):,} pixels" if count else "too many pixels"
        raise DataError(f"{path}: image of {size} is over Pillow's limit of {Image.MAX_IMAGE_PIXELS:,} "
                        f"(a decompression-bomb guard); scale it down first") from error
    except MemoryError as error:
        raise DataError(f"{path}: image too large to decode in memory") from error
    except FileNotFoundError as error:
        raise DataError(f"{path}: no such file") from error
    except IsADirectoryError as error:
        raise DataError(f"{path}: is a directory, not an image") from error
    except Image.UnidentifiedImageError as error:
        raise DataError(f"{path}: not an image Pillow can read") from error
    except Exception as error:  # decoders of untrusted files raise many types
        raise DataError(f"{path}: cannot read image ({type(error).__name__}: {error})".replace("\n", " ")) from error
    pixels, more = preprocess(_grey_levels(image), style, name=str(path))
    return pixels, notes + more


def preprocess(grey: np.ndarray, style: str, *, name: str = "image") -> tuple[np.ndarray, list[str]]:
    """Prepare a grey-level image as ``style``'s dataset was made: :func:`read_image` without
    the file (for a canvas sent to a web page, or an array already decoded).

    ``grey``: shape (H, W), any polarity (dark on light or light on dark), values in [0, 1].
    Returns ``(pixels, warnings)`` as :func:`read_image`; ``name`` names the image in messages.
    Raises :class:`DataError` for a nearly uniform image.
    """
    _check_style(style)
    grey = np.asarray(grey, dtype=np.float64)
    if grey.ndim != 2 or grey.size == 0:
        raise ValueError(f"preprocess: expected a grey-level image of shape (H, W), got {grey.shape}")
    ink, contrast = _ink(grey)
    if contrast < BLANK_CONTRAST:
        raise DataError(f"{name}: no digit found: the image is nearly uniform "
                        f"(ink contrast {contrast * 255:.0f}/255)")
    notes = []
    if contrast < LOW_CONTRAST:
        notes.append(f"{name}: low contrast (the ink differs from the background by {contrast * 255:.0f}/255); "
                     "the prediction may be unreliable")
    ink = _crop(ink)
    if style == "mnist":
        pixels = _centre_of_mass_placement(_fit(ink, MNIST_BOX), MNIST_SIDE, MNIST_CENTRE)
    elif style == "fashion-mnist":
        pixels = _centred(_fit(ink, FASHION_SIDE), FASHION_SIDE)
    else:
        pixels = _uci_blocks(ink)
    return np.clip(pixels, 0.0, 1.0).astype(np.float32), notes


def warp_digits(images: np.ndarray, rng: np.random.Generator, *, shear: float = 0.5, rotation: float = 12.0,
                scale: tuple[float, float] = (0.8, 1.15), shift: float = 0.8) -> np.ndarray:
    """Each 8x8 image of ``images`` warped by an affine map of its own, drawn from ``rng``: a
    shear of x by up to ``shear`` times y, a rotation of up to ``rotation`` degrees, each axis
    scaled by a factor in ``scale`` and shifted by up to ``shift`` pixels, about the image's
    centre; bilinear, ink that leaves the grid is lost and what enters is 0.

    The training augmentation that lets the 8x8 digits model read drawings: UCI's 1797 digits
    come from 43 writers, upright and of one size; people slant, squeeze and stretch. ``handgrad
    train`` warps every batch of the digits with it (``--augment warp``, the default). ``images``:
    (N, 64) or (N, 1, 8, 8) (the two shapes :func:`handgrad.data.load_dataset` gives); returns
    the same shape and dtype.
    """
    images = np.asarray(images)
    n = len(images)
    if images.size != n * 64:
        raise ValueError(f"warp_digits: expected 8x8 images, (N, 64) or (N, 1, 8, 8), got shape {images.shape}")
    grid = images.reshape(n, 8, 8).astype(np.float64)
    angle = np.radians(rng.uniform(-rotation, rotation, n))
    k = rng.uniform(-shear, shear, n)
    sx, sy = rng.uniform(*scale, n), rng.uniform(*scale, n)
    tx, ty = rng.uniform(-shift, shift, n), rng.uniform(-shift, shift, n)
    cos, sin = np.cos(angle), np.sin(angle)
    # forward map of (x, y) about the centre: rotation @ [[1, k], [0, 1]] @ diag(sx, sy), then (tx, ty)
    forward = np.empty((n, 2, 2))
    forward[:, 0, 0], forward[:, 0, 1] = cos * sx, (cos * k - sin) * sy
    forward[:, 1, 0], forward[:, 1, 1] = sin * sx, (sin * k + cos) * sy
    rows, cols = np.indices((8, 8)).reshape(2, 64) - 3.5
    target = np.stack([cols[None] - tx[:, None], rows[None] - ty[:, None]], axis=1)   # (n, 2, 64): x, y
    source = np.linalg.solve(forward, target) + 3.5                                  # where each pixel comes from
    x, y = source[:, 0], source[:, 1]
    x0, y0 = np.floor(x).astype(np.int64), np.floor(y).astype(np.int64)
    fx, fy = x - x0, y - y0
    sample = np.arange(n)[:, None]

    def at(r, c):
        inside = (r >= 0) & (r < 8) & (c >= 0) & (c < 8)
        return np.where(inside, grid[sample, np.clip(r, 0, 7), np.clip(c, 0, 7)], 0.0)

    warped = (at(y0, x0) * (1 - fx) * (1 - fy) + at(y0, x0 + 1) * fx * (1 - fy)
              + at(y0 + 1, x0) * (1 - fx) * fy + at(y0 + 1, x0 + 1) * fx * fy)
    return warped.reshape(images.shape).astype(images.dtype)


# --- stage 1: decoding and ink --------------------------------------------------------------------


def _check_style(style: str) -> None:
    if style not in STYLE_SHAPES:
        raise ValueError(f"unknown image style {style!r}; choose from {', '.join(STYLES)}")


def _reduced(image):
    """``image`` shrunk by a whole factor (block averages) until its longer side is at most
    :data:`MAX_SIDE`: a 40-megapixel photo would take gigabytes as float arrays, and the digit
    ends up in at most 32x32 pixels anyway."""
    factor = -(-max(image.size) // MAX_SIDE)
    if factor <= 1:
        return image
    if image.mode in ("P", "PA", "1") or "transparency" in image.info:  # modes reduce() cannot average
        transparent = image.mode in ("PA", "LA", "RGBA") or "transparency" in image.info
        image = image.convert("RGBA" if transparent else "RGB" if image.mode != "1" else "L")
    return image.reduce(factor)


def _grey_levels(image) -> np.ndarray:
    """The image as grey levels (H, W) in [0, 1], transparency resolved (see the module
    docstring). ``image`` is a loaded, upright Pillow image of any mode."""
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        rgba = np.asarray(image.convert("RGBA"), dtype=np.float64) / 255.0
        alpha = rgba[..., 3]
        if alpha.min() < 1.0:
            grey = rgba[..., :3] @ np.array([0.299, 0.587, 0.114])  # ITU-R 601 luma, as Pillow's "L"
            visible = grey[alpha >= 0.5]
            if visible.size == 0 or np.ptp(visible) <= UNIFORM_COLOUR_SPREAD:
                # One colour painted with varying opacity (a canvas export: transparent pixels are
                # often (0, 0, 0, 0), so compositing alone would turn white strokes invisible):
                # the alpha channel is the ink.
                return 1.0 - alpha
            return alpha * grey + (1.0 - alpha)  # a picture with transparent parts: onto white
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        # 16-bit PNGs and float TIFFs; only the contrast matters downstream, not the scale.
        values = np.clip(np.asarray(image, dtype=np.float64), 0.0, None)
        peak = values.max(initial=0.0)
        return values / (1.0 if peak <= 1.0 and image.mode == "F" else 255.0 if peak <= 255.0 else 65535.0)
    if image.mode not in ("L", "RGB"):
        image = image.convert("RGB")  # CMYK, YCbCr, palettes, 1-bit: through RGB to grey
    return np.asarray(image.convert("L"), dtype=np.float64) / 255.0


def _ink(grey: np.ndarray) -> tuple[np.ndarray, float]:
    """``(ink, contrast)``: ink (H, W) in [0, 1] with the background at 0 and the strokes' peak
    at 1, and the contrast (how far the strokes' peak stands above the noise floor, in grey
    levels; below :data:`BLANK_CONTRAST` the ink is all zeros).

    Background: the border's median (a digit seldom covers most of the border, and the median
    ignores the strokes that do touch it). Noise: the border's median absolute deviation, scaled
    to a standard deviation; three of them is the floor below which nothing counts as ink (paper
    texture, JPEG speckle). Polarity: the side (darker or lighter) holding more ink mass.
    """
    border = np.concatenate([grey[0], grey[-1], grey[1:-1, 0], grey[1:-1, -1]])
    background = np.median(border)
    noise = 1.4826 * np.median(np.abs(border - background))
    departure = grey - background
    darker, lighter = np.clip(-departure, 0.0, None), np.clip(departure, 0.0, None)
    ink = darker if darker.sum() >= lighter.sum() else lighter
    # Half a grey level more than the noise: exact zeros stay zeros, 8-bit steps count.
    floor = 3.0 * noise + 0.5 / 255.0
    strokes = ink[ink > floor]
    # The strokes' typical peak, not the single brightest pixel (a JPEG overshoot, a dust speck).
    contrast = float(np.percentile(strokes, 99)) - floor if strokes.size else 0.0
    if contrast < BLANK_CONTRAST:
        return np.zeros_like(ink), max(contrast, 0.0)
    return np.clip((ink - floor) / contrast, 0.0, 1.0), contrast


# --- stage 2: geometry -----------------------------------------------------------------------------


def _crop(ink: np.ndarray, level: float = 0.0) -> np.ndarray:
    """The bounding box of the ink above ``level`` (by default every pixel above 0)."""
    strong = ink > level
    rows, cols = np.flatnonzero(strong.any(axis=1)), np.flatnonzero(strong.any(axis=0))
    return ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]


def _bitmap_box(ink: np.ndarray) -> np.ndarray:
    """The bounding box of the pixels a black-and-white bitmap of ``ink`` turns on (at half its
    peak level or above): the box of UCI's bitmaps. A blurred digit's faint fringe stays out
    (an 8x8 digit enlarged smoothly has a fringe of a third of its width)."""
    return _crop(ink, np.nextafter(min(0.5, ink.max() / 2), -np.inf))


def _fit(ink: np.ndarray, side: int) -> np.ndarray:
    """``ink`` scaled, keeping its aspect ratio, so that its longer side is ``side`` pixels,
    and its peak brought back to 1. Shrinking averages areas (the anti-aliasing of the datasets'
    grey edges); enlarging is bilinear; a box already of that size is returned unchanged."""
    from PIL import Image

    height, width = ink.shape
    scale = side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))  # Pillow's (width, height)
    if size == (width, height):
        return ink
    resampling = getattr(Image, "Resampling", Image)  # Pillow < 9.1 has the constants on Image
    method = resampling.BOX if scale < 1 else resampling.BILINEAR
    resized = np.asarray(Image.fromarray(ink.astype(np.float32)).resize(size, method), dtype=np.float64)
    # Every MNIST image peaks at 254 or 255: a thin pen averaged down would otherwise come out
    # faint (a 4-pixel stroke shrunk 7 times covers about half of each pixel).
    return resized / resized.max()


def _resized(ink: np.ndarray, width: float, height: float) -> np.ndarray:
    """``ink`` scaled to ``width`` x ``height`` pixels (rounded), its peak brought back to 1:
    area averaging when both sides shrink, bilinear otherwise (as :func:`_fit`)."""
    from PIL import Image

    size = (max(1, round(width)), max(1, round(height)))  # Pillow's (width, height)
    if size == (ink.shape[1], ink.shape[0]):
        return ink
    resampling = getattr(Image, "Resampling", Image)
    shrinking = size[0] <= ink.shape[1] and size[1] <= ink.shape[0]
    method = resampling.BOX if shrinking else resampling.BILINEAR
    resized = np.asarray(Image.fromarray(ink.astype(np.float32)).resize(size, method), dtype=np.float64)
    return resized / resized.max()


def _slant(ink: np.ndarray) -> float:
    """The ink's slant as a shear, dx/dy (positive: the bottom lies to the right of the top),
    from its second moments: mu11 / mu02. 0 for ink one pixel tall."""
    rows, cols = np.arange(ink.shape[0], dtype=np.float64), np.arange(ink.shape[1], dtype=np.float64)
    mass = ink.sum()
    row_mass, col_mass = ink.sum(axis=1), ink.sum(axis=0)
    centre_row, centre_col = row_mass @ rows / mass, col_mass @ cols / mass
    mu02 = row_mass @ (rows - centre_row) ** 2 / mass
    mu11 = (rows - centre_row) @ ink @ (cols - centre_col) / mass
    return float(mu11 / mu02) if mu02 > 0 else 0.0


def _upright(ink: np.ndarray) -> np.ndarray:
    """``ink`` (cropped) sheared horizontally, about its middle row, so that its slant
    (:func:`_slant`) is 0, and cropped again. Slants beyond :data:`MAX_DESLANT` are left alone."""
    from PIL import Image

    shear = _slant(ink)
    if shear == 0 or abs(shear) > MAX_DESLANT:
        return ink
    height = ink.shape[0]
    pad = int(np.ceil(abs(shear) * height / 2)) + 1
    padded = Image.fromarray(np.pad(ink, ((0, 0), (pad, pad))).astype(np.float32))
    middle = (height - 1) / 2
    # Pillow's affine maps each output pixel (x, y) to the input pixel (x + shear (y - middle), y).
    resampling = getattr(Image, "Resampling", Image)
    transform = getattr(Image, "Transform", Image).AFFINE
    sheared = padded.transform(padded.size, transform, (1, shear, -shear * middle, 0, 1, 0),
                               resample=resampling.BILINEAR)
    upright = np.asarray(sheared, dtype=np.float64)
    return _bitmap_box(upright) if upright.max() > 0 else ink


def _even_thickness(grey: np.ndarray, pixels_on: int) -> np.ndarray:
    """The bitmap (grey >= 0.5) with its strokes thickened or thinned evenly until about
    ``pixels_on`` pixels are on: a pixel's signed distance to the strokes (outside: to the
    nearest pixel on; inside: 1 minus the distance to the nearest pixel off) is compared with the
    one level whose bitmap holds the count nearest ``pixels_on``: dilation and erosion by a disc."""
    inside = grey >= 0.5
    if inside.all() or not inside.any():
        return inside
    rows, cols = np.indices(grey.shape)
    on = np.stack([rows[inside], cols[inside]], axis=1).astype(np.float64)
    off = np.stack([rows[~inside], cols[~inside]], axis=1).astype(np.float64)
    # (pixels on) x (pixels off) distances: at most 512 x 512 for a 32x32 bitmap.
    distance = np.sqrt(((on[:, None, :] - off[None, :, :]) ** 2).sum(axis=-1))
    signed = np.empty(grey.shape)
    signed[~inside] = distance.min(axis=0)
    signed[inside] = 1.0 - distance.min(axis=1)
    levels = np.unique(signed)
    counts = np.searchsorted(np.sort(signed.ravel()), levels, side="right")  # pixels at or below each level
    return signed <= levels[np.argmin(np.abs(counts - pixels_on))]


def _uci_blocks(ink: np.ndarray) -> np.ndarray:
    """The 8x8 block counts (in sixteenths) of cropped ``ink`` made as UCI's (module docstring)."""
    ink = _upright(_bitmap_box(ink))
    height, width = ink.shape
    scale = DIGITS_BITMAP / height
    box = _resized(ink, min(DIGITS_WIDTH, width * scale), DIGITS_BITMAP)
    bitmap = _even_thickness(_centred(box, DIGITS_BITMAP), DIGITS_INK_PIXELS)
    n = DIGITS_BITMAP // DIGITS_BLOCK
    return bitmap.reshape(n, DIGITS_BLOCK, n, DIGITS_BLOCK).mean(axis=(1, 3))


def _centred(box: np.ndarray, side: int) -> np.ndarray:
    """``box`` pasted at the centre of a black ``side`` x ``side`` canvas."""
    canvas = np.zeros((side, side))
    top, left = (side - box.shape[0]) // 2, (side - box.shape[1]) // 2
    canvas[top:top + box.shape[0], left:left + box.shape[1]] = box
    return canvas


def _centre_of_mass_placement(box: np.ndarray, side: int, centre: float) -> np.ndarray:
    """``box`` pasted into a black ``side`` x ``side`` canvas, shifted by whole pixels so that
    its centre of mass (pixel-index coordinates) is as near ``centre`` as it can be while the
    box stays inside the canvas (a lopsided 7 would otherwise lose its stroke's end)."""
    rows, cols = np.arange(box.shape[0]), np.arange(box.shape[1])
    mass = box.sum()
    centre_row, centre_col = (box.sum(axis=1) @ rows) / mass, (box.sum(axis=0) @ cols) / mass
    top = int(np.clip(np.floor(centre - centre_row + 0.5), 0, side - box.shape[0]))
    left = int(np.clip(np.floor(centre - centre_col + 0.5), 0, side - box.shape[1]))
    canvas = np.zeros((side, side))
    canvas[top:top + box.shape[0], left:left + box.shape[1]] = box
    return canvas
