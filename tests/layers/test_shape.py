"""handgrad.layers.shape: Reshape, FlattenConsecutive, LastStep: values on small examples, integer
ids kept integers, backward, a WaveNet of FlattenConsecutive layers, specs and the messages for bad
input. The checks every layer gets (the contract, the bare-layer loop, one gradient check, the spec
round trip, PyTorch, ONNX) come from the table of layer cases, tests/layer_cases.py."""

import re

import numpy as np
import pytest

import handgrad as hg
from handgrad.gradcheck import gradient_check
from handgrad.layers import Affine, FlattenConsecutive, LastStep, PreviousTokens, Reshape, SoftmaxWithLoss, Tanh


def test_reshape_reads_an_image_as_rows_and_backward_restores_the_shape():
    x = np.arange(2 * 784, dtype=np.float32).reshape(2, 784)
    layer = Reshape((28, 28))
    y = layer.forward(x)
    assert y.shape == (2, 28, 28) and y.dtype == np.float32
    np.testing.assert_array_equal(y[1, 3], x[1, 84:112])  # row 3 of image 1
    dx = layer.backward(y * 2)
    assert dx.shape == (2, 784)
    np.testing.assert_array_equal(dx, 2 * x)
    assert Reshape((-1, 28)).forward(x).shape == (2, 28, 28)
    assert Reshape((4, -1)).forward(np.zeros((3, 2, 2, 2))).shape == (3, 4, 2)


def test_reshape_keeps_integer_ids_integers():
    ids = np.arange(12).reshape(2, 6)
    assert Reshape((3, 2)).forward(ids).dtype == ids.dtype


def test_reshape_refuses_a_mismatch_and_bad_shapes():
    with pytest.raises(ValueError, match=r"Reshape: expected input of shape \(N, \*\) with 756 values per sample, "
                                         r"to reshape each to \(28, 27\); got \(2, 784\) \(784 values per sample\)"):
        Reshape((28, 27)).forward(np.zeros((2, 784)))
    with pytest.raises(ValueError, match="a multiple of 5"):
        Reshape((-1, 5)).forward(np.zeros((2, 12)))
    for bad in [(), (0, 3), (-1, -1), (2.0,), "28", (True,)]:
        with pytest.raises(ValueError, match="Reshape"):
            Reshape(bad)
    with pytest.raises(TypeError, match="Reshape: expected a numeric array"):
        Reshape((2,)).forward(np.array([["a", "b"]]))


def test_flatten_consecutive_puts_n_consecutive_steps_side_by_side():
    x = np.arange(2 * 8 * 3).reshape(2, 8, 3)  # sample b, step t, channel c
    layer = FlattenConsecutive(2)
    y = layer.forward(x)
    assert y.shape == (2, 4, 6) and y.dtype == x.dtype  # integer ids stay integers
    for s in range(4):  # group s: steps 2s and 2s + 1, their channels one after the other
        np.testing.assert_array_equal(y[:, s], np.concatenate([x[:, 2 * s], x[:, 2 * s + 1]], axis=-1))
    dout = np.random.default_rng(0).standard_normal(y.shape)
    dx = layer.backward(dout)
    assert dx.shape == x.shape
    np.testing.assert_array_equal(dx[:, 5], dout[:, 2, 3:])  # step 5 is the second half of group 2
    assert not np.shares_memory(dx, dout)  # a new array: the caller's dout is never aliased
    assert FlattenConsecutive(1).forward(x).shape == (2, 8, 3)


def test_flatten_consecutive_drops_the_time_axis_when_one_group_is_left():
    """Karpathy's squeeze(1): (N, n, C) -> (N, C n), so that the classifier after it sees rows."""
    x = np.random.default_rng(0).standard_normal((3, 4, 5))
    layer = FlattenConsecutive(4)
    y = layer.forward(x)
    assert y.shape == (3, 20)
    np.testing.assert_array_equal(y, x.reshape(3, 20))
    np.testing.assert_array_equal(layer.backward(y), x)
    assert FlattenConsecutive(2).forward(np.ones((1, 2, 5))).shape == (1, 10)


