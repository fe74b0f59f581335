"""Contract v2: layers made of layers, parameter paths, gradients that add up, one owner per
weight, one registry of layer types, and errors that name the nested layer."""

import json

import numpy as np
import pytest
from layer_cases import CASES, case_id

import handgrad as hg
from handgrad import layers as L
from handgrad.gradcheck import gradient_check, numerical_gradient
from handgrad.layers import Affine, Chain, Layer, Relu, Residual, Tanh


def affine(rng, n_in, n_out):
    return Affine(rng.standard_normal((n_in, n_out)) * 0.5, rng.standard_normal(n_out) * 0.1)


def nested_model(seed=0):
    rng = np.random.default_rng(seed)
    return hg.Sequential([affine(rng, 3, 4), Residual([affine(rng, 4, 4), Tanh(), affine(rng, 4, 4)]), Relu(),
                          affine(rng, 4, 2)])


def test_nested_parameters_are_named_by_path_and_flat_models_keep_their_keys():
    model = nested_model()
    assert list(model.params) == ["0.W", "0.b", "1.body.0.W", "1.body.0.b", "1.body.2.W", "1.body.2.b", "3.W", "3.b"]
    assert list(model.grads) == list(model.params)
    assert model.params["1.body.2.W"] is model.layers[1].body.layers[2].W  # the layer's own array
    assert list(hg.mlp(3, [4], 2).params) == ["0.W", "0.b", "2.W", "2.b"]
    assert [path for path, _ in model.named_layers()] == ["0", "1", "1.body", "1.body.0", "1.body.1", "1.body.2",
                                                          "2", "3"]


def test_a_residual_connection_gets_the_gradient_of_both_paths():
    rng = np.random.default_rng(1)
    block = Residual([affine(rng, 5, 5), Tanh()])
    x, dout = rng.standard_normal((3, 5)), rng.standard_normal((3, 5))
    y = block.forward(x)
    np.testing.assert_allclose(y, x + np.tanh(x @ block.body.layers[0].W + block.body.layers[0].b), rtol=1e-14)
    dx = block.backward(dout)
    numerical = numerical_gradient(lambda _: float(np.sum(block.forward(x) * dout)), x)
    np.testing.assert_allclose(dx, numerical, rtol=1e-7, atol=1e-9)


class UsesItsWeightTwice(Layer):
    """``y = (x W) W``: one owner (the child ``a``), the second use adds into its grads."""

    def __init__(self, W):
        super().__init__()
        self.add_child("a", Affine(W, np.zeros(W.shape[1])))

    def forward(self, x):
        self._h = self.call_child("a", self._children["a"].forward, x)
        return self._h @ self._children["a"].W

    def backward(self, dout):
        a = self._children["a"]
        a.grads["W"] += self._h.T @ dout  # the second use: dL/dW from y = h W
        return self.call_child("a", a.backward, dout @ a.W.T)


def test_a_weight_used_twice_receives_the_sum_of_both_gradients():
    rng = np.random.default_rng(2)
    layer = UsesItsWeightTwice(rng.standard_normal((4, 4)))
    model = hg.Sequential([layer, Affine(rng.standard_normal((4, 3)), np.zeros(3))])
    x, t = rng.standard_normal((5, 4)), rng.integers(0, 3, 5)
    assert list(model.params) == ["0.a.W", "0.a.b", "1.W", "1.b"]
    result = gradient_check(model, x, t)
    assert result.passed, result
    W = layer.params["a.W"]
    model.loss(x, t)
    model.backward()
    analytic = model.grads["0.a.W"].copy()
    numeric = numerical_gradient(lambda _: model.loss(x, t), W)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-9)
    # The sum of the two uses' gradients, each written out: y = h W with h = x W.
    model.loss(x, t)
    dy = model.loss_layer.backward() @ model.layers[1].params["W"].T
    first_use, second_use = x.T @ (dy @ W.T), (x @ W).T @ dy
    np.testing.assert_allclose(analytic, first_use + second_use, rtol=1e-12)
    assert np.abs(first_use).max() > 1e-3 and np.abs(second_use).max() > 1e-3


