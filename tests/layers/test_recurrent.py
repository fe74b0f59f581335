"""handgrad.layers.recurrent: RNN, LSTM, GRU: numerical gradient checks on odd sizes, PyTorch
parity (float64 1e-9, float32 1e-5), state (stateful, set_state, reset_state, dh/dc), a
many-to-one LSTM model, specs and the messages for bad input. The checks every layer gets (the
contract, the bare-layer loop, one gradient check, the spec round trip, PyTorch, ONNX) come from
the table of layer cases, tests/layer_cases.py."""

import re

import numpy as np
import pytest

import handgrad as hg
from handgrad.gradcheck import gradient_check, numerical_gradient, relative_error
from handgrad.layers import GRU, LSTM, RNN, Affine, LastStep, Reshape, SoftmaxWithLoss

# Every PyTorch test takes the `torch` fixture (tests/conftest.py): never import it here.

KINDS = ["RNN", "LSTM", "GRU"]
GATES = {"RNN": 1, "LSTM": 4, "GRU": 3}
TOLERANCE = {np.float64: 1e-9, np.float32: 1e-5}


def make(kind, D, H, seed=0, dtype=np.float64, stateful=False, scale=0.6):
    """A layer with random weights (large enough that every gate matters)."""
    rng = np.random.default_rng(seed)
    G = GATES[kind] * H
    Wx = (rng.standard_normal((D, G)) * scale).astype(dtype)
    Wh = (rng.standard_normal((H, G)) * scale).astype(dtype)
    b = (rng.standard_normal(G) * 0.3).astype(dtype)
    if kind == "GRU":
        return GRU(Wx, Wh, b, (rng.standard_normal(G) * 0.3).astype(dtype), stateful=stateful)
    return {"RNN": RNN, "LSTM": LSTM}[kind](Wx, Wh, b, stateful=stateful)


def state(kind, N, H, seed=1, dtype=np.float64):
    rng = np.random.default_rng(seed)
    h0 = (rng.standard_normal((N, H)) * 0.5).astype(dtype)
    c0 = (rng.standard_normal((N, H)) * 0.5).astype(dtype) if kind == "LSTM" else None
    return h0, c0


def set_state(layer, h0, c0):
    if c0 is None:
        layer.set_state(h0)
    else:
        layer.set_state(h0, c0)


# --- numerical gradients -----------------------------------------------------------------------

SIZES = [(2, 4, 3, 5), (1, 1, 3, 5), (1, 3, 1, 2), (3, 2, 4, 1)]  # (N, T, D, H): odd, T = 1, batch of one


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("N,T,D,H", SIZES)
def test_gradients_match_numerical_ones(kind, N, T, D, H):
    layer = make(kind, D, H, seed=N + T)
    x = np.random.default_rng(T).standard_normal((N, T, D))
    report = gradient_check(layer, x)
    assert set(report.errors) == {"x", *layer.params}
    assert report.passed, str(report)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("N,T,D,H", SIZES)
def test_dh_and_dc_are_the_gradient_of_the_initial_state(kind, N, T, D, H):
    layer = make(kind, D, H, seed=3)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((N, T, D))
    dout = rng.standard_normal((N, T, H))
    h0, c0 = state(kind, N, H)

    def loss(_):
        set_state(layer, h0, c0)  # set_state applies to the next forward only (stateful=False)
        return float(np.sum(layer.forward(x) * dout))

    loss(None)
    layer.backward(dout)
    analytic = {"h0": layer.dh.copy(), **({"c0": layer.dc.copy()} if kind == "LSTM" else {}),
                **{key: grad.copy() for key, grad in layer.grads.items()}}
    arrays = {"h0": h0, **({"c0": c0} if kind == "LSTM" else {}), **layer.params}
    for name, array in arrays.items():  # the weights too: h0 adds a term to dWh
        error = relative_error(analytic[name], numerical_gradient(loss, array))
        assert error < 1e-6, (name, error)


def test_a_zero_initial_state_still_gets_its_gradient():
    layer = make("LSTM", 3, 4)
    x = np.random.default_rng(0).standard_normal((2, 3, 3))
    dout = np.random.default_rng(1).standard_normal((2, 3, 4))
    layer.forward(x)
    layer.backward(dout)
    analytic = {"h": layer.dh.copy(), "c": layer.dc.copy()}
    zeros = np.zeros((2, 4))
    for name in ("h", "c"):
        array = zeros.copy()

        def loss(_, array=array, name=name):
            layer.set_state(*((array, zeros) if name == "h" else (zeros, array)))
            return float(np.sum(layer.forward(x) * dout))

        numerical = numerical_gradient(loss, array)
        assert relative_error(analytic[name], numerical) < 1e-6, name


