"""Values and gradients against PyTorch: every row of the table of layer cases
(tests/layer_cases.py) against its PyTorch mirror in float64, and the functions, Affine,
activations and loss in both precisions.

Tolerances: 1e-10 in float64, 1e-5 in float32 (relative, with a matching absolute floor).
"""

import numpy as np
import pytest
from layer_cases import CASES, case_id

from handgrad import functions as F
from handgrad.layers import Affine, Relu, Sigmoid, SoftmaxWithLoss, Tanh

# Every test takes the `torch` fixture (tests/conftest.py): it skips without PyTorch, and fails
# instead under HANDGRAD_REQUIRE_TORCH=1 (CI), so that a broken install cannot pass for green.

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


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", range(5))
def test_softmax_and_log_softmax(torch, dtype, seed):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((7, 5)) * 10).astype(dtype)
    close(F.softmax(x), torch.softmax(torch.from_numpy(x), dim=-1), dtype)
    close(F.log_softmax(x), torch.log_softmax(torch.from_numpy(x), dim=-1), dtype)
    close(F.softmax(x, axis=0), torch.softmax(torch.from_numpy(x), dim=0), dtype)
    big = np.array([[1000.0, 1010.0, -1000.0]], dtype=dtype)
    close(F.log_softmax(big), torch.log_softmax(torch.from_numpy(big), dim=-1), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1, 1.0])
@pytest.mark.parametrize("kind", ["index", "one_hot", "soft"])
def test_cross_entropy(torch, dtype, reduction, label_smoothing, kind):
    rng = np.random.default_rng(7)
    logits = (3 * rng.standard_normal((6, 4))).astype(dtype)
    t, t_torch = targets(torch, kind, rng.integers(0, 4, 6), 4, rng, dtype)
    ours = F.cross_entropy(logits, t, reduction=reduction, label_smoothing=label_smoothing)
    theirs = torch.nn.functional.cross_entropy(torch.from_numpy(logits), t_torch, reduction=reduction, label_smoothing=label_smoothing)
    close(ours, theirs, dtype)


@pytest.mark.parametrize("label_smoothing", [0.0, 0.3])
def test_cross_entropy_one_unbatched_sample(torch, label_smoothing):
    logits = np.array([0.5, -1.0, 2.0])
    ours = F.cross_entropy(logits, 1, label_smoothing=label_smoothing)
    theirs = torch.nn.functional.cross_entropy(torch.from_numpy(logits), torch.tensor(1), label_smoothing=label_smoothing)
    close(ours, theirs, np.float64)


def torch_input(torch, x):
    return torch.from_numpy(x.copy()).requires_grad_(True)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", range(4))
def test_affine(torch, dtype, seed):
    rng = np.random.default_rng(seed)
    n, d_in, d_out = rng.integers(1, 8, 3)
    W = rng.standard_normal((d_in, d_out)).astype(dtype)
    b = rng.standard_normal(d_out).astype(dtype)
    x = rng.standard_normal((n, 2, d_in // 2 or 1)).astype(dtype) if d_in % 2 == 0 else rng.standard_normal((n, d_in)).astype(dtype)
    dout = rng.standard_normal((n, d_out)).astype(dtype)

    layer = Affine(W, b)
    out = layer.forward(x)
    dx = layer.backward(dout)

    linear = torch.nn.Linear(d_in, d_out, dtype=torch.float64 if dtype == np.float64 else torch.float32)
    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(W.T))  # torch stores (out, in): the transpose
        linear.bias.copy_(torch.from_numpy(b))
    x_t = torch_input(torch, x)
    out_t = linear(x_t.reshape(int(n), -1))
    out_t.backward(torch.from_numpy(dout))
    close(out, out_t, dtype)
    close(dx, x_t.grad, dtype)
    close(layer.dW, linear.weight.grad.T, dtype)
    close(layer.db, linear.bias.grad, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("ours, theirs", [(Relu, "relu"), (Sigmoid, "sigmoid"), (Tanh, "tanh")])
def test_activations(torch, dtype, ours, theirs):
    rng = np.random.default_rng(11)
    x = (4 * rng.standard_normal((5, 3, 2))).astype(dtype)
    x[0, 0, 0] = 0.0  # Relu at exactly 0: torch's derivative there is 0, as is ours
    dout = rng.standard_normal(x.shape).astype(dtype)
    layer = ours()
    out = layer.forward(x)
    dx = layer.backward(dout)
    x_t = torch_input(torch, x)
    out_t = getattr(torch, theirs)(x_t)
    out_t.backward(torch.from_numpy(dout))
    close(out, out_t, dtype)
    close(dx, x_t.grad, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["index", "one_hot", "soft"])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1])
