"""The ConvNets' speed paths give the same numbers as the plain ones.

* The ready ConvNets apply Relu after max pooling instead of before it: the outputs and every
  gradient must equal the book's order, ties and zeros included.
* Max pooling whose windows tile the map (2x2, stride 2, no padding) has its own fast path; it
  must equal the general path (and PyTorch, in float64), ties going to the first maximum.
* Stride-1 convolutions with FW C >= 16 split the kernel by rows and run one GEMM for the whole
  batch; every geometry goes through both that path and one GEMM per image, against PyTorch.
* The optimizers update in place with fewer temporaries; they must still equal torch.optim
  (the parity tests in test_optim.py) and the textbook formulas written out here.
"""

import numpy as np
import pytest

import handgrad as hg
from handgrad.layers import Convolution, Pooling, Relu
from handgrad.layers.conv import add_shifted_rows, shifted_rows

#: Convolution.ROW_SHIFT_MIN_INNER for each path: a huge value sends every convolution to one
#: GEMM per image, 0 sends every stride-1 one to the row shifts.
CONV_PATHS = pytest.mark.parametrize("row_shift_min_inner", [10**9, 0], ids=["gemm-per-image", "row-shifts"])


def convolution(W, b, row_shift_min_inner, **geometry):
    layer = Convolution(W, b, **geometry)
    layer.ROW_SHIFT_MIN_INNER = row_shift_min_inner
    return layer


def tied_images(rng, shape):
    """Small integers, negative, zero and positive: many exact ties inside pooling windows."""
    return rng.integers(-2, 3, shape).astype(np.float64)