# --- PyTorch parity ----------------------------------------------------------------------------

def torch_twin(torch, layer, kind, dtype):
    """The nn.RNN/LSTM/GRU with the layer's weights: weight_ih_l0 = Wx.T, weight_hh_l0 = Wh.T,
    and biases that add up to b (split unevenly on purpose) or are bx, bh."""
    D, H = layer.input_size, layer.hidden_size
    module = {"RNN": torch.nn.RNN, "LSTM": torch.nn.LSTM, "GRU": torch.nn.GRU}[kind](D, H, batch_first=True)
    module = module.to(torch.float64 if dtype == np.float64 else torch.float32)
    p = layer.params
    if kind == "GRU":
        bias_ih, bias_hh = p["bx"], p["bh"]
    else:
        bias_ih = np.linspace(-1, 1, p["b"].size).astype(dtype)
        bias_hh = p["b"] - bias_ih
    with torch.no_grad():
        module.weight_ih_l0.copy_(torch.from_numpy(np.ascontiguousarray(p["Wx"].T)))
        module.weight_hh_l0.copy_(torch.from_numpy(np.ascontiguousarray(p["Wh"].T)))
        module.bias_ih_l0.copy_(torch.from_numpy(bias_ih))
        module.bias_hh_l0.copy_(torch.from_numpy(bias_hh))
    return module


def close(ours, theirs, dtype):
    tol = TOLERANCE[dtype]
    theirs = theirs.detach().numpy() if hasattr(theirs, "detach") else np.asarray(theirs)
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, rtol=tol, atol=tol)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("with_state", [True, False])
@pytest.mark.parametrize("kind", KINDS)
def test_equal_to_pytorch(torch, kind, with_state, dtype):
    N, T, D, H = 3, 6, 4, 5
    layer = make(kind, D, H, seed=11, dtype=dtype)
    module = torch_twin(torch, layer, kind, dtype)
    rng = np.random.default_rng(12)
    x = rng.standard_normal((N, T, D)).astype(dtype)
    dout = rng.standard_normal((N, T, H)).astype(dtype)
    h0, c0 = state(kind, N, H, dtype=dtype)
    if not with_state:
        h0, c0 = np.zeros_like(h0), (None if c0 is None else np.zeros_like(c0))
    x_t = torch.tensor(x, requires_grad=True)
    h0_t = torch.tensor(h0[None], requires_grad=True)
    if kind == "LSTM":
        c0_t = torch.tensor(c0[None], requires_grad=True)
        out_t, (h_n, c_n) = module(x_t, (h0_t, c0_t))
    else:
        out_t, h_n = module(x_t, h0_t)
    (out_t * torch.from_numpy(dout)).sum().backward()

    if with_state:
        set_state(layer, h0, c0)
    out = layer.forward(x)
    dx = layer.backward(dout)
    assert out.dtype == dx.dtype == layer.dh.dtype == np.dtype(dtype)
    close(out, out_t, dtype)
    close(layer.h, h_n[0], dtype)
    close(dx, x_t.grad, dtype)
    close(layer.dWx, module.weight_ih_l0.grad.T, dtype)
    close(layer.dWh, module.weight_hh_l0.grad.T, dtype)
    close(layer.dh, h0_t.grad[0], dtype)
    if kind == "GRU":
        close(layer.dbx, module.bias_ih_l0.grad, dtype)
        close(layer.dbh, module.bias_hh_l0.grad, dtype)
    else:
        close(layer.db, module.bias_ih_l0.grad, dtype)  # b = bias_ih + bias_hh: both get db
        close(layer.db, module.bias_hh_l0.grad, dtype)
    if kind == "LSTM":
        close(layer.c, c_n[0], dtype)
        close(layer.dc, c0_t.grad[0], dtype)


@pytest.mark.parametrize("kind", KINDS)
def test_saturated_gates_stay_finite_and_equal_to_pytorch(torch, kind):
    # Pre-activations of +-hundreds: the sigmoid must neither overflow nor warn.
    layer = make(kind, 3, 4, seed=5, scale=60.0)
    module = torch_twin(torch, layer, kind, np.float64)
    x = np.random.default_rng(6).standard_normal((2, 5, 3))
    with np.errstate(all="raise"):
        out = layer.forward(x)
    close(out, module(torch.from_numpy(x))[0], np.float64)