def test_softmax_with_loss(torch, dtype, kind, label_smoothing):
    rng = np.random.default_rng(13)
    x = (2 * rng.standard_normal((8, 5))).astype(dtype)
    t, t_torch = targets(torch, kind, rng.integers(0, 5, 8), 5, rng, dtype)
    layer = SoftmaxWithLoss(label_smoothing=label_smoothing)
    loss = layer.forward(x, t)
    dx = layer.backward(2.5)
    x_t = torch_input(torch, x)
    loss_t = torch.nn.functional.cross_entropy(x_t, t_torch, label_smoothing=label_smoothing)
    (2.5 * loss_t).backward()
    close(loss, loss_t, dtype)
    close(dx, x_t.grad, dtype)


def test_softmax_with_loss_one_sample(torch):
    x = np.array([0.3, -1.2, 2.0, 0.1])
    layer = SoftmaxWithLoss()
    loss = layer.forward(x, 2)
    dx = layer.backward()
    x_t = torch_input(torch, x)
    loss_t = torch.nn.functional.cross_entropy(x_t, torch.tensor(2))
    loss_t.backward()
    close(loss, loss_t, np.float64)
    close(dx, x_t.grad, np.float64)


# --- every row of the table ---------------------------------------------------------------------------


def test_every_case_has_a_pytorch_mirror_or_says_why_not():
    for case in CASES:
        assert (case.torch_forward is None) == bool(case.no_torch), case.id


@pytest.mark.parametrize("case", [case for case in CASES if case.torch_forward is not None], ids=case_id)
def test_every_case_matches_its_pytorch_mirror_in_float64(torch, case):
    """The output, the gradient of every float input and of every parameter, with
    ``dout`` random (a loss layer: ``backward(2.5)`` against ``2.5 * loss``)."""
    layer, inputs, t = case.build(np.float64)
    params_t = {key: torch.from_numpy(value.copy()).requires_grad_(True) for key, value in layer.params.items()}
    inputs_t = [torch_input(torch, x) if x.dtype.kind == "f" else torch.from_numpy(x) for x in inputs]
    if t is None:
        out = layer.forward(*inputs)
        dout = case.rng(1).standard_normal(out.shape)
        dx = layer.backward(dout)
        out_t = case.torch_forward(torch, layer, params_t, *inputs_t)
        out_t.backward(torch.from_numpy(dout))
    else:
        out = layer.forward(*inputs, t)
        dx = layer.backward(2.5)
        out_t = case.torch_forward(torch, layer, params_t, *inputs_t, torch.from_numpy(t))
        (2.5 * out_t).backward()
    assert np.shape(out) == tuple(out_t.shape)
    close(out, out_t, np.float64)
    dxs = dx if isinstance(dx, tuple) else (dx,)
    for x_t, dx in zip(inputs_t, dxs):
        if x_t.requires_grad:
            assert dx.shape == tuple(x_t.shape)
            close(dx, x_t.grad, np.float64)
        else:
            assert dx is None  # integer ids have no gradient
    assert set(layer.grads) == set(params_t)
    for key, grad in layer.grads.items():
        close(grad, params_t[key].grad, np.float64)
