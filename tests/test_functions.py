"""handgrad.functions: values, stability, target kinds and errors (torch parity lives in
test_torch_parity.py)."""

import warnings

import numpy as np
import pytest

from handgrad import functions as F


@pytest.fixture(autouse=True)
def numpy_warnings_are_errors():
    # Any overflow, underflow-to-inf or invalid operation inside these functions fails the test.
    with np.errstate(over="raise", invalid="raise", divide="raise"), warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def test_softmax_rows_sum_to_one_and_match_definition():
    x = np.array([[1.0, 2.0, 3.0], [-1.0, 0.0, 5.0]])
    expected = np.exp(x) / np.exp(x).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(F.softmax(x), expected, rtol=1e-15)
    np.testing.assert_allclose(F.softmax(x).sum(axis=1), 1.0, rtol=1e-15)


def test_softmax_axis_argument():
    x = np.random.default_rng(0).standard_normal((3, 4))
    np.testing.assert_allclose(F.softmax(x, axis=0), F.softmax(x.T).T, rtol=1e-15)


@pytest.mark.parametrize("x", [[1000.0, 1010.0], [-1000.0], [-1000.0, -1010.0], [-1e300, 1e300]])
def test_softmax_and_log_softmax_extreme_inputs_are_finite(x):
    p = F.softmax(np.array(x))
    assert np.all(np.isfinite(p)) and p.sum() == pytest.approx(1.0)
    log_p = F.log_softmax(np.array(x))
    assert np.all(np.isfinite(log_p))


def test_log_softmax_is_exact_where_softmax_underflows():
    log_p = F.log_softmax(np.array([0.0, 1000.0]))
    assert log_p[0] == pytest.approx(-1000.0)  # softmax would give 0 and log(0) = -inf


def test_integer_input_is_computed_in_float64():
    assert F.softmax(np.array([1, 2])).dtype == np.float64
    assert F.relu(np.array([-1, 2])).dtype == np.float64


def test_float32_stays_float32():
    x = np.array([[1.0, 2.0]], dtype=np.float32)
    for fn in (F.softmax, F.log_softmax, F.sigmoid, F.relu, F.tanh):
        assert fn(x).dtype == np.float32, fn.__name__


def test_sigmoid_extremes_without_warning():
    y = F.sigmoid(np.array([-1000.0, -1.0, 0.0, 1.0, 1000.0]))
    np.testing.assert_allclose(y, [0.0, 1 / (1 + np.e), 0.5, 1 / (1 + np.exp(-1.0)), 1.0], atol=1e-300)


def test_relu_and_tanh_values():
    np.testing.assert_array_equal(F.relu(np.array([-2.0, 0.0, 3.0])), [0.0, 0.0, 3.0])
    np.testing.assert_allclose(F.tanh(np.array([0.5])), np.tanh([0.5]))


def test_one_hot():
    np.testing.assert_array_equal(F.one_hot(np.array([2, 0]), 3), [[0, 0, 1], [1, 0, 0]])
    np.testing.assert_array_equal(F.one_hot(1, 3), [0, 1, 0])


@pytest.mark.parametrize("labels, message", [([3], r"\[0, 3\)"), ([-1], r"\[0, 3\)"), ([0.0], "integers")])
def test_one_hot_refuses_bad_labels(labels, message):
    with pytest.raises((ValueError, TypeError), match=message):
        F.one_hot(np.array(labels), 3)


def test_cross_entropy_error_tutorial_examples():
    t = np.array([0, 0, 0, 0, 1, 0, 0, 0, 0, 0])
    y_right = np.array([0.1, 0.03, 0.05, 0.2, 0.9, 0.0, 0.1, 0.2, 0.12, 0.03])
    y_wrong = np.array([0.1, 0.03, 0.05, 0.2, 0.0, 0.1, 0.2, 0.12, 0.03, 0.9])
    assert F.cross_entropy_error(y_right, t) == pytest.approx(-np.log(0.9 + 1e-7), rel=1e-12)
    assert round(F.cross_entropy_error(y_right, t), 4) == 0.1054
    assert round(F.cross_entropy_error(y_wrong, t), 3) == 16.118


