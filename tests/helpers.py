"""Helpers shared by several test files (a plain module, no tests in it, like layer_cases.py):
PyTorch parity comparisons, hypothesis strategies for sizes and seeds, random ids, small layers.
Every PyTorch test takes the `torch` fixture (tests/conftest.py): nothing here imports torch."""

import numpy as np
from hypothesis import strategies as st

from handgrad import functions as F
from handgrad.layers import Affine


# --- PyTorch parity: tolerance per dtype (1e-10 in float64, 1e-5 in float32) --------------------------


TOLERANCE = {np.float64: 1e-10, np.float32: 1e-5}
DTYPES = [np.float64, np.float32]


def close(ours, theirs, dtype):
    tol = TOLERANCE[dtype]
    theirs = theirs.detach().numpy() if hasattr(theirs, "detach") else np.asarray(theirs)
    np.testing.assert_allclose(ours, theirs, rtol=tol, atol=tol)


def targets(torch, kind, labels, num_classes, rng, dtype):
    if kind == "index":
        return labels, torch.from_numpy(labels.astype(np.int64))
    rows = F.one_hot(labels, num_classes, dtype=dtype) if kind == "one_hot" else \
        F.softmax(rng.standard_normal((len(labels), num_classes))).astype(dtype)
    return rows, torch.from_numpy(rows)


def torch_input(torch, x):
    return torch.from_numpy(x.copy()).requires_grad_(True)


# --- PyTorch parity of the sequence layers (float64 1e-9, float32 1e-5) -------------------------------


TOL_BY_DTYPE = {np.float64: dict(rtol=1e-9, atol=0), np.float32: dict(rtol=1e-5, atol=0)}


def assert_matches(actual, desired, dtype, atol64=0.0):
    """PyTorch parity: float64 to 1e-9 relative; float32 to 1e-5 relative, plus 1e-6 of the
    largest value as an absolute floor, since float32 sums that cancel (LayerNorm's dx, 1 + erf
    near -1) are only exact to the rounding of their largest term (~6e-8 of it)."""
    desired = np.asarray(desired)
    if dtype == np.float64:
        np.testing.assert_allclose(actual, desired, rtol=1e-9, atol=atol64)
    else:
        np.testing.assert_allclose(actual, desired, rtol=1e-5, atol=1e-6 * float(np.max(np.abs(desired))))


# --- PyTorch parity of the image layers (float64, 1e-9) -----------------------------------------------


TOL_FLOAT64 = 1e-9


def torch_grads(torch, module_call, x, dout):
    x_t = torch.tensor(x, requires_grad=True)
    out = module_call(x_t)
    out.backward(torch.tensor(dout))
    return out.detach().numpy(), x_t.grad.numpy()


# --- random sizes, seeds, ids and layers --------------------------------------------------------------


seeds = st.integers(0, 2**32 - 1)
sizes = st.integers(1, 6)


def random_ids(shape, vocab, seed=0):
    return np.random.default_rng(seed).integers(0, vocab, size=shape)


def affine(rng, n_in, n_out):
    return Affine(rng.standard_normal((n_in, n_out)) * 0.5, rng.standard_normal(n_out) * 0.1)
