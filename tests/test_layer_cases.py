"""The table of layer cases (tests/layer_cases.py), row by row: every exported layer type has a
row; every row passes the numerical gradient check (float64) and keeps the layer contract of
docs/design.md#layer-contract; its spec survives a round trip; it matches its PyTorch mirror in
float64. The ONNX export of every row is in tests/test_onnx.py; what a layer does of its own is
in tests/layers/, one test file per module of src/handgrad/layers/."""

import json

import numpy as np
import pytest
from helpers import close, torch_input
from layer_cases import CASES, case_id

from handgrad import layers as L
from handgrad.gradcheck import DEFAULT_THRESHOLD, GradientCheckReport, gradient_check, numerical_gradient, relative_error
from handgrad.layers import Layer


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


# --- every row of the table: numerical gradients ------------------------------------------------------


def check_gradients(layer, inputs, t):
    """``gradient_check`` for a layer of one input; for one of several (``forward(h_dec, h_enc)``,
    a tuple from backward), the same check written out with ``numerical_gradient``, per input."""
    if len(inputs) == 1:
        return gradient_check(layer, inputs[0], t)
    dout = np.random.default_rng(0).standard_normal(np.shape(layer.forward(*inputs)))

    def scalar(_):
        return float(np.sum(layer.forward(*inputs) * dout))

    dxs = layer.backward(dout)
    report = GradientCheckReport(errors={}, threshold=DEFAULT_THRESHOLD, analytic={}, numerical={})
    for name, grad in {**{k: v.copy() for k, v in layer.grads.items()},
                       **{f"x{i}": dx for i, dx in enumerate(dxs)}}.items():
        array = layer.params[name] if name in layer.params else inputs[int(name[1:])]
        report.analytic[name], report.numerical[name] = grad, numerical_gradient(scalar, array)
        report.errors[name] = relative_error(grad, report.numerical[name])
    return report


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_every_case_passes_the_gradient_check(case):
    layer, inputs, t = case.build(np.float64)
    report = check_gradients(layer, inputs, t)
    float_inputs = [i for i, x in enumerate(inputs) if np.asarray(x).dtype.kind == "f"]
    expected_inputs = {"x"} if len(inputs) == 1 else {f"x{i}" for i in range(len(inputs))}
    assert set(report.errors) == set(layer.params) | (expected_inputs if float_inputs else set())
    assert report.passed, str(report)


# --- every row of the table: the layer contract -------------------------------------------------------


def _arrays(value, where: str, found: dict) -> None:
    if isinstance(value, np.ndarray):
        found[where] = value.copy()
    elif isinstance(value, (tuple, list)):
        for i, item in enumerate(value):
            _arrays(item, f"{where}[{i}]", found)
    elif isinstance(value, dict):
        for key, item in value.items():
            _arrays(item, f"{where}[{key!r}]", found)


def forward_cache(layer) -> dict:
    """A copy of every array a layer and its children hold, besides params, grads and buffers:
    what forward cached for backward (``_x2d``, ``mask``, ``_cache``, ``y``, ...)."""
    found = {}
    for path, each in [("", layer), *layer.named_layers()]:
        for name, value in vars(each).items():
            if name not in ("_own", "_children"):
                _arrays(value, f"{path}.{name}" if path else name, found)
    return found


def run_forward(layer, inputs, t):
    return layer.forward(*inputs) if t is None else layer.forward(*inputs, t)


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_every_case_keeps_the_layer_contract(case):
    layer, inputs, t = case.build(np.float64)
    # backward never writes into dout, the input, the output or what forward cached; run twice, it
    # gives the same dx (it depends on nothing accumulated).
    inputs_before = [np.copy(x) for x in inputs]
    out = run_forward(layer, inputs, t)
    out_before, cache_before = np.copy(out), forward_cache(layer)
    dout = 2.0 if t is not None else case.rng(1).standard_normal(np.shape(out))
    dout_before = np.copy(dout)
    first, second = layer.backward(dout), layer.backward(dout)
    for dx_first, dx_second in zip(first if isinstance(first, tuple) else [first],
                                   second if isinstance(second, tuple) else [second]):
        np.testing.assert_array_equal(dx_first, dx_second)
    np.testing.assert_array_equal(dout, dout_before)
    np.testing.assert_array_equal(out, out_before)
    for x, x_before in zip(inputs, inputs_before):
        np.testing.assert_array_equal(x, x_before)
    cache_after = forward_cache(layer)
    for name, value in cache_before.items():
        np.testing.assert_array_equal(cache_after[name], value, err_msg=f"{case.id}: backward changed {name}")

    # A bare layer used the book's way (forward, backward, read the gradients, repeat) holds one
    # step's gradients each time, never the sum of the steps; a second backward of one forward adds.
    layer, inputs, t = case.build(np.float64)
    steps = []
    for _ in range(3):
        run_forward(layer, inputs, t)
        layer.backward(dout)
        steps.append({key: grad.copy() for key, grad in layer.grads.items()})
    for step in steps[1:]:
        for key, grad in step.items():
            np.testing.assert_array_equal(grad, steps[0][key], err_msg=key)
    layer.backward(dout)
    for key, grad in layer.grads.items():
        np.testing.assert_allclose(grad, 2 * steps[0][key], rtol=1e-12, atol=1e-14, err_msg=key)

    # Evaluation mode is deterministic.
    layer.eval()
    np.testing.assert_array_equal(run_forward(layer, inputs, t), run_forward(layer, inputs, t))


# --- every row of the table: the spec -----------------------------------------------------------------


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


# --- every row of the table: PyTorch in float64 (1e-10) -----------------------------------------------


# Each test takes the `torch` fixture (tests/conftest.py): it skips without PyTorch, and fails
# instead under HANDGRAD_REQUIRE_TORCH=1 (CI), so that a broken install cannot pass for green.


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