def test_cross_entropy_error_target_kinds_agree():
    y = F.softmax(np.random.default_rng(1).standard_normal((4, 5)))
    labels = np.array([0, 4, 2, 2])
    by_index = F.cross_entropy_error(y, labels)
    assert F.cross_entropy_error(y, F.one_hot(labels, 5)) == pytest.approx(by_index, rel=1e-14)
    assert by_index == pytest.approx(-np.mean(np.log(y[np.arange(4), labels] + 1e-7)), rel=1e-14)
    # A scalar label for one 1-D sample.
    assert F.cross_entropy_error(y[1], 4) == pytest.approx(-np.log(y[1, 4] + 1e-7), rel=1e-14)


def test_cross_entropy_target_kinds_agree_and_match_definition():
    rng = np.random.default_rng(2)
    logits = rng.standard_normal((6, 4))
    labels = rng.integers(0, 4, 6)
    manual = -np.log(np.exp(logits[np.arange(6), labels]) / np.exp(logits).sum(axis=1))
    np.testing.assert_allclose(F.cross_entropy(logits, labels, reduction="none"), manual, rtol=1e-13)
    assert F.cross_entropy(logits, labels) == pytest.approx(manual.mean(), rel=1e-13)
    assert F.cross_entropy(logits, labels, reduction="sum") == pytest.approx(manual.sum(), rel=1e-13)
    assert F.cross_entropy(logits, F.one_hot(labels, 4)) == pytest.approx(manual.mean(), rel=1e-13)
    # Label smoothing is the same whether the label arrives as an index or a one-hot row.
    assert F.cross_entropy(logits, labels, label_smoothing=0.1) == pytest.approx(
        F.cross_entropy(logits, F.one_hot(labels, 4), label_smoothing=0.1), rel=1e-13)


def test_cross_entropy_one_sample_none_reduction_is_scalar():
    losses = F.cross_entropy(np.array([1.0, 2.0, 3.0]), 2, reduction="none")
    assert np.shape(losses) == ()
    assert float(losses) == pytest.approx(-F.log_softmax(np.array([1.0, 2.0, 3.0]))[2])


@pytest.mark.parametrize(
    "logits, t, kwargs, error, message",
    [
        (np.zeros((2, 3)), np.array([0, 3]), {}, ValueError, r"labels must lie in \[0, 3\)"),
        (np.zeros((2, 3)), np.array([0, -1]), {}, ValueError, r"\[0, 3\)"),
        (np.zeros((2, 3)), np.array([0, 1, 2]), {}, ValueError, r"expected 2 label\(s\) of shape \(2,\), got labels of shape \(3,\)"),
        (np.zeros((2, 3)), np.array([0.0, 1.0]), {}, TypeError, "must be integers, got dtype float64"),
        (np.zeros((2, 3)), np.zeros((2, 4)), {}, ValueError, r"target rows of shape \(2, 4\) do not match scores of shape \(2, 3\)"),
        (np.zeros((2, 3, 4, 5)), np.array([0, 1]), {}, ValueError, r"expected scores of shape \(N, C\), \(N, T, C\) or \(C,\)"),
        (np.zeros((2, 3)), np.array([0, 1]), {"reduction": "avg"}, ValueError, "reduction must be"),
        (np.zeros((2, 3)), np.array([0, 1]), {"label_smoothing": 1.5}, ValueError, "label_smoothing"),
    ],
)
def test_cross_entropy_refuses_bad_input_with_clear_message(logits, t, kwargs, error, message):
    with pytest.raises(error, match=message):
        F.cross_entropy(logits, t, **kwargs)