# --- state ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_a_stateful_layer_fed_two_halves_equals_one_call_on_the_whole(kind):
    x = np.random.default_rng(0).standard_normal((2, 7, 3))
    whole = make(kind, 3, 4).forward(x)
    layer = make(kind, 3, 4, stateful=True)
    halves = np.concatenate([layer.forward(x[:, :3]), layer.forward(x[:, 3:])], axis=1)
    np.testing.assert_allclose(halves, whole, rtol=1e-12, atol=1e-12)
    one_step_at_a_time = make(kind, 3, 4, stateful=True)
    steps = np.concatenate([one_step_at_a_time.forward(x[:, t:t + 1]) for t in range(7)], axis=1)
    np.testing.assert_allclose(steps, whole, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
def test_stateful_backward_stops_at_the_start_of_the_call(kind):
    # Truncated BPTT: the carried state is a constant for backward, exactly as if it had been
    # given by set_state to a fresh layer.
    x = np.random.default_rng(0).standard_normal((2, 6, 3))
    dout = np.random.default_rng(1).standard_normal((2, 3, 4))
    layer = make(kind, 3, 4, stateful=True)
    layer.forward(x[:, :3])
    carried = (layer.h, layer.c if kind == "LSTM" else None)
    out = layer.forward(x[:, 3:])
    dx = layer.backward(dout)
    fresh = make(kind, 3, 4)
    set_state(fresh, *carried)
    np.testing.assert_allclose(fresh.forward(x[:, 3:]), out, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(fresh.backward(dout), dx, rtol=1e-12, atol=1e-12)
    for key in layer.grads:
        np.testing.assert_allclose(fresh.grads[key], layer.grads[key], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(fresh.dh, layer.dh, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
def test_reset_state_starts_a_stateful_layer_from_zeros(kind):
    x = np.random.default_rng(0).standard_normal((2, 4, 3))
    layer = make(kind, 3, 4, stateful=True)
    first = layer.forward(x)
    assert not np.allclose(layer.forward(x), first)  # carried on from the first call's end
    layer.reset_state()
    assert layer.h is None
    np.testing.assert_array_equal(layer.forward(x), first)
    # a new batch size is refused while a state is carried, and fine after reset_state
    with pytest.raises(ValueError, match=r"LSTM|RNN|GRU") as error:
        layer.forward(x[:1])
    assert "reset_state" in str(error.value) and "(1, 4)" in str(error.value)
    layer.reset_state()
    assert layer.forward(x[:1]).shape == (1, 4, 4)


@pytest.mark.parametrize("kind", KINDS)
def test_set_state_applies_to_the_next_forward_only_when_not_stateful(kind):
    x = np.random.default_rng(0).standard_normal((2, 4, 3))
    h0, c0 = state(kind, 2, 4)
    layer = make(kind, 3, 4)
    from_zeros = layer.forward(x)
    set_state(layer, h0, c0)
    from_state = layer.forward(x)
    assert not np.allclose(from_state, from_zeros)
    np.testing.assert_array_equal(layer.forward(x), from_zeros)  # forgotten: unrelated batches
    # the layer copied the state: changing the caller's array afterwards changes nothing
    set_state(layer, h0, c0)
    h0[...] = 0
    np.testing.assert_array_equal(layer.forward(x), from_state)


@pytest.mark.parametrize("kind", KINDS)
def test_set_state_then_stateful_forwards_carry_on_from_it(kind):
    x = np.random.default_rng(0).standard_normal((2, 6, 3))
    h0, c0 = state(kind, 2, 4)
    whole_layer = make(kind, 3, 4)
    set_state(whole_layer, h0, c0)
    whole = whole_layer.forward(x)
    layer = make(kind, 3, 4, stateful=True)
    layer.forward(x)  # some earlier state, replaced by set_state
    set_state(layer, h0, c0)
    halves = np.concatenate([layer.forward(x[:, :2]), layer.forward(x[:, 2:])], axis=1)
    np.testing.assert_allclose(halves, whole, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(layer.h, whole[:, -1])


def test_lstm_set_state_without_c_starts_the_cell_from_zeros():
    x = np.random.default_rng(0).standard_normal((2, 3, 3))
    h0, _ = state("LSTM", 2, 4)
    a, b = make("LSTM", 3, 4), make("LSTM", 3, 4)
    a.set_state(h0)
    b.set_state(h0, np.zeros((2, 4)))
    np.testing.assert_array_equal(a.forward(x), b.forward(x))


@pytest.mark.parametrize("kind", KINDS)
def test_h_and_c_are_the_last_state_and_copies(kind):
    layer = make(kind, 3, 4)
    assert layer.h is None and layer.dh is None
    out = layer.forward(np.random.default_rng(0).standard_normal((2, 5, 3)))
    np.testing.assert_array_equal(layer.h, out[:, -1])
    out[:, -1] = 0
    assert np.all(layer.h != 0)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("N,T", [(1, 1), (2, 1), (1, 3), (2, 3)])
def test_writing_into_the_output_changes_nothing_backward_reads(kind, N, T):
    """The output is the layer's own copy of its states, also for one sequence of one step, whose
    transpose is contiguous (a view of the states once, and the RNN's backward read it)."""
    layer = make(kind, 3, 4)
    x = np.random.default_rng(0).standard_normal((N, T, 3))
    dout = np.random.default_rng(1).standard_normal((N, T, 4))
    layer.forward(x)
    expected = layer.backward(dout)
    grads = {key: grad.copy() for key, grad in layer.grads.items()}
    layer.forward(x)[...] = 0
    np.testing.assert_array_equal(layer.backward(dout), expected)
    for key, grad in grads.items():
        np.testing.assert_array_equal(layer.grads[key], grad, err_msg=key)


@pytest.mark.parametrize("kind", KINDS)
def test_an_empty_batch_gives_empty_outputs_and_zero_gradients(kind):
    """No sequences, as a layer elsewhere takes no rows (once a NumPy reshape error)."""
    layer = make(kind, 3, 4)
    assert layer.forward(np.zeros((0, 5, 3))).shape == (0, 5, 4)
    assert layer.backward(np.zeros((0, 5, 4))).shape == (0, 5, 3)
    assert all(not grad.any() for grad in layer.grads.values())
    assert layer.h.shape == (0, 4)


@pytest.mark.parametrize("kind", KINDS)
def test_backward_without_input_grad_returns_none_and_the_same_weight_gradients(kind):
    layer = make(kind, 3, 4)
    x = np.random.default_rng(0).standard_normal((2, 5, 3))
    dout = np.random.default_rng(1).standard_normal((2, 5, 4))
    layer.forward(x)
    layer.backward(dout)
    full = {key: grad.copy() for key, grad in layer.grads.items()}
    layer.forward(x)
    assert layer.backward(dout, input_grad=False) is None
    for key, grad in full.items():
        np.testing.assert_array_equal(layer.grads[key], grad)


@pytest.mark.parametrize("kind", KINDS)
def test_computes_in_the_parameters_dtype(kind):
    layer = make(kind, 3, 4, dtype=np.float32)
    out = layer.forward(np.random.default_rng(0).standard_normal((2, 5, 3)))  # float64 input
    dx = layer.backward(np.ones((2, 5, 4)))
    assert out.dtype == dx.dtype == layer.dh.dtype == np.float32
    assert all(grad.dtype == np.float32 for grad in layer.grads.values())


def test_a_many_to_one_lstm_model_has_the_right_gradients_and_survives_save_and_load(tmp_path):
    # Sequential MNIST in miniature: 12 values per sample read as 4 steps of 3.
    rng = np.random.default_rng(0)
    model = hg.Sequential([Reshape((4, 3)), make("LSTM", 3, 5), LastStep(),
                           Affine(rng.standard_normal((5, 2)), np.zeros(2))], loss=SoftmaxWithLoss())
    x = rng.standard_normal((3, 12))
    t = np.array([0, 1, 1])
    report = gradient_check(model, x, t)
    assert report.passed, str(report)
    assert set(report.errors) >= {"1.Wx", "1.Wh", "1.b", "3.W"}
    path = tmp_path / "lstm.safetensors"
    hg.save(model, path)
    loaded = hg.load(path)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


# --- spec ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("stateful", [False, True])
@pytest.mark.parametrize("kind", KINDS)
def test_spec_round_trip(kind, stateful):
    layer = make(kind, 3, 5, stateful=stateful)
    spec = layer.spec()
    assert spec == {"type": kind, "input_size": 3, "hidden_size": 5, "stateful": stateful}
    cls = type(layer)
    rebuilt = cls.from_spec(spec, np.float64)
    assert rebuilt.spec() == spec and rebuilt.stateful is stateful
    assert cls.param_shapes(spec) == {key: value.shape for key, value in rebuilt.params.items()}
    assert {key: value.shape for key, value in layer.params.items()} == cls.param_shapes(spec)
    assert all(value.dtype == np.float64 for value in rebuilt.params.values())


@pytest.mark.parametrize("bad", [{"input_size": 0, "hidden_size": 2}, {"input_size": 3, "hidden_size": 2**41},
                                 {"input_size": 3}, {"input_size": 3.0, "hidden_size": 2}])
def test_param_shapes_refuses_bad_sizes(bad):
    with pytest.raises(ValueError, match="must be a positive integer"):
        LSTM.param_shapes({"type": "LSTM", **bad})


def test_from_spec_refuses_a_stateful_that_is_not_a_bool():
    with pytest.raises(ValueError, match="stateful"):
        GRU.from_spec({"type": "GRU", "input_size": 3, "hidden_size": 2, "stateful": "yes"})


# --- messages for bad input ----------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_integer_ids_are_refused_with_a_pointer_to_embedding(kind):
    layer = make(kind, 3, 4)
    with pytest.raises(TypeError, match=rf"{kind}: expected a float sequence of shape \(N, T, 3\), got dtype int64.*Embedding"):
        layer.forward(np.zeros((2, 5, 3), dtype=np.int64))


@pytest.mark.parametrize("shape", [(2, 5, 4), (2, 5), (5, 3, 1, 1), (3,)])
def test_wrong_input_shapes_name_the_expected_and_received_shape(shape):
    layer = make("LSTM", 3, 4)
    with pytest.raises(ValueError, match=re.escape(f"LSTM: expected input of shape (N, T, 3) (batch-first), got {shape}")):
        layer.forward(np.zeros(shape))


def test_an_empty_sequence_is_refused():
    with pytest.raises(ValueError, match=r"GRU: expected at least one time step, got input of shape \(2, 0, 3\)"):
        make("GRU", 3, 4).forward(np.zeros((2, 0, 3)))


@pytest.mark.parametrize("kind,args,message", [
    ("LSTM", ((3, 16), (4, 12), (16,)), r"LSTM: Wh must have shape \(H, 4H\), got \(4, 12\)"),
    ("LSTM", ((3, 12), (4, 16), (16,)), r"LSTM: Wx must have shape \(D, 4H\) = \(D, 16\) to match Wh \(4, 16\), got \(3, 12\)"),
    ("LSTM", ((3, 16), (4, 16), (12,)), r"LSTM: b must have shape \(4H,\) = \(16,\), got \(12,\)"),
    ("RNN", ((3, 4), (4, 4), (4, 1)), r"RNN: b must have shape \(H,\) = \(4,\), got \(4, 1\)"),
    ("GRU", ((3, 12), (4, 12), (12,), (4,)), r"GRU: bh must have shape \(3H,\) = \(12,\), got \(4,\)"),
])
def test_bad_weight_shapes_are_refused_by_name(kind, args, message):
    cls = {"RNN": RNN, "LSTM": LSTM, "GRU": GRU}[kind]
    with pytest.raises(ValueError, match=message):
        cls(*(np.zeros(shape) for shape in args))


def test_bad_states_are_refused_by_name():
    lstm, gru = make("LSTM", 3, 4), make("GRU", 3, 4)
    with pytest.raises(ValueError, match=r"LSTM: set_state expected h of shape \(N, 4\), got \(2, 5\)"):
        lstm.set_state(np.zeros((2, 5)))
    with pytest.raises(ValueError, match=r"LSTM: set_state expected c of h's shape \(2, 4\), got \(3, 4\)"):
        lstm.set_state(np.zeros((2, 4)), np.zeros((3, 4)))
    with pytest.raises(TypeError, match="GRU: has no cell state"):
        gru.set_state(np.zeros((2, 4)), np.zeros((2, 4)))
    gru.set_state(np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"GRU: the initial state given by set_state has shape \(2, 4\), "
                                         r"but the input has batch size 3: expected \(3, 4\)"):
        gru.forward(np.zeros((3, 5, 3)))


def test_backward_errors_name_the_layer():
    layer = make("RNN", 3, 4)
    with pytest.raises(RuntimeError, match=r"RNN: backward\(\) called before forward\(\)"):
        layer.backward(np.zeros((2, 5, 4)))
    layer.forward(np.zeros((2, 5, 3)))
    with pytest.raises(ValueError, match=r"RNN: backward expected dout of shape \(2, 5, 4\).*got \(2, 4\)"):
        layer.backward(np.zeros((2, 4)))


def test_a_stateful_flag_that_is_not_a_bool_is_refused():
    with pytest.raises(TypeError, match="RNN: stateful must be True or False"):
        RNN(np.zeros((3, 4)), np.zeros((4, 4)), np.zeros(4), stateful="no")
