"""handgrad.layers.attention: MultiHeadAttention (self-attention, causal and key-padding masks, a
key/value cache) and the second book's dot-product Attention for seq2seq: numerical gradients,
PyTorch parity, masks that really mask, and the messages bad input gets."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from handgrad import layers as L
from handgrad.gradcheck import gradient_check, numerical_gradient, relative_error
from handgrad.layers.attention import Attention, MultiHeadAttention


def make_mha(dim, n_heads, causal=False, seed=0, dtype=np.float64, scale=0.5):
    rng = np.random.default_rng(seed)
    return MultiHeadAttention(
        (rng.standard_normal((dim, 3 * dim)) * scale).astype(dtype), (rng.standard_normal(3 * dim) * 0.1).astype(dtype),
        (rng.standard_normal((dim, dim)) * scale).astype(dtype), (rng.standard_normal(dim) * 0.1).astype(dtype),
        n_heads, causal=causal)


class WithMask:
    """The layer with a fixed key-padding mask, seen as a one-input layer by gradient_check."""

    def __init__(self, layer, mask):
        self.layer, self.mask = layer, mask
        self.params, self.grads = layer.params, layer.grads

    def forward(self, x):
        return self.layer.forward(x, key_padding_mask=self.mask)

    def backward(self, dout):
        return self.layer.backward(dout)


def padding_mask(n, t, lengths, left=False):
    """True at the padded positions of sequences of the given lengths (right padding by default)."""
    positions = np.arange(t)
    lengths = np.asarray(lengths)[:, None]
    return positions >= lengths if not left else positions < t - lengths


# --- numerical gradients -----------------------------------------------------------------------

@pytest.mark.parametrize("n, t, dim, n_heads, causal", [
    (1, 1, 6, 2, False), (1, 1, 6, 3, True),  # T = 1, batch of one
    (2, 5, 6, 3, True), (3, 4, 6, 1, False), (2, 3, 9, 3, True), (1, 7, 4, 4, True), (2, 3, 6, 6, False),
    (3, 5, 10, 2, False),
])
def test_multihead_attention_gradients_match_numerical_ones(n, t, dim, n_heads, causal):
    layer = make_mha(dim, n_heads, causal, seed=n * 100 + t)
    x = np.random.default_rng(t).standard_normal((n, t, dim))
    report = gradient_check(layer, x)
    assert report.passed, report
    assert set(report.errors) == {"W_qkv", "b_qkv", "W_o", "b_o", "x"}


@pytest.mark.parametrize("causal", [False, True])
def test_multihead_attention_gradients_with_a_padding_mask_match_numerical_ones(causal):
    n, t, dim = 3, 5, 6
    # Right padding, none, and left padding: with a causal mask, the first query of the left-padded
    # sequence sees no key at all (its row is all masked).
    mask = np.stack([padding_mask(1, t, [3])[0], np.zeros(t, bool), padding_mask(1, t, [2], left=True)[0]])
    layer = make_mha(dim, 2, causal, seed=3)
    x = np.random.default_rng(4).standard_normal((n, t, dim))
    report = gradient_check(WithMask(layer, mask), x)
    assert report.passed, report


def test_the_book_usage_forward_backward_repeated_holds_one_step_of_gradients():
    layer = make_mha(6, 2, causal=True)
    x, dout = np.random.default_rng(1).standard_normal((2, 4, 6)), np.random.default_rng(2).standard_normal((2, 4, 6))
    layer.forward(x)
    layer.backward(dout)
    first = {key: grad.copy() for key, grad in layer.grads.items()}
    layer.forward(x)
    layer.backward(dout)
    for key, value in first.items():
        np.testing.assert_allclose(layer.grads[key], value, rtol=1e-13, atol=1e-15)
    layer.backward(dout)  # a second use of the same forward adds up (contract v2)
    for key, value in first.items():
        np.testing.assert_allclose(layer.grads[key], 2 * value, rtol=1e-13, atol=1e-15)


def test_multihead_attention_backward_leaves_dout_and_the_forward_cache_unchanged():
    layer = make_mha(6, 3, causal=True)
    x = np.random.default_rng(1).standard_normal((2, 4, 6))
    dout = np.random.default_rng(2).standard_normal((2, 4, 6))
    x_before, dout_before = x.copy(), dout.copy()
    layer.forward(x)
    attention = layer.attention.copy()
    dx1 = layer.backward(dout)
    dx2 = layer.backward(dout)
    np.testing.assert_array_equal(dout, dout_before)
    np.testing.assert_array_equal(x, x_before)
    np.testing.assert_array_equal(layer.attention, attention)
    np.testing.assert_allclose(dx1, dx2, rtol=1e-14, atol=1e-15)


def test_skipping_the_input_gradient_still_gives_the_parameter_gradients():
    layer = make_mha(6, 2)
    x, dout = np.random.default_rng(1).standard_normal((2, 3, 6)), np.random.default_rng(2).standard_normal((2, 3, 6))
    layer.forward(x)
    dx = layer.backward(dout)
    full = {key: grad.copy() for key, grad in layer.grads.items()}
    layer.forward(x)
    assert layer.backward(dout, input_grad=False) is None
    assert dx.shape == x.shape
    for key, value in full.items():
        np.testing.assert_allclose(layer.grads[key], value, rtol=1e-13, atol=1e-15)


# --- PyTorch parity ------------------------------------------------------------------------------

def torch_sdpa_reference(torch, layer, x, dout, key_padding_mask=None):
    """The same layer in PyTorch autograd: projections by hand around
    F.scaled_dot_product_attention; returns y and the gradients, as NumPy arrays."""
    F = torch.nn.functional
    n, t, dim = x.shape
    heads, hd = layer.n_heads, dim // layer.n_heads
    tensors = {key: torch.tensor(value, requires_grad=True) for key, value in layer.params.items()}
    xt = torch.tensor(x, requires_grad=True)
    qkv = xt @ tensors["W_qkv"] + tensors["b_qkv"]
    q, k, v = (part.reshape(n, t, heads, hd).transpose(1, 2) for part in qkv.split(dim, dim=2))
    if key_padding_mask is None:
        out = F.scaled_dot_product_attention(q, k, v, is_causal=layer.causal)
    else:
        allowed = ~torch.tensor(key_padding_mask)[:, None, None, :]  # SDPA: True = may attend
        if layer.causal:
            allowed = allowed & torch.ones(t, t, dtype=torch.bool).tril()
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
    y = out.transpose(1, 2).reshape(n, t, dim) @ tensors["W_o"] + tensors["b_o"]
    (y * torch.tensor(dout)).sum().backward()
    grads = {key: tensor.grad.numpy() for key, tensor in tensors.items()}
    grads["x"] = xt.grad.numpy()
    return y.detach().numpy(), grads


def run_layer(layer, x, dout, key_padding_mask=None):
    y = layer.forward(x, key_padding_mask=key_padding_mask)
    grads = {"x": layer.backward(dout)}
    grads.update(layer.grads)
    return y, grads


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("n, t, dim, n_heads", [(3, 7, 12, 4), (1, 1, 6, 2), (2, 5, 10, 1)])
def test_multihead_attention_equals_torch_sdpa_in_float64(torch, causal, padded, n, t, dim, n_heads):
    layer = make_mha(dim, n_heads, causal, seed=t)
    rng = np.random.default_rng(n + t)
    x, dout = rng.standard_normal((n, t, dim)), rng.standard_normal((n, t, dim))
    mask = padding_mask(n, t, rng.integers(1, t + 1, n)) if padded else None  # every row keeps a key
    y, grads = run_layer(layer, x, dout, mask)
    y_ref, grads_ref = torch_sdpa_reference(torch, layer, x, dout, mask)
    np.testing.assert_allclose(y, y_ref, rtol=1e-9, atol=1e-12)
    assert set(grads) == set(grads_ref)
    for key in grads:
        np.testing.assert_allclose(grads[key], grads_ref[key], rtol=1e-9, atol=1e-12, err_msg=key)


@given(n=st.integers(1, 3), t=st.integers(1, 6), n_heads=st.integers(1, 3), head_dim=st.integers(1, 4),
       causal=st.booleans(), padded=st.booleans(), seed=st.integers(0, 2**16))
def test_multihead_attention_equals_torch_sdpa_on_random_shapes(torch, n, t, n_heads, head_dim, causal, padded, seed):
    dim = n_heads * head_dim
    layer = make_mha(dim, n_heads, causal, seed=seed)
    rng = np.random.default_rng(seed)
    x, dout = rng.standard_normal((n, t, dim)), rng.standard_normal((n, t, dim))
    mask = padding_mask(n, t, rng.integers(1, t + 1, n)) if padded else None
    y, grads = run_layer(layer, x, dout, mask)
    y_ref, grads_ref = torch_sdpa_reference(torch, layer, x, dout, mask)
    np.testing.assert_allclose(y, y_ref, rtol=1e-9, atol=1e-12)
    for key in grads_ref:
        np.testing.assert_allclose(grads[key], grads_ref[key], rtol=1e-9, atol=1e-12, err_msg=key)


def torch_multihead_attention(torch, layer, x, dout, key_padding_mask=None):
    """torch.nn.MultiheadAttention(batch_first=True) holding the layer's weights (transposed)."""
    _, t, dim = x.shape
    module = torch.nn.MultiheadAttention(dim, layer.n_heads, batch_first=True, dtype=torch.float64)
    with torch.no_grad():
        module.in_proj_weight.copy_(torch.tensor(layer.params["W_qkv"].T))
        module.in_proj_bias.copy_(torch.tensor(layer.params["b_qkv"]))
        module.out_proj.weight.copy_(torch.tensor(layer.params["W_o"].T))
        module.out_proj.bias.copy_(torch.tensor(layer.params["b_o"]))
    xt = torch.tensor(x, requires_grad=True)
    attn_mask = torch.ones(t, t, dtype=torch.bool).triu(1) if layer.causal else None  # True = blocked
    kpm = None if key_padding_mask is None else torch.tensor(key_padding_mask)
    y, weights = module(xt, xt, xt, key_padding_mask=kpm, attn_mask=attn_mask, need_weights=True,
                        average_attn_weights=False)
    (y * torch.tensor(dout)).sum().backward()
    grads = {"x": xt.grad.numpy(), "W_qkv": module.in_proj_weight.grad.numpy().T,
             "b_qkv": module.in_proj_bias.grad.numpy(), "W_o": module.out_proj.weight.grad.numpy().T,
             "b_o": module.out_proj.bias.grad.numpy()}
    return y.detach().numpy(), weights.detach().numpy(), grads


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("padded", [False, True])
def test_multihead_attention_equals_torch_nn_multiheadattention_in_float64(torch, causal, padded):
    n, t, dim, n_heads = 3, 6, 8, 2
    layer = make_mha(dim, n_heads, causal, seed=11)
    rng = np.random.default_rng(12)
    x, dout = rng.standard_normal((n, t, dim)), rng.standard_normal((n, t, dim))
    mask = padding_mask(n, t, [6, 4, 1]) if padded else None
    y, grads = run_layer(layer, x, dout, mask)
    y_ref, weights_ref, grads_ref = torch_multihead_attention(torch, layer, x, dout, mask)
    np.testing.assert_allclose(y, y_ref, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(layer.attention, weights_ref, rtol=1e-9, atol=1e-12)
    for key in grads_ref:
        np.testing.assert_allclose(grads[key], grads_ref[key], rtol=1e-9, atol=1e-12, err_msg=key)


@pytest.mark.parametrize("causal", [False, True])
def test_multihead_attention_in_float32_stays_float32_and_within_1e5_of_torch(torch, causal):
    n, t, dim, n_heads = 4, 16, 32, 4
    layer64 = make_mha(dim, n_heads, causal, seed=21)
    layer32 = make_mha(dim, n_heads, causal, seed=21, dtype=np.float32)
    rng = np.random.default_rng(22)
    x, dout = rng.standard_normal((n, t, dim)), rng.standard_normal((n, t, dim))
    mask = padding_mask(n, t, [16, 9, 3, 12])
    y, grads = run_layer(layer32, x.astype(np.float32), dout.astype(np.float32), mask)
    assert y.dtype == np.float32 and layer32.attention.dtype == np.float32
    assert all(grad.dtype == np.float32 for grad in grads.values())
    y_ref, grads_ref = torch_sdpa_reference(torch, layer64, x, dout, mask)  # float64, same weights
    assert relative_error(y, y_ref) < 1e-5
    for key in grads_ref:
        assert relative_error(grads[key], grads_ref[key]) < 1e-5, key
    # A float64 input to a float32 layer is computed in float32 (the parameters' precision).
    assert layer32.forward(x).dtype == np.float32


# --- masks ---------------------------------------------------------------------------------------

def test_the_causal_mask_really_blocks_the_future():
    n, t, dim = 2, 6, 8
    rng = np.random.default_rng(31)
    x = rng.standard_normal((n, t, dim))
    for cut in range(t - 1):
        changed = x.copy()
        changed[:, cut + 1:] = rng.standard_normal((n, t - cut - 1, dim)) * 3
        causal = make_mha(dim, 2, causal=True)
        y, y_changed = causal.forward(x), causal.forward(changed)
        np.testing.assert_allclose(y_changed[:, :cut + 1], y[:, :cut + 1], rtol=1e-13, atol=1e-14)
        assert np.abs(y_changed[:, cut + 1:] - y[:, cut + 1:]).max() > 1e-3  # the future itself moved
        # Without the mask, the same change reaches position `cut` (the control).
        full = make_mha(dim, 2, causal=False)
        assert np.abs(full.forward(changed)[:, cut] - full.forward(x)[:, cut]).max() > 1e-3
    # And no gradient flows from a position's output back to later inputs.
    causal = make_mha(dim, 2, causal=True)
    causal.forward(x)
    dout = np.zeros((n, t, dim))
    dout[:, 2] = 1.0
    dx = causal.backward(dout)
    assert np.all(dx[:, 3:] == 0) and np.abs(dx[:, :3]).max() > 1e-3


@pytest.mark.parametrize("causal", [False, True])
def test_attention_weights_are_kept_read_only_with_rows_summing_to_one(causal):
    n, t, dim, n_heads = 2, 5, 6, 3
    layer = make_mha(dim, n_heads, causal)
    layer.forward(np.random.default_rng(41).standard_normal((n, t, dim)))
    weights = layer.attention
    assert weights.shape == (n, n_heads, t, t)
    np.testing.assert_allclose(weights.sum(axis=-1), 1.0, rtol=1e-13)
    assert np.all(weights >= 0)
    if causal:
        assert np.all(weights[..., np.triu_indices(t, 1)[0], np.triu_indices(t, 1)[1]] == 0)
        np.testing.assert_array_equal(weights[..., 0, 0], 1.0)  # the first position sees only itself
    else:
        assert np.all(weights > 0)
    with pytest.raises(ValueError):
        weights[0, 0, 0, 0] = 0.5  # read-only: backward still needs it


def test_padded_keys_get_no_weight_and_a_query_with_no_visible_key_gives_zeros():
    n, t, dim = 2, 5, 6
    layer = make_mha(dim, 2, causal=True)
    mask = np.array([[True, True, False, False, False], [False, False, False, True, True]])  # left, right padding
    x = np.random.default_rng(51).standard_normal((n, t, dim))
    y = layer.forward(x, key_padding_mask=mask)
    weights = layer.attention
    assert np.all(weights[0, :, :, :2] == 0) and np.all(weights[1, :, :, 3:] == 0)
    # Sequence 0, positions 0 and 1: under the causal mask they may only see keys 0..t, all padded.
    assert np.all(weights[0, :, :2] == 0)
    np.testing.assert_allclose(y[0, :2], np.broadcast_to(layer.params["b_o"], (2, dim)), rtol=0, atol=1e-15)
    np.testing.assert_allclose(weights[0, :, 2:].sum(axis=-1), 1.0, rtol=1e-13)
    np.testing.assert_allclose(weights[1].sum(axis=-1), 1.0, rtol=1e-13)
    dx = layer.backward(np.ones((n, t, dim)))
    assert np.all(np.isfinite(dx)) and all(np.all(np.isfinite(g)) for g in layer.grads.values())
    # The padded sequence's unpadded positions equal the same sequence run alone without padding.
    alone = make_mha(dim, 2, causal=True)
    np.testing.assert_allclose(y[0, 2:], alone.forward(x[:1, 2:])[0], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(y[1, :3], alone.forward(x[1:, :3])[0], rtol=1e-12, atol=1e-14)


def test_a_fully_padded_row_in_float32_gives_no_nan_and_no_warning():
    layer = make_mha(4, 2, dtype=np.float32)
    mask = np.array([[True, True, True], [False, True, True]])
    with np.errstate(all="raise"):
        y = layer.forward(np.ones((2, 3, 4), np.float32), key_padding_mask=mask)
        layer.backward(np.ones((2, 3, 4), np.float32))
    assert np.all(np.isfinite(y))
    assert np.all(layer.attention[0] == 0)
    np.testing.assert_allclose(layer.attention[1, :, :, 0], 1.0)


# --- key/value cache ------------------------------------------------------------------------------

@pytest.mark.parametrize("causal", [True, False])
def test_forward_step_with_a_cache_equals_the_full_forward(causal):
    n, t, dim = 2, 7, 8
    layer = make_mha(dim, 4, causal)
    x = np.random.default_rng(61).standard_normal((n, t, dim))
    y_full = layer.forward(x)
    if causal:
        # Token by token, and in uneven chunks: each position's output is that of the full forward.
        cache, outputs = None, []
        for position in range(t):
            y_new, cache = layer.forward_step(x[:, position:position + 1], cache)
            outputs.append(y_new)
        np.testing.assert_allclose(np.concatenate(outputs, axis=1), y_full, rtol=1e-12, atol=1e-14)
        assert cache[0].shape == cache[1].shape == (n, 4, t, 2)
        y_first, cache = layer.forward_step(x[:, :3])
        y_rest, cache = layer.forward_step(x[:, 3:], cache)
        np.testing.assert_allclose(np.concatenate([y_first, y_rest], axis=1), y_full, rtol=1e-12, atol=1e-14)
    # The last chunk sees every position (the cache's and its own), causal or not.
    _, cache = layer.forward_step(x[:, :4])
    y_last, _ = layer.forward_step(x[:, 4:], cache)
    np.testing.assert_allclose(y_last, y_full[:, 4:], rtol=1e-12, atol=1e-14)
    if not causal:
        y_all, _ = layer.forward_step(x)
        np.testing.assert_allclose(y_all, y_full, rtol=1e-12, atol=1e-14)


def test_one_new_position_sees_every_cached_key_with_or_without_the_causal_mask():
    """A single query after its cache adds no causal mask (it would be all zeros): the step of a
    causal layer is then exactly the non-causal layer's, and a one-position forward is too."""
    causal, free = make_mha(8, 4, causal=True, seed=3), make_mha(8, 4, causal=False, seed=3)
    x = np.random.default_rng(63).standard_normal((2, 5, 8))
    _, cache = causal.forward_step(x[:, :4])
    y_causal, (k, v) = causal.forward_step(x[:, 4:], cache)
    y_free, _ = free.forward_step(x[:, 4:], cache)
    np.testing.assert_array_equal(y_causal, y_free)
    np.testing.assert_allclose(y_causal, causal.forward(x)[:, 4:], rtol=1e-12, atol=1e-14)
    assert k.shape == v.shape == (2, 4, 5, 2)
    np.testing.assert_array_equal(causal.forward(x[:, :1]), free.forward(x[:, :1]))
    np.testing.assert_array_equal(causal.attention, 1.0)  # one key: all the weight


def test_forward_step_leaves_the_training_state_alone():
    layer = make_mha(6, 2, causal=True)
    rng = np.random.default_rng(62)
    x, dout = rng.standard_normal((2, 4, 6)), rng.standard_normal((2, 4, 6))
    layer.forward(x)
    attention = layer.attention.copy()
    expected_dx = layer.backward(dout)
    expected = {key: grad.copy() for key, grad in layer.grads.items()}
    layer.forward(x)
    layer.forward_step(rng.standard_normal((2, 3, 6)))
    np.testing.assert_array_equal(layer.attention, attention)
    np.testing.assert_allclose(layer.backward(dout), expected_dx, rtol=1e-13, atol=1e-15)
    for key, value in expected.items():
        np.testing.assert_allclose(layer.grads[key], value, rtol=1e-13, atol=1e-15)


def test_project_qkv_splits_the_projection_into_contiguous_head_blocks():
    n, t, dim, n_heads = 2, 3, 6, 3
    layer = make_mha(dim, n_heads)
    x = np.random.default_rng(63).standard_normal((n, t, dim))
    q, k, v = layer.project_qkv(x)
    qkv = x @ layer.params["W_qkv"] + layer.params["b_qkv"]
    for index, part in enumerate((q, k, v)):
        assert part.shape == (n, n_heads, t, dim // n_heads)
        for head in range(n_heads):
            columns = slice(index * dim + head * 2, index * dim + head * 2 + 2)
            np.testing.assert_allclose(part[:, head], qkv[:, :, columns], rtol=1e-13, atol=1e-15)


def test_forward_step_refuses_a_cache_of_the_wrong_shape():
    layer = make_mha(6, 2, causal=True)
    x = np.zeros((2, 1, 6))
    _, (k, v) = layer.forward_step(np.zeros((2, 3, 6)))
    with pytest.raises(ValueError, match=r"MultiHeadAttention: forward_step cache k must have shape .*\(2, 2, T_past, 3\)"):
        layer.forward_step(x, (k[:, :1], v[:, :1]))
    with pytest.raises(ValueError, match=r"got k \(2, 2, 3, 3\) and v \(2, 2, 2, 3\)"):
        layer.forward_step(x, (k, v[:, :, :2]))


# --- description and bad input -------------------------------------------------------------------

def test_both_attention_layers_are_in_the_registry_and_exported():
    assert L.LAYER_TYPES["MultiHeadAttention"] is L.MultiHeadAttention is MultiHeadAttention
    assert L.LAYER_TYPES["Attention"] is L.Attention is Attention


def test_multihead_attention_spec_round_trip():
    layer = make_mha(12, 4, causal=True)
    spec = layer.spec()
    assert spec == {"type": "MultiHeadAttention", "dim": 12, "n_heads": 4, "causal": True}
    rebuilt = MultiHeadAttention.from_spec(spec, np.float64)
    assert rebuilt.spec() == spec
    assert MultiHeadAttention.param_shapes(spec) == {key: value.shape for key, value in rebuilt.params.items()}
    assert list(rebuilt.params) == ["W_qkv", "b_qkv", "W_o", "b_o"]
    assert MultiHeadAttention.from_spec(spec).params["W_qkv"].dtype == np.float32
    for key, value in layer.params.items():
        rebuilt.params[key][...] = value
    x = np.random.default_rng(71).standard_normal((2, 5, 12))
    np.testing.assert_allclose(rebuilt.forward(x), layer.forward(x), rtol=1e-14, atol=1e-15)


@pytest.mark.parametrize("spec, message", [
    ({"dim": 10, "n_heads": 4}, "dim = 10 must be divisible by n_heads = 4"),
    ({"dim": 0, "n_heads": 1}, "dim must be a positive integer"),
    ({"dim": 8, "n_heads": True}, "n_heads must be a positive integer"),
    ({"dim": 8, "n_heads": 2, "causal": "yes"}, "causal must be true or false"),
    ({"dim": 2**41, "n_heads": 1}, "dim must be a positive integer"),
])
def test_multihead_attention_param_shapes_refuses_a_bad_spec(spec, message):
    with pytest.raises(ValueError, match=message):
        MultiHeadAttention.param_shapes({"type": "MultiHeadAttention", **spec})


def test_multihead_attention_refuses_bad_parameters_naming_the_layer_and_shapes():
    rng = np.random.default_rng(0)
    W, b, Wo, bo = rng.standard_normal((6, 18)), np.zeros(18), rng.standard_normal((6, 6)), np.zeros(6)
    with pytest.raises(ValueError, match=r"MultiHeadAttention: the model width D = 6 must be divisible by n_heads = 4"):
        MultiHeadAttention(W, b, Wo, bo, 4)
    with pytest.raises(ValueError, match=r"MultiHeadAttention: W_qkv must have shape \(D, 3D\).*got \(6, 12\)"):
        MultiHeadAttention(W[:, :12], b, Wo, bo, 2)
    with pytest.raises(ValueError, match=r"MultiHeadAttention: b_qkv must have shape \(18,\) for D = 6, got \(6,\)"):
        MultiHeadAttention(W, bo, Wo, bo, 2)
    with pytest.raises(ValueError, match=r"MultiHeadAttention: W_o must have shape \(6, 6\) for D = 6, got \(6, 18\)"):
        MultiHeadAttention(W, b, W, bo, 2)
    with pytest.raises(TypeError, match=r"MultiHeadAttention: W_o has dtype float32, W_qkv has float64"):
        MultiHeadAttention(W, b, Wo.astype(np.float32), bo, 2)
    for bad in (0, -2, 2.0, True):
        with pytest.raises(ValueError, match=r"MultiHeadAttention: n_heads must be a positive integer"):
            MultiHeadAttention(W, b, Wo, bo, bad)
    with pytest.raises(TypeError, match="causal must be True or False"):
        MultiHeadAttention(W, b, Wo, bo, 2, causal="yes")


def test_multihead_attention_refuses_bad_input_naming_the_layer_and_shapes():
    layer = make_mha(6, 2)
    with pytest.raises(ValueError, match=r"MultiHeadAttention: expected x of shape \(N, T, 6\), got \(4, 6\)"):
        layer.forward(np.zeros((4, 6)))
    with pytest.raises(ValueError, match=r"MultiHeadAttention: expected x of shape \(N, T, 6\), got \(2, 3, 5\)"):
        layer.forward(np.zeros((2, 3, 5)))
    with pytest.raises(ValueError, match=r"MultiHeadAttention: x needs at least one sequence and one position"):
        layer.forward(np.zeros((2, 0, 6)))
    with pytest.raises(RuntimeError, match="MultiHeadAttention: backward\\(\\) called before forward\\(\\)"):
        layer.backward(np.zeros((2, 3, 6)))
    x = np.zeros((2, 3, 6))
    with pytest.raises(TypeError, match=r"MultiHeadAttention: key_padding_mask must be a bool array .* got dtype int64"):
        layer.forward(x, key_padding_mask=np.zeros((2, 3), np.int64))
    with pytest.raises(ValueError, match=r"MultiHeadAttention: key_padding_mask must have shape \(N, S\) = \(2, 3\), "
                                         r"got \(3, 2\)"):
        layer.forward(x, key_padding_mask=np.zeros((3, 2), bool))
    layer.forward(x)
    with pytest.raises(ValueError, match=r"MultiHeadAttention: backward expected dout of shape \(2, 3, 6\).*got \(2, 3\)"):
        layer.backward(np.zeros((2, 3)))


# --- the second book's dot-product Attention ----------------------------------------------------

def check_attention_gradients(layer, h_dec, h_enc, dout, mask=None):
    def loss(_):
        return float(np.sum(layer.forward(h_dec, h_enc, key_padding_mask=mask) * dout))

    layer.forward(h_dec, h_enc, key_padding_mask=mask)
    d_dec, d_enc = layer.backward(dout)
    assert relative_error(d_dec, numerical_gradient(loss, h_dec)) < 1e-7
    assert relative_error(d_enc, numerical_gradient(loss, h_enc)) < 1e-7


@pytest.mark.parametrize("n, t, s, h", [(1, 1, 1, 1), (2, 3, 5, 4), (3, 1, 4, 3), (1, 5, 1, 2), (2, 4, 3, 7)])
def test_dot_product_attention_gradients_match_numerical_ones(n, t, s, h):
    rng = np.random.default_rng(n * 10 + t)
    h_dec, h_enc, dout = rng.standard_normal((n, t, h)), rng.standard_normal((n, s, h)), rng.standard_normal((n, t, h))
    check_attention_gradients(Attention(), h_dec, h_enc, dout)


def test_dot_product_attention_gradients_with_a_padding_mask_match_numerical_ones():
    rng = np.random.default_rng(81)
    h_dec, h_enc, dout = rng.standard_normal((3, 2, 4)), rng.standard_normal((3, 5, 4)), rng.standard_normal((3, 2, 4))
    mask = padding_mask(3, 5, [5, 2, 0])  # the last sequence is all padding: its context is zero
    check_attention_gradients(Attention(), h_dec, h_enc, dout, mask)
    layer = Attention()
    context = layer.forward(h_dec, h_enc, key_padding_mask=mask)
    assert np.all(context[2] == 0) and np.all(layer.attention[2] == 0)
    assert np.all(layer.attention[1, :, 2:] == 0)


@pytest.mark.parametrize("padded", [False, True])
def test_dot_product_attention_equals_a_torch_autograd_reference_in_float64(torch, padded):
    n, t, s, h = 3, 4, 6, 5
    rng = np.random.default_rng(82)
    h_dec, h_enc, dout = rng.standard_normal((n, t, h)), rng.standard_normal((n, s, h)), rng.standard_normal((n, t, h))
    mask = padding_mask(n, s, [6, 3, 1]) if padded else None
    layer = Attention()
    context = layer.forward(h_dec, h_enc, key_padding_mask=mask)
    d_dec, d_enc = layer.backward(dout)
    dec_t, enc_t = torch.tensor(h_dec, requires_grad=True), torch.tensor(h_enc, requires_grad=True)
    scores = dec_t @ enc_t.transpose(1, 2)
    if padded:
        scores = scores.masked_fill(torch.tensor(mask)[:, None, :], float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    context_ref = weights @ enc_t
    (context_ref * torch.tensor(dout)).sum().backward()
    np.testing.assert_allclose(context, context_ref.detach().numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(layer.attention, weights.detach().numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(d_dec, dec_t.grad.numpy(), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(d_enc, enc_t.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_dot_product_attention_keeps_its_weights_and_the_inputs_precision():
    rng = np.random.default_rng(83)
    layer = Attention()
    h_dec, h_enc = rng.standard_normal((2, 3, 4)).astype(np.float32), rng.standard_normal((2, 5, 4)).astype(np.float32)
    context = layer.forward(h_dec, h_enc)
    assert context.shape == (2, 3, 4) and context.dtype == np.float32
    assert layer.attention.shape == (2, 3, 5)
    np.testing.assert_allclose(layer.attention.sum(axis=-1), 1.0, rtol=1e-6)
    d_dec, d_enc = layer.backward(np.ones((2, 3, 4), np.float32))
    assert d_dec.shape == (2, 3, 4) and d_enc.shape == (2, 5, 4)
    assert d_dec.dtype == d_enc.dtype == np.float32
    # Each context vector is a convex combination of the encoder states (the book's definition).
    np.testing.assert_allclose(context, np.einsum("nts,nsh->nth", layer.attention, h_enc), rtol=1e-5, atol=1e-6)


def test_dot_product_attention_spec_and_bad_input():
    layer = Attention()
    assert layer.spec() == {"type": "Attention"}
    assert Attention.param_shapes(layer.spec()) == {}
    assert Attention.from_spec(layer.spec()).spec() == layer.spec()
    assert layer.params == {} and layer.grads == {}
    with pytest.raises(ValueError, match=r"Attention: expected h_dec \(N, T, H\) and h_enc \(N, S, H\), got \(3, 4\)"):
        layer.forward(np.zeros((3, 4)), np.zeros((3, 2, 4)))
    with pytest.raises(ValueError, match=r"Attention: h_dec \(N, T, H\) and h_enc \(N, S, H\) must agree on N and H, "
                                         r"got \(3, 2, 4\) and \(3, 5, 6\)"):
        layer.forward(np.zeros((3, 2, 4)), np.zeros((3, 5, 6)))
    with pytest.raises(ValueError, match=r"must agree on N and H, got \(3, 2, 4\) and \(2, 5, 4\)"):
        layer.forward(np.zeros((3, 2, 4)), np.zeros((2, 5, 4)))
    with pytest.raises(RuntimeError, match="Attention: backward\\(\\) called before forward\\(\\)"):
        layer.backward(np.zeros((3, 2, 4)))
    with pytest.raises(ValueError, match=r"Attention: key_padding_mask must have shape \(N, S\) = \(3, 5\)"):
        layer.forward(np.zeros((3, 2, 4)), np.zeros((3, 5, 4)), key_padding_mask=np.zeros((3, 2), bool))
    layer.forward(np.zeros((3, 2, 4)), np.zeros((3, 5, 4)))
    with pytest.raises(ValueError, match=r"Attention: backward expected dout of shape \(3, 2, 4\).*got \(3, 5, 4\)"):
        layer.backward(np.zeros((3, 5, 4)))