def test_flatten_consecutive_refuses_bad_n_and_input_naming_the_shapes():
    for bad in (0, -2, 2.0, True, "2", None):
        with pytest.raises(ValueError, match="FlattenConsecutive: n must be a positive integer"):
            FlattenConsecutive(bad)
    for shape in [(2, 5, 3), (2, 8), (2, 0, 3), (2, 4, 3, 1)]:
        expected = f"FlattenConsecutive: expected input of shape (N, T, C) with T a multiple of n = 2, got {shape}"
        with pytest.raises(ValueError, match=re.escape(expected)):
            FlattenConsecutive(2).forward(np.zeros(shape))
    with pytest.raises(TypeError, match="FlattenConsecutive: expected a numeric array, got dtype <U1"):
        FlattenConsecutive(2).forward(np.array([[["a"], ["b"]]]))
    layer = FlattenConsecutive(2)
    with pytest.raises(RuntimeError, match=r"FlattenConsecutive: backward\(\) called before forward\(\)"):
        layer.backward(np.zeros((2, 4, 6)))
    layer.forward(np.zeros((2, 8, 3)))
    with pytest.raises(ValueError, match=r"FlattenConsecutive: backward expected dout of shape \(2, 4, 6\).*"
                                         r"got \(2, 8, 3\)"):
        layer.backward(np.zeros((2, 8, 3)))


def test_flatten_consecutive_spec_and_param_shapes_refuse_a_bad_n():
    assert FlattenConsecutive(2).spec() == {"type": "FlattenConsecutive", "n": 2}
    assert FlattenConsecutive.from_spec({"type": "FlattenConsecutive", "n": 4}).n == 4
    for bad in ({"type": "FlattenConsecutive"}, {"type": "FlattenConsecutive", "n": 2**50},
                {"type": "FlattenConsecutive", "n": "x" * 1000}):
        with pytest.raises(ValueError, match="FlattenConsecutive: n must be a positive integer"):
            FlattenConsecutive.param_shapes(bad)


def test_a_wavenet_of_flatten_consecutive_layers_has_the_right_gradients_and_survives_save_and_load(tmp_path):
    """makemore part 5's hierarchy in miniature: 8 characters, fused two by two three times."""
    rng = np.random.default_rng(0)
    C, H, V = 3, 4, 7

    def fuse(n_in):
        return [FlattenConsecutive(2), Affine(rng.standard_normal((2 * n_in, H)) * 0.5, np.zeros(H)), Tanh()]

    model = hg.Sequential([hg.layers.Embedding(rng.standard_normal((V, C))), *fuse(C), *fuse(H), *fuse(H),
                           Affine(rng.standard_normal((H, V)), np.zeros(V))], loss=SoftmaxWithLoss())
    ids, t = rng.integers(0, V, (5, 8)), rng.integers(0, V, 5)
    assert model.predict(ids).shape == (5, V)
    shapes = [line.split(")", 1)[1].rsplit(None, 1)[0].strip()
              for line in model.summary_text(input_shape=(8,)).splitlines() if "FlattenConsecutive(2)" in line]
    assert shapes == ["(N, 4, 6)", "(N, 2, 8)", "(N, 8)"]  # from (N, 8, 3), (N, 4, 4), (N, 2, 4): the last squeezed
    report = gradient_check(model, ids, t)
    assert report.passed, str(report)
    assert set(report.errors) == set(model.params)  # ids have no gradient
    path = tmp_path / "wavenet.safetensors"
    hg.save(model, path)
    loaded = hg.load(path)
    assert [type(layer).__name__ for layer in loaded.layers][1:4] == ["FlattenConsecutive", "Affine", "Tanh"]
    np.testing.assert_array_equal(loaded.predict(ids), model.predict(ids))