def positive_ties(y):
    """How many 2x2 windows (stride 2) of y hold their positive maximum more than once."""
    n, c, h, w = y.shape
    tiles = y[:, :, :h // 2 * 2, :w // 2 * 2].reshape(n, c, h // 2, 2, w // 2, 2)
    peak = tiles.max(axis=(3, 5), keepdims=True)
    return int(np.sum(((tiles == peak).sum(axis=(3, 5)) > 1) & (peak[:, :, :, 0, :, 0] > 0)))


def run_forward_backward(layers, x, dout_seed=5):
    model = hg.Sequential(layers)
    out = model.predict(x)
    dout = np.random.default_rng(dout_seed).standard_normal(out.shape)
    dout_x = dout
    for index in range(len(layers) - 1, -1, -1):
        dout_x = layers[index].backward(dout_x)
    return out, dout_x


@pytest.mark.parametrize("hw", [(8, 8), (7, 9)])
def test_relu_after_max_pooling_equals_relu_before_it(hw):
    rng = np.random.default_rng(0)
    x = tied_images(rng, (3, 2, *hw))
    W, b = rng.integers(-1, 2, (4, 2, 3, 3)).astype(np.float64), np.array([0.0, -4.0, -8.0, 1.0])
    book = [Convolution(W.copy(), b.copy(), pad=1), Relu(), Pooling(2, 2, stride=2)]
    ours = [Convolution(W.copy(), b.copy(), pad=1), Pooling(2, 2, stride=2), Relu()]
    out_book, dx_book = run_forward_backward(book, x)
    out_ours, dx_ours = run_forward_backward(ours, x)
    assert (out_book == 0).mean() > 0.2  # the case that matters: many windows whose maximum is <= 0
    assert positive_ties(Convolution(W, b, pad=1).forward(x)) > 0  # and windows whose maximum is tied
    np.testing.assert_array_equal(out_ours, out_book)
    np.testing.assert_array_equal(dx_ours, dx_book)
    np.testing.assert_array_equal(ours[0].dW, book[0].dW)
    np.testing.assert_array_equal(ours[0].db, book[0].db)


@pytest.mark.parametrize("build", [
    lambda: hg.model.SimpleConvNet(input_dim=(1, 12, 12), filter_num=4, filter_size=3, hidden_size=8, seed=0,
                                   dtype=np.float64),
    lambda: hg.model.DeepConvNet(input_dim=(1, 12, 12), seed=0, dropout=0.0, dtype=np.float64),
])
def test_ready_convnets_equal_the_books_layer_order(build):
    model = build()
    kinds = [layer.name for layer in model.layers]
    assert "Pooling" in kinds and all(kinds[i + 1] == "Relu" for i, kind in enumerate(kinds) if kind == "Pooling")
    # The book's order: every Relu that follows a pool moved back in front of it.
    book_layers = list(model.layers)
    for i, kind in enumerate(kinds):
        if kind == "Pooling":
            book_layers[i], book_layers[i + 1] = book_layers[i + 1], book_layers[i]
    book = hg.Sequential(book_layers)
    rng = np.random.default_rng(1)
    x, t = rng.standard_normal((4, 1, 12, 12)), rng.integers(0, 10, 4)
    loss = model.loss(x, t)
    model.backward()
    ours = {name: grad.copy() for name, grad in model.grads.items()}
    assert book.loss(x, t) == loss
    book.backward()
    assert set(book.grads) == set(ours)
    for name, grad in book.grads.items():
        np.testing.assert_array_equal(ours[name], grad, err_msg=name)


class GeneralPooling(Pooling):
    """Max pooling forced onto the general path (any window, stride and padding)."""

    tiles_2x2 = False


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("hw", [(6, 6), (7, 9), (2, 3), (9, 8)])
def test_tiled_2x2_max_pooling_equals_the_general_path(hw, dtype):
    rng = np.random.default_rng(hw[0] * 10 + hw[1])
    x = tied_images(rng, (3, 4, *hw)).astype(dtype)
    x[0, 0] = -1.0  # whole maps of ties, negative
    x[1, 1] = 0.0
    fast, general = Pooling(2, 2, stride=2), GeneralPooling(2, 2, stride=2)
    assert fast.tiles_2x2 and not general.tiles_2x2
    out = fast.forward(x)
    np.testing.assert_array_equal(out, general.forward(x))
    assert out.dtype == dtype
    dout = rng.standard_normal(out.shape).astype(dtype)
    dx = fast.backward(dout)
    np.testing.assert_array_equal(dx, general.backward(dout))
    assert dx.dtype == dtype and dx.shape == x.shape
    # Every window's gradient reaches exactly one pixel of it: the sums agree, nothing is doubled.
    np.testing.assert_allclose(dx.sum(axis=(2, 3)), dout.sum(axis=(2, 3)), rtol=1e-5)
    assert np.count_nonzero(dx) == np.count_nonzero(dout)


@pytest.mark.parametrize("hw", [(6, 6), (7, 9)])
def test_tiled_2x2_max_pooling_ties_go_where_torch_sends_them(hw, torch):
    rng = np.random.default_rng(3)
    x = tied_images(rng, (2, 3, *hw))
    layer = Pooling(2, 2, stride=2)
    out = layer.forward(x)
    dout = rng.standard_normal(out.shape)
    dx = layer.backward(dout)
    x_t = torch.tensor(x, requires_grad=True)
    out_t = torch.nn.functional.max_pool2d(x_t, 2, 2)
    out_t.backward(torch.tensor(dout))
    np.testing.assert_array_equal(out, out_t.detach().numpy())
    np.testing.assert_allclose(dx, x_t.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_tiled_2x2_max_pooling_backward_leaves_dout_untouched_and_can_repeat():
    rng = np.random.default_rng(4)
    layer = Pooling(2, 2, stride=2)
    out = layer.forward(rng.standard_normal((2, 2, 4, 4)))
    dout = rng.standard_normal(out.shape)
    kept = dout.copy()
    first = layer.backward(dout)
    np.testing.assert_array_equal(dout, kept)
    np.testing.assert_array_equal(layer.backward(dout), first)


@pytest.mark.parametrize("optimizer_type, kwargs", [(hg.optim.Adam, dict(lr=0.01, weight_decay=0.1)),
                                                    (hg.optim.AdamW, dict(lr=0.01, weight_decay=0.5))])
def test_in_place_adam_equals_its_formula_written_out(optimizer_type, kwargs):
    rng = np.random.default_rng(9)
    params = {"W": rng.standard_normal((4, 3)), "b": rng.standard_normal(3)}
    expected = {name: value.copy() for name, value in params.items()}
    arrays = {name: value for name, value in params.items()}
    optimizer = optimizer_type(**kwargs)
    beta1, beta2, eps, lr, decay = 0.9, 0.999, 1e-8, kwargs["lr"], kwargs["weight_decay"]
    m = {name: np.zeros_like(value) for name, value in params.items()}
    v = {name: np.zeros_like(value) for name, value in params.items()}
    for t in range(1, 6):
        grads = {name: rng.standard_normal(value.shape) for name, value in params.items()}
        optimizer.update(params, grads)
        for name, p in expected.items():
            g = grads[name]
            if optimizer_type is hg.optim.AdamW:
                p *= 1 - lr * decay
            else:
                g = g + decay * p
            m[name] = beta1 * m[name] + (1 - beta1) * g
            v[name] = beta2 * v[name] + (1 - beta2) * g * g
            p -= lr / (1 - beta1**t) * m[name] / (np.sqrt(v[name]) / np.sqrt(1 - beta2**t) + eps)
    for name, value in params.items():
        assert value is arrays[name]  # updated in place
        np.testing.assert_allclose(value, expected[name], rtol=1e-12, atol=1e-14)
    # The scratch buffers hold nothing between steps: the saved state is m, v and the step count.
    assert set(optimizer.state_dict()["state"]["W"]) == {"exp_avg", "exp_avg_sq"}
    assert "scratch" not in repr(optimizer)


@pytest.mark.parametrize("kernel, pad", [((3, 3), 0), ((3, 3), 1), ((3, 3), 2), ((5, 5), 2), ((3, 5), 2),
                                         ((2, 3), 1), ((1, 1), 0), ((5, 1), 0)])
@CONV_PATHS
def test_stride_1_input_gradient_as_a_convolution_equals_col2im(kernel, pad, row_shift_min_inner, torch):
    from handgrad.layers.conv import col2im

    rng = np.random.default_rng(sum(kernel) + pad)
    (kh, kw), n, c, fn = kernel, 2, 3, 4
    W, b = rng.standard_normal((fn, c, kh, kw)), rng.standard_normal(fn)
    x = rng.standard_normal((n, c, 7, 6))
    layer = convolution(W, b, row_shift_min_inner, pad=pad)
    out = layer.forward(x)
    dout = rng.standard_normal(out.shape)
    dx = layer.backward(dout)
    scattered = col2im(np.matmul(W.reshape(fn, -1).T, dout.reshape(n, fn, -1)), x.shape, kh, kw, 1, pad)
    np.testing.assert_allclose(dx, scattered, rtol=1e-12, atol=1e-12)
    x_t = torch.tensor(x, requires_grad=True)
    torch.nn.functional.conv2d(x_t, torch.tensor(W), torch.tensor(b), padding=pad).backward(torch.tensor(dout))
    np.testing.assert_allclose(dx, x_t.grad.numpy(), rtol=1e-9, atol=1e-9)


@CONV_PATHS
def test_convolution_work_arrays_follow_the_batch_size_and_hold_no_stale_values(row_shift_min_inner):
    rng = np.random.default_rng(12)
    W, b = rng.standard_normal((3, 2, 3, 3)), rng.standard_normal(3)
    reused = convolution(W.copy(), b.copy(), row_shift_min_inner, pad=1)
    for n in (4, 2, 4):  # a smaller last batch, then the full size again
        x = rng.standard_normal((n, 2, 6, 5))
        fresh = convolution(W.copy(), b.copy(), row_shift_min_inner, pad=1)
        out = reused.forward(x)
        np.testing.assert_array_equal(out, fresh.forward(x))
        dout = rng.standard_normal(out.shape)
        np.testing.assert_array_equal(reused.backward(dout), fresh.backward(dout))
        np.testing.assert_array_equal(reused.dW, fresh.dW)
    first_out = reused.forward(x)
    reused.forward(2 * x)  # the work arrays now hold the second input's columns
    assert not np.shares_memory(first_out, reused.forward(x))  # outputs are never work arrays


def test_a_same_width_kernel_wider_than_the_map_trains_and_equals_im2col():
    """A 1 x 33 kernel with pad 16 on maps 1 pixel wide (more channels than ROW_SHIFT_MIN_INNER
    needs): the row shifts' flat backward once failed here with a NumPy broadcast error."""
    rng = np.random.default_rng(41)
    W, b = rng.standard_normal((2, 1, 1, 33)), rng.standard_normal(2)
    x = rng.standard_normal((3, 1, 3, 1))
    shifted, gemm = convolution(W.copy(), b.copy(), 0, pad=16), convolution(W.copy(), b.copy(), 10**9, pad=16)
    y = shifted.forward(x)  # (3, 2, 35, 1): the pad applies to the rows too
    np.testing.assert_allclose(y, gemm.forward(x), rtol=1e-12, atol=1e-12)
    dout = rng.standard_normal(y.shape)
    np.testing.assert_allclose(shifted.backward(dout), gemm.backward(dout), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(shifted.grads["W"], gemm.grads["W"], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("pad, width", [(1, 6), (2, 5), (0, 7)])
def test_row_shifts_in_parts_of_the_batch_equal_one_pass(pad, width):
    """The row-shift path runs a large batch in parts (Convolution.PART_BYTES): outputs, dW, db and
    dx equal one pass over the batch (float64, to summation order: dW is the parts' sum), for
    parts of one sample, uneven parts, and a work array size that changes with the batch."""
    rng = np.random.default_rng(31)
    W, b = rng.standard_normal((4, 5, 3, 3)), rng.standard_normal(4)
    whole = convolution(W.copy(), b.copy(), 0, pad=pad)
    whole.PART_BYTES = 10 ** 12
    for part_bytes in (1, 3 * 4 * 6 * (width + 2 * pad - 2) * 8 * 2):  # one sample a part; about two
        parted = convolution(W.copy(), b.copy(), 0, pad=pad)
        parted.PART_BYTES = part_bytes
        for n in (7, 3):
            x = rng.standard_normal((n, 5, 6, width))
            assert len(parted._batch_parts(n, 3 * 4 * 6 * (width + 2 * pad - 2) * 8)) > 1
            np.testing.assert_allclose(parted.forward(x), whole.forward(x), rtol=1e-12, atol=1e-12)
            dout = rng.standard_normal(whole._x_shape[:1] + (4, 6 + 2 * pad - 2, width + 2 * pad - 2))
            np.testing.assert_allclose(parted.backward(dout), whole.backward(dout), rtol=1e-12, atol=1e-12)
            for name in ("W", "b"):
                np.testing.assert_allclose(parted.grads[name], whole.grads[name], rtol=1e-12, atol=1e-12)
            # A second backward adds into the gradients again; without dx it returns None.
            assert parted.backward(dout, input_grad=False) is None and whole.backward(dout, input_grad=False) is None
            np.testing.assert_allclose(parted.grads["W"], whole.grads["W"], rtol=1e-12, atol=1e-12)
            # The layer did split: its kept arrays are per part size, only this batch's sizes.
            sizes = {stop - start for start, stop in parted._batch_parts(n, 3 * 4 * 6 * (width + 2 * pad - 2) * 8)}
            assert {key for key in parted._work_arrays if key.startswith("dZ ")} == {f"dZ {m}" for m in sizes}
        # A batch of one, its first backward without dx; then evaluation mode keeps nothing new.
        x1 = rng.standard_normal((1, 5, 6, width))
        np.testing.assert_allclose(parted.forward(x1), whole.forward(x1), rtol=1e-12, atol=1e-12)
        dout1 = rng.standard_normal(whole._x_shape[:1] + (4, 6 + 2 * pad - 2, width + 2 * pad - 2))
        assert parted.backward(dout1, input_grad=False) is None and whole.backward(dout1, input_grad=False) is None
        np.testing.assert_allclose(parted.grads["W"], whole.grads["W"], rtol=1e-12, atol=1e-12)
        kept = set(parted._work_arrays)
        parted.eval(), whole.eval()
        x9 = rng.standard_normal((9, 5, 6, width))
        for part_bytes_in_evaluation in (part_bytes, 10 ** 12):  # the second: a part size never kept
            parted.PART_BYTES = part_bytes_in_evaluation
            np.testing.assert_allclose(parted.forward(x9), whole.forward(x9), rtol=1e-12, atol=1e-12)
            assert set(parted._work_arrays) == kept
        parted.train(), whole.train()


def test_im2col_into_a_slice_of_a_larger_array_or_a_fortran_ordered_one():
    from handgrad.layers.conv import im2col

    x = np.random.default_rng(13).standard_normal((2, 3, 5, 6))
    expected = im2col(x, 3, 2, 1, 1)
    larger = np.full((2, expected.shape[1] + 1, expected.shape[2]), 7.0)
    im2col(x, 3, 2, 1, 1, out=larger[:, :-1])
    np.testing.assert_array_equal(larger[:, :-1], expected)
    np.testing.assert_array_equal(larger[:, -1], 7.0)  # the row after the slice is left alone
    fortran = np.empty(expected.shape, order="F")
    assert im2col(x, 3, 2, 1, 1, out=fortran) is fortran
    np.testing.assert_array_equal(fortran, expected)


GEOMETRIES = [(kernel, stride, pad) for kernel in [(3, 3), (5, 5), (2, 3), (1, 1), (5, 1)]
              for stride in (1, 2, 3) for pad in (0, 1, 2, 5)]


@CONV_PATHS
@pytest.mark.parametrize("channels, filters", [(3, 4), (1, 2)])
@pytest.mark.parametrize("kernel, stride, pad", GEOMETRIES)
def test_convolution_matches_torch_in_float64_for_every_geometry(kernel, stride, pad, channels, filters,
                                                                 row_shift_min_inner, torch):
    """Every kernel, stride and padding through every path: one GEMM per image with both
    input-gradient paths (stride 1 as a convolution of the padded dout, pad < kernel; col2im's
    scatter for strides > 1 and pads >= kernel), and the row shifts (stride 1, any pad, so also
    pads wider than the kernel, where whole output rows see only padding); single-channel inputs
    (the ConvNets' first layer) included."""
    rng = np.random.default_rng(sum(kernel) + 10 * stride + 100 * pad + channels)
    (kh, kw), n = kernel, 3
    W, b = rng.standard_normal((filters, channels, kh, kw)), rng.standard_normal(filters)
    x = rng.standard_normal((n, channels, 9, 8))
    layer = convolution(W, b, row_shift_min_inner, stride=stride, pad=pad)
    assert layer._uses_row_shifts() == (stride == 1 and row_shift_min_inner == 0)
    out = layer.forward(x)
    dout = rng.standard_normal(out.shape)
    dx = layer.backward(dout)
    x_t, W_t, b_t = (torch.tensor(a, requires_grad=True) for a in (x, W, b))
    out_t = torch.nn.functional.conv2d(x_t, W_t, b_t, stride=stride, padding=pad)
    out_t.backward(torch.tensor(dout))
    for ours, theirs in ((out, out_t.detach()), (dx, x_t.grad), (layer.dW, W_t.grad), (layer.db, b_t.grad)):
        assert ours.shape == tuple(theirs.shape)
        np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-10, atol=1e-10)



def test_kept_work_buffers_that_became_read_only_are_replaced_not_written():
    """scikit-learn's pickle check reloads an estimator from a read-only memory map: the
    Convolution's kept column matrix and Adam's scratch buffers came back read-only, and the
    next forward failed with 'assignment destination is read-only'."""
    rng = np.random.default_rng(0)
    model = hg.model.SimpleConvNet(input_dim=(1, 8, 8), filter_num=4, filter_size=3, pad=1,
                                   hidden_size=8, output_size=3, seed=0)
    optimizer = hg.optim.Adam(lr=1e-3)
    x, t = rng.normal(size=(5, 1, 8, 8)).astype(np.float32), np.arange(5) % 3
    model.loss(x, t)
    model.backward()
    optimizer.update(model.params, model.grads)
    expected = model.predict(x)
    conv = model.layers[0]
    buffers = list(conv._work_arrays.values()) + list(optimizer._scratch_buffers.values())
    assert buffers
    for buffer in buffers:
        buffer.flags.writeable = False
    np.testing.assert_array_equal(model.predict(x), expected)
    model.loss(x, t)
    model.backward()
    optimizer.update(model.params, model.grads)
    assert all(buffer.flags.writeable for buffer in conv._work_arrays.values())
    assert all(buffer.flags.writeable for buffer in optimizer._scratch_buffers.values())


def test_shifted_rows_and_add_shifted_rows_are_adjoint():
    """<shifted_rows(x), r> = <x, add_shifted_rows(r)> for every r: the backward adds each copy's
    gradient back exactly where the forward copied it from (pads wider than the kernel included)."""
    rng = np.random.default_rng(21)
    # (33, 16, 1) and (5, 2, 1): "same" widths whose shifts outrun a whole map (a regression: the
    # flat path once sliced arrays of different lengths there).
    for (kw, pad, w) in [(3, 1, 6), (3, 2, 5), (5, 0, 7), (2, 4, 3), (1, 0, 4), (5, 2, 6), (3, 1, 1), (2, 1, 5),
                         (33, 16, 1), (5, 2, 1), (7, 3, 2)]:
        x = rng.standard_normal((2, 3, 4, w))
        ow = w + 2 * pad - kw + 1
        rows = shifted_rows(x, kw, pad, out=np.zeros((kw, 3, 2, 4, ow)))
        for j in range(kw):  # copy j is the input shifted left by j - pad columns, zeros where that is padding
            expected = np.zeros((2, 3, 4, ow))
            for o in range(ow):
                if 0 <= o + j - pad < w:
                    expected[..., o] = x[..., o + j - pad]
            np.testing.assert_array_equal(rows[j], expected.transpose(1, 0, 2, 3))
        r = rng.standard_normal(rows.shape)
        dx = add_shifted_rows(r, x.shape, pad)
        assert np.vdot(rows, r) == pytest.approx(np.vdot(x, dx), rel=1e-12)
        # Allowed to overwrite r (its padding columns), a "same" width (ow == w) takes one flat
        # addition per shift: the same dx up to the order of the sums, from a dirty work array.
        work = np.full((3, 2, 4, w), np.nan)
        np.testing.assert_allclose(add_shifted_rows(r.copy(), x.shape, pad, work=work, overwrite_rows=True), dx,
                                   rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_deep_convnet_takes_row_shifts_past_its_first_layer_and_both_paths_agree(dtype):
    """DeepConvNet's first convolution (one channel: FW C = 3) keeps im2col and one GEMM per
    image, its other five take the row shifts; a whole training step equals the all-im2col one
    (float64 to 1e-12, float32 to float32 rounding)."""
    rng = np.random.default_rng(5)
    x, t = rng.random((6, 1, 28, 28)).astype(dtype), rng.integers(0, 10, 6)
    models = [hg.model.DeepConvNet(seed=0, dropout=0.0, dtype=dtype) for _ in range(2)]
    for layer in models[1].layers:
        if isinstance(layer, Convolution):
            layer.ROW_SHIFT_MIN_INNER = 10**9
    losses = []
    for model in models:
        losses.append(model.loss(x, t))
        model.backward()
    convolutions = [layer for layer in models[0].layers if isinstance(layer, Convolution)]
    assert [layer._uses_row_shifts() for layer in convolutions] == [False] + [True] * 5
    assert not any(layer._uses_row_shifts() for layer in models[1].layers if isinstance(layer, Convolution))
    tolerance = 1e-12 if dtype == np.float64 else 2e-5
    assert losses[0] == pytest.approx(losses[1], rel=tolerance)
    for name, grad in models[0].grads.items():
        np.testing.assert_allclose(grad, models[1].grads[name], rtol=tolerance, atol=tolerance * np.abs(grad).max(),
                                   err_msg=name)


@CONV_PATHS
def test_evaluation_batches_of_another_size_leave_the_training_work_arrays_in_place(row_shift_min_inner):
    """model.accuracy evaluates 1000 samples at a time between training steps of 100: the
    layer's kept arrays for the training batch must survive it (each eval used to replace them
    twice, costing a fresh allocation and its page faults on the next step)."""
    rng = np.random.default_rng(7)
    W, b = rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4)
    layer = convolution(W, b, row_shift_min_inner, pad=1)
    x, dout = rng.standard_normal((5, 3, 6, 6)), rng.standard_normal((5, 4, 6, 6))
    out = layer.forward(x)
    dx = layer.backward(dout)
    kept = dict(layer._work_arrays)
    assert kept
    layer.train(False)
    big = rng.standard_normal((9, 3, 6, 6))
    np.testing.assert_allclose(layer.forward(big), convolution(W, b, row_shift_min_inner, pad=1).forward(big),
                               rtol=1e-12, atol=1e-12)
    layer.train(True)
    assert all(layer._work_arrays[key] is array for key, array in kept.items())
    np.testing.assert_array_equal(layer.forward(x), out)
    np.testing.assert_array_equal(layer.backward(dout), dx)


def test_tiled_2x2_max_pooling_of_a_strided_view_equals_pooling_its_copy():
    """The 2x2 path splits the map's axes into windows (a view, whatever the strides) and copies
    the four pixels apart: a transposed, sliced or reversed input must give what its contiguous
    copy gives."""
    rng = np.random.default_rng(8)
    base = tied_images(rng, (4, 3, 10, 9))
    for view in (base.transpose(1, 0, 2, 3), base[:, :, 1:, :], base[:, :, :, ::-1]):
        on_view, on_copy = Pooling(2, 2, stride=2), Pooling(2, 2, stride=2)
        out = on_view.forward(view)
        np.testing.assert_array_equal(out, on_copy.forward(np.ascontiguousarray(view)))
        dout = rng.standard_normal(out.shape)
        np.testing.assert_array_equal(on_view.backward(dout), on_copy.backward(dout))


@pytest.mark.parametrize("n, c, fn", [(1, 16, 4), (2, 16, 1), (2, 1, 4), (1, 1, 1)])
@CONV_PATHS
def test_outputs_and_input_gradients_are_never_the_kept_work_arrays(n, c, fn, row_shift_min_inner):
    """With one sample, one channel or one filter, moving the channel axis of a kept (C, N, H, W)
    array gives an already contiguous array, which np.ascontiguousarray returned as it was: the
    next forward or backward then overwrote a result the caller still held (predicting in
    batches with a one-filter convolution gave every batch the last batch's output)."""
    rng = np.random.default_rng(9)
    layer = convolution(rng.standard_normal((fn, c, 3, 3)), rng.standard_normal(fn), row_shift_min_inner, pad=1)
    x1, x2 = rng.standard_normal((2, n, c, 5, 4))
    dout1, dout2 = rng.standard_normal((2, n, fn, 5, 4))
    y1 = layer.forward(x1)
    dx1 = layer.backward(dout1)
    kept_y1, kept_dx1 = y1.copy(), dx1.copy()
    layer.forward(x2)
    layer.backward(dout2)
    np.testing.assert_array_equal(y1, kept_y1)
    np.testing.assert_array_equal(dx1, kept_dx1)
    for array in layer._work_arrays.values():
        assert not np.shares_memory(y1, array) and not np.shares_memory(dx1, array)


def test_predicting_in_batches_through_a_one_filter_convolution_equals_one_predict():
    """The reviewer's reproduction: a one-filter convolution head, predicted in two batches."""
    from handgrad.layers import Flatten

    rng = np.random.default_rng(0)
    model = hg.Sequential([Convolution(rng.standard_normal((1, 16, 3, 3)), np.zeros(1), pad=1), Flatten()])
    x = rng.standard_normal((6, 16, 4, 4))
    batches = [model.predict(x[i:i + 3]) for i in (0, 3)]
    np.testing.assert_allclose(np.concatenate(batches), model.predict(x), rtol=1e-12, atol=1e-12)