@pytest.mark.parametrize("fn", [F.erf, F.normal_cdf], ids=["erf", "normal_cdf"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_large_arrays_go_by_chunks_with_each_values_result_unchanged(fn, dtype):
    """Above one chunk (F._CHUNK values) the approximations run chunk by chunk, for the cache:
    every value's result is the one it has on its own (within one machine and run: bit for bit),
    the tails, infinities and NaN included, in x's shape."""
    rng = np.random.default_rng(8)
    x = (rng.standard_normal(3 * (F._CHUNK // 3 * 2 + 123)) * 7).astype(dtype)  # 2 chunks and some
    x[[5, F._CHUNK, F._CHUNK + 1, -1]] = [np.nan, np.inf, -np.inf, -40.0]
    whole = fn(x.reshape(-1, 3))
    assert whole.shape == (len(x) // 3, 3) and whole.dtype == dtype
    pieces = np.concatenate([fn(x[i:i + 1000]) for i in range(0, len(x), 1000)])
    np.testing.assert_array_equal(whole.reshape(-1), pieces)
    assert np.isnan(whole.reshape(-1)[5]) and abs(whole.reshape(-1)[F._CHUNK]) == 1.0


# --- row_max, row_sums, column_sums: NumPy's reductions done faster, same results --------------


@pytest.mark.parametrize("shape", [(1,), (7,), (3, 1), (5, 2), (4, 13), (2, 3, 16), (2, 3, 4, 33), (2, 2, 64, 64),
                                   (3, 65), (0, 5), (2, 1000)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_row_max_equals_numpys_max_over_the_last_axis(shape, dtype):
    """Halving down to 16 columns, odd widths included (the middle column is carried to the next
    round), then the transposed copy's maximum; above 64 columns NumPy's own; no rows at all."""
    x = np.random.default_rng(sum(shape)).standard_normal(shape).astype(dtype)
    got = F.row_max(x)
    assert got.shape == shape[:-1] and got.dtype == dtype
    np.testing.assert_array_equal(got, x.max(axis=-1))


def test_row_max_propagates_nan_and_keeps_minus_infinity_rows():
    x = np.array([[1.0, np.nan, 3.0], [-np.inf, -np.inf, -np.inf], [-np.inf, 2.0, -5.0]])
    got = F.row_max(x)
    assert np.isnan(got[0]) and got[1] == -np.inf and got[2] == 2.0


@pytest.mark.parametrize("shape", [(1, 1), (7, 3), (512, 64), (3, 1000)])
@pytest.mark.parametrize("dtype, rtol", [(np.float32, 1e-5), (np.float64, 1e-13)])
def test_column_and_row_sums_equal_numpys_sums_up_to_summation_order(shape, dtype, rtol):
    x = np.random.default_rng(shape[0]).uniform(0.5, 1.5, shape).astype(dtype)  # no cancellation
    columns, rows = F.column_sums(x), F.row_sums(x)
    assert columns.shape == (shape[1],) and rows.shape == (shape[0],) and columns.dtype == rows.dtype == dtype
    exact = x.astype(np.float64)
    np.testing.assert_allclose(columns, exact.sum(axis=0), rtol=rtol)
    np.testing.assert_allclose(rows, exact.sum(axis=1), rtol=rtol)
    stacked = x.reshape(1, *shape)
    assert F.row_sums(stacked).shape == (1, shape[0])
    np.testing.assert_allclose(F.row_sums(stacked)[0], rows, rtol=rtol)


def test_row_sums_of_a_strided_view_and_nonfinite_values():
    x = np.arange(24, dtype=np.float64).reshape(2, 3, 4).transpose(0, 2, 1)  # not contiguous
    np.testing.assert_array_equal(F.row_sums(x), x.sum(axis=-1))
    y = np.array([[1.0, np.inf], [np.nan, 1.0]])
    assert F.row_sums(y)[0] == np.inf and np.isnan(F.row_sums(y)[1]) and np.isnan(F.column_sums(y)[0])


@pytest.mark.parametrize("fn, bad, error, message", [
    (F.column_sums, np.ones(3), ValueError, r"column_sums: expected a 2-D array \(M, D\), got shape \(3,\)"),
    (F.column_sums, np.ones((2, 3), np.int64), TypeError, "column_sums: expected a float array.*dtype int64"),
    (F.row_sums, [1.0, 2.0], TypeError, "row_sums: expected a float array.*got list"),
    (F.row_max, np.ones((2, 0)), ValueError, r"row_max: rows of no values have no maximum, got shape \(2, 0\)"),
    (F.row_max, np.float64(3.0), TypeError, "row_max: expected a float array with at least 1 axes"),
])
def test_the_reductions_refuse_what_they_cannot_sum_in_one_line(fn, bad, error, message):
    with pytest.raises(error, match=message):
        fn(bad)