def test_one_loss_and_backward_give_one_steps_gradients_however_often_repeated():
    model = nested_model()
    rng = np.random.default_rng(3)
    x, t = rng.standard_normal((6, 3)), rng.integers(0, 2, 6)
    model.loss(x, t)
    model.backward()
    first = {k: v.copy() for k, v in model.grads.items()}
    model.backward()  # backward again without a new forward: still one step (zeroed first)
    for _ in range(2):
        model.loss(x, t)
        model.backward()
    for key, value in model.grads.items():
        np.testing.assert_allclose(value, first[key], rtol=1e-14, err_msg=key)


def test_gradients_of_a_nested_model_match_numerical_ones():
    rng = np.random.default_rng(4)
    model = nested_model(seed=4)
    result = gradient_check(model, rng.standard_normal((5, 3)), rng.integers(0, 2, 5))
    assert result.passed, result


def test_one_layer_object_at_two_places_is_refused():
    shared = Affine(np.ones((3, 3)), np.zeros(3))
    with pytest.raises(ValueError, match="the same Affine object is at 0 and at 1.body"):
        hg.Sequential([shared, Residual(shared)])


def test_one_array_under_two_names_is_refused():
    W = np.ones((3, 3))
    with pytest.raises(ValueError, match="one array is listed as 0.W and as 1.W; a shared weight must have one owner"):
        hg.Sequential([Affine(W, np.zeros(3)), Affine(W, np.zeros(3))])


def test_errors_name_the_nested_layer_by_path():
    model = nested_model()
    model.layers[1].body.layers[2].params["W"] = np.ones((5, 4))  # a broken inner layer
    with pytest.raises(ValueError, match=r"^layer 1\.body\.2: Affine: expected input of shape \(N, 5\)"):
        model.predict(np.ones((2, 3)))


def test_a_nested_model_saves_and_loads_exactly(tmp_path):
    model = nested_model()
    hg.save(model, tmp_path / "nested.safetensors")
    again = hg.load(tmp_path / "nested.safetensors")
    assert again.spec() == model.spec()
    x = np.random.default_rng(5).standard_normal((4, 3))
    np.testing.assert_array_equal(again.predict(x), model.predict(x))


def test_every_exported_layer_type_is_registered_once_and_has_a_row_in_the_table():
    """A new layer is its file plus one row in tests/layer_cases.py: a layer type without a row
    (and so without a gradient check, spec round trip, PyTorch parity or ONNX case) fails here."""
    exported = {name for name in L.__all__ if isinstance(getattr(L, name), type)
                and issubclass(getattr(L, name), Layer) and name != "Layer"}
    assert exported == set(L.LAYER_TYPES)
    rows = {case.layer_type for case in CASES}
    assert not exported - rows, f"layer types with no row in tests/layer_cases.py: {sorted(exported - rows)}"
    assert rows == exported, f"rows of layer types that are not exported: {sorted(rows - exported)}"
    ids = [case.id for case in CASES]
    assert len(ids) == len(set(ids)), "two rows with the same id"


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_every_case_survives_its_spec(case):
    layer, _, _ = case.build(np.float32)
    cls = L.LAYER_TYPES[case.layer_type]
    assert type(layer) is cls
    spec = layer.spec()
    assert spec["type"] == case.layer_type
    assert json.loads(json.dumps(spec)) == spec  # JSON-able data, no weights
    own = {key: value.shape for key, value in {**layer.params, **layer.buffers}.items()}
    assert cls.param_shapes(spec) == own
    for dtype in (np.float64, np.float32):
        rebuilt = cls.from_spec(spec, dtype)
        assert type(rebuilt) is cls and rebuilt.spec() == spec
        allocated = {**rebuilt.params, **rebuilt.buffers}
        assert cls.param_shapes(spec) == {key: value.shape for key, value in allocated.items()}
        assert all(value.dtype == dtype for value in allocated.values())


def test_summary_lists_nested_layers_by_path():
    text = nested_model().summary_text()
    lines = text.splitlines()
    assert any(line.startswith("1 Residual") and "(N, 4)" in line for line in lines)
    nested = [line.split()[0] for line in lines if line.startswith("  ")]
    assert nested == ["1.body", "1.body.0", "1.body.1", "1.body.2"]
    assert lines[-1] == f"total parameters: {nested_model().num_params:,}"
    ids_first = hg.Sequential([L.Embedding(np.ones((5, 3))), affine(np.random.default_rng(0), 3, 2)])
    assert "(N, 4, 3)" in ids_first.summary_text(input_shape=(4,))  # ids stay integers


