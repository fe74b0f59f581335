"""Checks of settings that a user gives or a file holds, each failing with one line that names
the setting, what it must be and what it got; a value of the wrong type says its type (``'32'``
is a str where an integer is needed, not "32 where 32 is expected").

Each check returns the value as a plain Python object (a NumPy integer becomes an ``int``), so
that what a constructor keeps, and later writes into a model file, is what :func:`handgrad.load`
checks with the same function. Imports only NumPy (layers use it; it imports nothing back).
"""

from __future__ import annotations

import math
import numbers

import numpy as np

__all__ = ["FLOAT_DTYPES", "MAX_SIZE", "boolean", "choice", "float_dtype", "integer", "lone_surrogate_at",
           "positive_int", "real", "unicode_text"]

#: Every size a model is built with (a width, a count, a length) is below this: far above any real
#: model, far below what could overflow a product of sizes in int64.
MAX_SIZE = 2 ** 40

#: The float dtypes a model's parameters may have: those a model file stores (safetensors F16,
#: F32, F64), so a model that can be built can also be saved and loaded.
FLOAT_DTYPES = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))


def _prefix(who: str) -> str:
    return f"{who}: " if who else ""


def _shown(value) -> str:
    """``value`` as the message shows it: its repr, cut at 40 characters."""
    return f"{value!r:.40}"


def _is_integer(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _wrong_type(value, needed: str) -> str:
    if value is None:
        return "None (missing or null)"
    kind = type(value).__name__
    return f"{_shown(value)} ({'an' if kind[:1] in 'aeiou' else 'a'} {kind}, where {needed} is needed)"


def positive_int(value, name: str, *, who: str = "", limit: int = MAX_SIZE) -> int:
    """``value`` as an int, if it is an integer (not a bool; NumPy's too) with 1 <= value < limit;
    otherwise ValueError: ``"{who}: {name} must be a positive integer, got {value}"`` (with the
    bound, ``<= limit - 1``, when a limit other than :data:`MAX_SIZE` is given or exceeded)."""
    what = "a positive integer" if limit == MAX_SIZE else f"a positive integer <= {limit - 1}"
    if _is_integer(value) and value >= limit:
        what = f"a positive integer <= {limit - 1}"
    return integer(value, name, who=who, minimum=1, maximum=limit - 1, what=what)


def integer(value, name: str, *, who: str = "", minimum: int | None = None, maximum: int | None = None,
            what: str | None = None) -> int:
    """``value`` as an int, if it is an integer (not a bool) in [minimum, maximum] (either bound
    optional); otherwise ValueError naming ``name``, the bounds and the value."""
    if what is None:
        bounds = [f">= {minimum}"] if minimum is not None else []
        bounds += [f"<= {maximum}"] if maximum is not None else []
        what = "an integer" + (" " + " and ".join(bounds) if bounds else "")
    if not _is_integer(value):
        raise ValueError(f"{_prefix(who)}{name} must be {what}, got {_wrong_type(value, 'an integer')}")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ValueError(f"{_prefix(who)}{name} must be {what}, got {_shown(value)}")
    return int(value)


def real(value, name: str, *, who: str = "", low: float | None = None, high: float | None = None,
         low_open: bool = False, high_open: bool = False, what: str | None = None) -> float:
    """``value`` as a float, if it is a finite real number (not a bool) within the bounds:
    ``low < value`` (``low_open``) or ``low <= value``, and likewise for ``high``; otherwise
    ValueError: ``"{who}: {name} must be > 0 and < 1, got 1.0"`` (``what`` replaces "> 0 and < 1").
    NaN and infinities are refused."""
    bounds = []
    if low is not None:
        bounds.append(f"{'>' if low_open else '>='} {low:g}")
    if high is not None:
        bounds.append(f"{'<' if high_open else '<='} {high:g}")
    if what is None:
        what = " and ".join(bounds) if bounds else "a finite number"
    if not _is_real(value):
        raise ValueError(f"{_prefix(who)}{name} must be {what}, got {_wrong_type(value, 'a number')}")
    number = float(value)
    inside = math.isfinite(number)
    if inside and low is not None:
        inside = number > low if low_open else number >= low
    if inside and high is not None:
        inside = number < high if high_open else number <= high
    if not inside:
        raise ValueError(f"{_prefix(who)}{name} must be {what}, got {_shown(value)}")
    return number


def choice(value, name: str, choices, *, who: str = "", meaning: str = ""):
    """``value`` if it is one of ``choices`` (equal, and of the option's type or a subclass, but
    ``True`` is not ``1``); otherwise ValueError listing them (``meaning`` explains them)."""
    for option in choices:
        same_kind = type(value) is type(option) or (isinstance(value, type(option)) and not isinstance(value, bool))
        if same_kind and value == option:
            return value
    listed = meaning or " or ".join(repr(option) for option in choices)
    raise ValueError(f"{_prefix(who)}{name} must be {listed}, got {_shown(value)}")


def boolean(value, name: str, *, who: str = "") -> bool:
    """``value`` as a bool, if it is one (Python's or NumPy's); otherwise ValueError."""
    if not isinstance(value, (bool, np.bool_)):
        # ValueError for a wrong type too, as every check here: a setting read from a file is a bad
        # value of that file, and callers (load, the CLI) report ValueError in one line.
        raise ValueError(f"{_prefix(who)}{name} must be true or false, got {_wrong_type(value, 'true or false')}")  # noqa: TRY004
    return bool(value)


def float_dtype(dtype, *, who: str = "") -> np.dtype:
    """``dtype`` as a NumPy dtype, if it is one a model's parameters may have
    (:data:`FLOAT_DTYPES`); TypeError otherwise."""
    try:
        dtype = np.dtype(dtype)
    except TypeError as error:
        raise TypeError(f"{_prefix(who)}dtype must be float16, float32 or float64, got {_shown(dtype)}") from error
    if dtype not in FLOAT_DTYPES:
        raise TypeError(f"{_prefix(who)}dtype must be a float type a model file can store (float16, float32 or "
                        f"float64), got {dtype}")
    return dtype


def lone_surrogate_at(obj, path: str = "") -> str | None:
    """Where in ``obj`` (strings, lists and dicts, as parsed JSON) a string holds a lone
    surrogate (``"\\ud800"``: valid in a JSON escape and a Python str, but not Unicode text, so
    not encodable as UTF-8): a path such as ``"vocab"`` or ``"layers[2].type"``, or ``None``."""
    stack = [(obj, path)]
    while stack:
        value, where = stack.pop()
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return where or "the text"
        elif isinstance(value, dict):
            for key, item in value.items():
                stack.append((key, f"a key of {where or 'the top level'}"))
                key = str(key).encode("utf-8", "backslashreplace").decode()[:40]  # printable, always
                stack.append((item, f"{where}.{key}" if where else key))
        elif isinstance(value, (list, tuple)):
            stack.extend((item, f"{where}[{i}]") for i, item in enumerate(value))
    return None


def unicode_text(text: str, name: str, *, who: str = "") -> str:
    """``text`` if it is a str encodable as UTF-8 (no lone surrogate, which a model file, a web
    page or a terminal cannot carry); ValueError naming the first bad character's position."""
    if not isinstance(text, str):
        raise ValueError(f"{_prefix(who)}{name} must be a string, got {_wrong_type(text, 'a string')}")  # noqa: TRY004
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise ValueError(f"{_prefix(who)}{name} holds the lone surrogate {text[error.start]!r} at position "
                         f"{error.start}, which is not Unicode text (not encodable as UTF-8)") from None
    return text
