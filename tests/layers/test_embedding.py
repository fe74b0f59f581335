"""handgrad.layers.embedding: gradient checks on many shapes (ids stay integers), PyTorch parity
with repeated ids (float64 at 1e-9, float32 at 1e-5), and the messages for bad ids, dout and
weights. The checks every layer gets (gradient check, contract, spec, PyTorch, ONNX) come from
its row in the table of layer cases, tests/layer_cases.py, run by tests/test_layer_cases.py."""

import numpy as np
import pytest
from helpers import TOL_BY_DTYPE as TOL
from helpers import random_ids as _ids

from handgrad.gradcheck import gradient_check
from handgrad.layers.embedding import Embedding, PositionEmbedding
from handgrad.layers.normalization import LayerNorm

RNG = np.random.default_rng(1234)


@pytest.mark.parametrize("shape", [(1,), (5,), (1, 1), (3, 1), (1, 7), (3, 5)])
def test_embedding_gradient_check_ids_stay_integers(shape):
    layer = Embedding(RNG.standard_normal((7, 3)))
    ids = _ids(shape, 7)
    ids.flat[0] = ids.flat[-1]  # at least one repeat when there are two positions
    report = gradient_check(layer, ids)
    assert report.passed, str(report)
    assert set(report.errors) == {"W"}  # no "x": there is no gradient w.r.t. integer ids


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_embedding_matches_torch_with_repeated_ids(torch, dtype):
    W = RNG.standard_normal((11, 5)).astype(dtype)
    ids = np.array([[1, 1, 3, 10], [0, 1, 1, 3], [10, 10, 10, 10]])
    dout = RNG.standard_normal(ids.shape + (5,)).astype(dtype)
    layer = Embedding(W.copy())
    y = layer.forward(ids)
    assert layer.backward(dout) is None
    ref = torch.nn.Embedding(11, 5, dtype=getattr(torch, np.dtype(dtype).name))
    with torch.no_grad():
        ref.weight.copy_(torch.tensor(W))
    y_ref = ref(torch.tensor(ids))
    y_ref.backward(torch.tensor(dout))
    assert y.dtype == dtype and layer.dW.dtype == dtype
    np.testing.assert_allclose(y, y_ref.detach().numpy(), **TOL[dtype])
    np.testing.assert_allclose(layer.dW, ref.weight.grad.numpy(), **TOL[dtype])
    assert np.all(layer.dW[[2, 4, 5, 6, 7, 8, 9]] == 0)  # ids that never occur get nothing


def test_embedding_repeated_ids_add_not_overwrite():
    layer = Embedding(np.zeros((4, 2)))
    layer.forward(np.array([2, 2, 2]))
    layer.backward(np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]]))
    np.testing.assert_allclose(layer.dW[2], [6.0, 60.0], rtol=1e-15)


def test_embedding_shapes_and_vocab_50257():
    layer = Embedding(np.ones((50257, 4), np.float32))
    ids = _ids((2, 3), 50257)
    ids[0, 0] = 50256
    assert layer.forward(ids).shape == (2, 3, 4)
    assert layer.forward(ids[0]).shape == (3, 4)
    layer.backward(np.ones((3, 4), np.float32))
    assert layer.dW.sum() == pytest.approx(12.0, rel=1e-6)


@pytest.mark.parametrize(
    "ids, error, message",
    [
        (np.array([0.0, 1.0]), TypeError, r"Embedding: token ids must be integers in \[0, 5\), got dtype float64 \(use ids.astype"),
        (np.array([True, False]), TypeError, r"Embedding: token ids must be integers in \[0, 5\), got dtype bool"),
        (np.array([0, 5]), ValueError, r"Embedding: token ids must lie in \[0, 5\) for a vocabulary of 5, got values from 0 to 5"),
        (np.array([-1, 2]), ValueError, r"Embedding: token ids must lie in \[0, 5\).*from -1 to 2"),
        (np.zeros((2, 2, 2, 2), int), ValueError, r"Embedding: expected token ids of shape \(N,\), \(N, T\) or \(N, T, K\), got shape \(2, 2, 2, 2\)"),
    ],
)
def test_embedding_refuses_bad_ids_naming_layer_and_range(ids, error, message):
    with pytest.raises(error, match=message):
        Embedding(np.zeros((5, 3))).forward(ids)


def test_embedding_refuses_bad_dout_and_bad_weight():
    layer = Embedding(np.zeros((5, 3)))
    layer.forward(np.array([[1, 2]]))
    with pytest.raises(ValueError, match=r"Embedding: backward expected dout of shape \(1, 2, 3\).*got \(2, 3\)"):
        layer.backward(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"Embedding: W must have shape \(vocab_size, dim\).*got shape \(5,\)"):
        Embedding(np.zeros(5))


def test_embedding_keeps_its_ids_when_the_caller_reuses_the_buffer():
    layer = Embedding(np.eye(4))
    ids = np.array([1, 2])
    layer.forward(ids)
    ids[:] = 3  # the caller refills its buffer before backward
    layer.backward(np.ones((2, 4)))
    assert layer.dW[3].sum() == 0 and layer.dW[1].sum() == 4


# --- specs (Embedding's and LayerNorm's) --------------------------------------------------------------


def test_param_shapes_refuse_crafted_sizes_before_allocating():
    with pytest.raises(ValueError, match="vocab_size must be a positive integer"):
        Embedding.param_shapes({"vocab_size": -1, "dim": 4})
    with pytest.raises(ValueError, match="num_features must be a positive integer"):
        LayerNorm.param_shapes({"num_features": 2**50})


def test_position_embedding_adds_a_row_per_position_and_refuses_too_many_positions():
    W = np.arange(12.0).reshape(4, 3)
    layer = PositionEmbedding(W)
    x = np.ones((2, 3, 3))
    np.testing.assert_array_equal(layer.forward(x), x + W[:3])
    dout = np.arange(18.0).reshape(2, 3, 3)
    dx = layer.backward(dout)
    np.testing.assert_array_equal(dx, dout)
    assert dx is not dout
    np.testing.assert_array_equal(layer.grads["W"][:3], dout.sum(axis=0))
    assert not layer.grads["W"][3].any()  # position 3 was not used
    with pytest.raises(ValueError, match=r"PositionEmbedding: expected input of shape \(N, T, 3\) with T <= 4 "
                                         r"\(one row of W per position\), got \(2, 5, 3\)"):
        layer.forward(np.ones((2, 5, 3)))
    with pytest.raises(ValueError, match=r"PositionEmbedding: W must have shape \(block_size, dim\)"):
        PositionEmbedding(np.zeros(4))