def test_a_chain_with_named_children_keeps_its_names_through_its_spec():
    rng = np.random.default_rng(7)
    chain = Chain({"c_fc": affine(rng, 3, 4), "gelu": L.GELU(), "c_proj": affine(rng, 4, 3)})
    assert list(chain.params) == ["c_fc.W", "c_fc.b", "c_proj.W", "c_proj.b"]
    spec = chain.spec()
    assert spec["names"] == ["c_fc", "gelu", "c_proj"]
    assert list(Chain.from_spec(spec).params) == list(chain.params)
    assert Chain.param_shapes(spec) == {k: v.shape for k, v in chain.params.items()}
    with pytest.raises(ValueError, match="names must be 3 distinct strings"):
        Chain.param_shapes({**spec, "names": ["a", "a", "b"]})


def _make_doubler():
    class _Doubler(L.Layer, register=True):
        """A layer of a user's own, registered so that load can rebuild it."""

        def forward(self, x):
            x = self._input(x)
            if x.shape[-1] != 2:
                raise ValueError(f"Doubler: expected 2 features, got {x.shape[-1]}")
            return 2 * x

        def backward(self, dout):
            return 2 * dout

    return _Doubler


def test_a_layer_type_registers_itself_once_and_its_errors_name_its_path(tmp_path):
    """Registration happens in one place (Layer.__init_subclass__), and a child names its own path
    in the errors its forward and backward raise: no call needs wrapping by its parent."""
    import handgrad as hg
    from handgrad.layers.base import LAYER_TYPES

    _Doubler = _make_doubler()
    try:
        _check_registration_and_paths(_Doubler, LAYER_TYPES, hg, tmp_path)
    finally:
        LAYER_TYPES.pop("_Doubler", None)
    assert "_Doubler" not in LAYER_TYPES


def _check_registration_and_paths(_Doubler, LAYER_TYPES, hg, tmp_path):
    assert LAYER_TYPES["_Doubler"] is _Doubler and "_Doubler" not in L.__all__
    _make_doubler()  # defined again where it was (a notebook cell run twice): it replaces itself
    assert LAYER_TYPES["_Doubler"] is not _Doubler
    LAYER_TYPES["_Doubler"] = _Doubler
    assert all(name in LAYER_TYPES for name in L.__all__ if name not in ("LAYER_TYPES", "Layer"))
    model = hg.Sequential([L.Affine(np.ones((3, 2)), np.zeros(2)), L.Residual(L.Chain([L.Relu(), _Doubler()]))])
    hg.save(model, tmp_path / "m.safetensors")  # a registered layer of one's own saves and loads
    assert type(hg.load(tmp_path / "m.safetensors").layers[1].body.layers[1]) is _Doubler

    def another_doubler():
        class _Doubler(L.Layer, register=True):  # another class under a registered name
            pass
        return _Doubler

    with pytest.raises(TypeError, match="layer type '_Doubler' is already registered"):
        another_doubler()
    with pytest.raises(ValueError, match=r"^layer 1\.body\.1: Doubler: expected 2 features, got 3$"):
        model.layers[1].forward(np.ones((4, 3)))  # named "1" by the model, "body" and "1" below
    assert model.layers[1].body is model.layers[1]._children["body"]  # children are attributes
    # A layer on its own names no path; a subclass calling super().forward adds its name once.
    with pytest.raises(ValueError, match=r"^Affine: expected input of shape \(N, 3\)"):
        L.Affine(np.ones((3, 2)), np.zeros(2)).forward(np.ones((4, 5)))

    class Loud(L.Affine, register=False):
        def forward(self, x):
            return super().forward(x)

    chain = L.Chain([L.Relu(), Loud(np.ones((3, 2)), np.zeros(2))])
    with pytest.raises(ValueError, match=r"^layer 1: Affine: expected input of shape \(N, 3\)"):
        chain.forward(np.ones((4, 5)))