def test_last_step_picks_t_minus_one_and_backward_puts_dout_there():
    x = np.random.default_rng(0).standard_normal((2, 5, 3))
    layer = LastStep()
    y = layer.forward(x)
    np.testing.assert_array_equal(y, x[:, 4])
    y[...] = 0
    assert np.all(x[:, 4] != 0)  # y is a copy
    dout = np.random.default_rng(1).standard_normal((2, 3))
    dx = layer.backward(dout)
    assert dx.shape == x.shape
    np.testing.assert_array_equal(dx[:, 4], dout)
    np.testing.assert_array_equal(dx[:, :4], 0)
    report = gradient_check(LastStep(), x)
    assert report.passed, str(report)
    assert LastStep().forward(np.ones((2, 1, 3))).shape == (2, 3)  # T = 1


def test_last_step_refuses_input_without_time_steps():
    with pytest.raises(ValueError, match=r"LastStep: expected input of shape \(N, T, \*\) with T >= 1, got \(2, 0, 3\)"):
        LastStep().forward(np.zeros((2, 0, 3)))
    with pytest.raises(ValueError, match=r"LastStep: expected input of shape \(N, T, \*\) with T >= 1, got \(4,\)"):
        LastStep().forward(np.zeros(4))
    layer = LastStep()
    layer.forward(np.zeros((2, 5, 3)))
    with pytest.raises(ValueError, match=r"LastStep: backward expected dout of shape \(2, 3\)"):
        layer.backward(np.zeros((2, 5, 3)))


@pytest.mark.parametrize("layer,spec", [(Reshape((28, 28)), {"type": "Reshape", "shape": [28, 28]}),
                                        (Reshape((-1, 4)), {"type": "Reshape", "shape": [-1, 4]}),
                                        (LastStep(), {"type": "LastStep"})])
def test_shape_layers_spec_round_trip(layer, spec):
    assert layer.spec() == spec
    cls = type(layer)
    assert cls.from_spec(spec).spec() == spec
    assert cls.param_shapes(spec) == {}


def test_reshape_param_shapes_refuses_a_bad_shape():
    with pytest.raises(ValueError, match="Reshape: shape must"):
        Reshape.param_shapes({"type": "Reshape", "shape": "x" * 1000})


def test_previous_tokens_are_makemores_rolled_ids_newest_first():
    ids = np.array([[0, 5, 6, 7], [0, 2, 0, 0]])
    y = PreviousTokens(3, blank=27).forward(ids)
    assert y.dtype == ids.dtype and y.shape == (2, 4, 3)
    assert y[0].tolist() == [[0, 27, 27], [5, 0, 27], [6, 5, 0], [7, 6, 5]]
    assert y[1, :, 0].tolist() == ids[1].tolist()  # k = 0: the position's own id
    longer = PreviousTokens(6, blank=9).forward(ids)  # more ids back than positions: blanks
    assert longer[0, 3].tolist() == [7, 6, 5, 0, 9, 9]
    small = PreviousTokens(2, blank=300).forward(np.array([[1, 2]], np.uint8))  # the blank must fit
    assert small.tolist() == [[[1, 300], [2, 1]]]


def test_previous_tokens_refuse_what_is_not_ids_in_one_line():
    layer = PreviousTokens(3, blank=4)
    with pytest.raises(TypeError, match="PreviousTokens: token ids must be integers, got dtype float64"):
        layer.forward(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"PreviousTokens: expected token ids of shape \(N, T\), got shape \(3,\)"):
        layer.forward(np.zeros(3, int))
    with pytest.raises(ValueError, match="PreviousTokens: blank must be an integer >= 0, got -1"):
        PreviousTokens(3, blank=-1)
    with pytest.raises(ValueError, match="PreviousTokens: block_size must be a positive integer, got 0"):
        PreviousTokens.param_shapes({"type": "PreviousTokens", "block_size": 0, "blank": 1})
    layer.forward(np.zeros((2, 3), int))
    assert layer.backward(None) is None  # what an Embedding above it sends back
    with pytest.raises(ValueError, match=r"PreviousTokens: backward expected dout of shape \(2, 3, 3\)"):
        layer.backward(np.zeros((2, 3)))
