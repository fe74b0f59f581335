"""handgrad.book: the book's modules on handgrad's layers, and the pitfalls they fix."""

import warnings

import numpy as np
import pytest

from conftest import SHARED_DATA
from handgrad.book.common import optimizer as book_optim
from handgrad.book.common.gradient import numerical_gradient
from handgrad.book.common.layers import Affine, SoftmaxWithLoss
from handgrad.book.common.multi_layer_net_extend import MultiLayerNetExtend
from handgrad.book.common.trainer import Trainer
from handgrad.book.simple_convnet import SimpleConvNet
from handgrad.book.two_layer_net import TwoLayerNet


def test_float64_network_computes_in_float64_on_float32_images():
    np.random.seed(0)
    net = TwoLayerNet(6, 4, 3)
    x = np.random.rand(5, 6).astype(np.float32)
    assert net.predict(x).dtype == np.float64
    grads = net.gradient(x, np.array([0, 1, 2, 0, 1]))
    assert all(g.dtype == np.float64 for g in grads.values())


def test_numerical_gradient_on_float32_warns_that_the_result_is_not_meaningful():
    with pytest.warns(RuntimeWarning, match="dtype float32, so the result is not meaningful"):
        numerical_gradient(lambda a: float(np.sum(a * a)), np.ones(3, dtype=np.float32))


def test_gradients_returned_by_gradient_survive_later_forwards():
    # batch_norm_gradient_check.py keeps gradient()'s dict while numerical_gradient runs the
    # network thousands of times; handgrad's layers zero their arrays at every forward.
    np.random.seed(1)
    net = MultiLayerNetExtend(5, [4], 3, use_batchnorm=True)
    x, t = np.random.randn(6, 5), np.array([0, 1, 2, 0, 1, 2])
    grads = net.gradient(x, t)
    kept = {k: v.copy() for k, v in grads.items()}
    net.loss(np.random.randn(6, 5), t[::-1].copy(), train_flg=True)
    layer = net.layers["Affine1"]
    for key in kept:
        np.testing.assert_array_equal(grads[key], kept[key])
    assert not np.shares_memory(layer.dW, layer.grads["W"])


def test_book_network_gradients_match_numerical_ones():
    np.random.seed(2)
    net = MultiLayerNetExtend(5, [4, 4], 3, weight_decay_lambda=0.1, use_batchnorm=True)
    x, t = np.random.randn(7, 5), np.eye(3)[np.random.randint(0, 3, 7)]
    backprop, numerical = net.gradient(x, t), net.numerical_gradient(x, t)
    assert list(backprop) == list(numerical)
    for key in backprop:
        np.testing.assert_allclose(backprop[key], numerical[key], rtol=1e-6, atol=1e-9)


def test_batch_of_one_puts_the_relu_after_batchnorm_on_its_kink():
    """Why the book's batch_norm_gradient_check.py prints ~0.05 for beta2: with one sample the
    second BatchNorm outputs beta2 = 0 exactly, the ReLU's input is at its kink, backprop takes
    the slope there as 0 and central differences average the slopes 0 and 1 to 1/2."""
    np.random.seed(3)
    net = MultiLayerNetExtend(6, [5, 5], 4, use_batchnorm=True)
    x, t = np.random.rand(1, 6), np.eye(4)[[2]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        backprop, numerical = net.gradient(x, t), net.numerical_gradient(x, t)
    np.testing.assert_array_equal(backprop["beta2"], 0.0)
    # The scores are b3 = 0: softmax is uniform, and dL/d(relu output) = (y - t) W3^T.
    right_slope = (np.full(4, 0.25) - t[0]) @ net.params["W3"].T
    # Only one side of the kink moves the loss, so the curvature term no longer cancels in the
    # central difference: the error is O(eps) = O(1e-5) relative, not O(eps^2).
    np.testing.assert_allclose(numerical["beta2"], 0.5 * right_slope, rtol=1e-4)
    assert np.abs(right_slope).max() > 0.1


def test_softmax_with_loss_reads_labels_shaped_n_by_1_as_the_book_does():
    scores = np.array([[1.0, 2.0, 0.5], [0.1, 0.2, 3.0]])
    a, b = SoftmaxWithLoss(), SoftmaxWithLoss()
    assert a.forward(scores, np.array([[1], [2]])) == pytest.approx(b.forward(scores, np.array([1, 2])), abs=1e-15)
    np.testing.assert_array_equal(a.backward(), b.backward())


def test_affine_keeps_the_networks_arrays():
    W, b = np.random.randn(3, 2), np.zeros(2)
    layer = Affine(W, b)
    W -= 1.0  # an optimizer's in-place update reaches the layer
    assert layer.W is W and layer.b is b


def test_momentum_and_nesterov_take_torchs_steps(torch):
    rng = np.random.default_rng(4)
    for book_class, nesterov in ((book_optim.Momentum, False), (book_optim.Nesterov, True)):
        start = rng.standard_normal(5)
        params = {"w": start.copy()}
        ours = book_class(lr=0.1, momentum=0.9)
        w = torch.tensor(start.copy(), requires_grad=True)
        theirs = torch.optim.SGD([w], lr=0.1, momentum=0.9, nesterov=nesterov)
        for _ in range(5):
            grad = rng.standard_normal(5)
            ours.update(params, {"w": grad})
            w.grad = torch.tensor(grad)
            theirs.step()
        np.testing.assert_allclose(params["w"], w.detach().numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name, defaults", [
    ("SGD", {"lr": 0.01}), ("Momentum", {"lr": 0.01, "momentum": 0.9}), ("Nesterov", {"lr": 0.01, "momentum": 0.9}),
    ("AdaGrad", {"lr": 0.01}), ("RMSprop", {"lr": 0.01, "decay_rate": 0.99}),
    ("Adam", {"lr": 0.001, "beta1": 0.9, "beta2": 0.999}),
])
def test_every_book_optimizer_builds_with_no_arguments_and_the_books_defaults(name, defaults):
    # ch06/optimizer_compare_mnist.py writes AdaGrad() with no arguments; it once needed lr.
    optimizer = getattr(book_optim, name)()
    assert {key: getattr(optimizer, key) for key in defaults} == defaults
    params, grads = {"W": np.ones(3)}, {"W": np.full(3, 0.5)}
    optimizer.update(params, grads)
    assert np.all(params["W"] < 1.0)


def test_adam_is_the_books_rule():
    params, g = {"w": np.array([1.0, -2.0])}, np.array([0.5, 1e-9])
    opt = book_optim.Adam(lr=0.1)
    opt.update(params, {"w": g})
    m, v = 0.1 * g, 0.001 * g * g
    expected = np.array([1.0, -2.0]) - 0.1 * np.sqrt(1 - 0.999) / (1 - 0.9) * m / (np.sqrt(v) + 1e-7)
    np.testing.assert_allclose(params["w"], expected, rtol=1e-15)


def test_trainer_sees_every_sample_once_per_epoch():
    np.random.seed(5)
    x, t = np.random.randn(250, 4), np.random.randint(0, 3, 250)

    class Recorder(TwoLayerNet):
        seen = []

        def gradient(self, x_batch, t_batch):
            self.seen.append(x_batch[:, 0].copy())
            return super().gradient(x_batch, t_batch)

    net = Recorder(4, 5, 3)
    trainer = Trainer(net, x, t, x[:20], t[:20], epochs=2, mini_batch_size=100, verbose=False)
    trainer.train()
    assert trainer.iter_per_epoch == 3 and len(net.seen) == 6
    for epoch in (net.seen[:3], net.seen[3:]):
        np.testing.assert_array_equal(np.sort(np.concatenate(epoch)), np.sort(x[:, 0]))
    assert len(trainer.train_acc_list) == len(trainer.test_acc_list) == 2


def test_save_params_writes_safetensors_never_a_pickle(tmp_path):
    np.random.seed(6)
    net = SimpleConvNet(input_dim=(1, 8, 8), conv_param={"filter_num": 2, "filter_size": 3, "pad": 0, "stride": 1},
                        hidden_size=4, output_size=3)
    path = net.save_params(str(tmp_path / "params.pkl"))
    assert path == tmp_path / "params.safetensors" and not (tmp_path / "params.pkl").exists()
    other = SimpleConvNet(input_dim=(1, 8, 8), conv_param={"filter_num": 2, "filter_size": 3, "pad": 0, "stride": 1},
                          hidden_size=4, output_size=3)
    other.load_params(str(tmp_path / "params.pkl"))
    x = np.random.rand(2, 1, 8, 8)
    np.testing.assert_array_equal(other.predict(x), net.predict(x))
    with pytest.raises(FileNotFoundError, match="never unpickles"):
        other.load_params(str(tmp_path / "missing.pkl"))


@pytest.mark.skipif(not (SHARED_DATA / "mnist").is_dir(), reason="MNIST is not in the shared data")
def test_load_mnist_returns_the_books_arrays(monkeypatch):
    from handgrad.book.dataset import mnist

    monkeypatch.setattr(mnist, "DATA_DIR", SHARED_DATA)
    (x, t), (x_test, t_test) = mnist.load_mnist(normalize=False, flatten=False, one_hot_label=True)
    assert x.dtype == np.uint8 and x.shape == (60000, 1, 28, 28) and x.max() == 255
    assert t.shape == (60000, 10) and t.dtype == np.float64 and (t.sum(axis=1) == 1).all()
    (xn, tn), _ = mnist.load_mnist()
    assert xn.dtype == np.float32 and xn.shape == (60000, 784) and tn.dtype == np.uint8
    np.testing.assert_array_equal(np.rint(xn * 255).astype(np.uint8), x.reshape(60000, 784))


def test_deep_convnet_builds_the_books_layers_and_its_gradients_fit():
    from handgrad.book.deep_convnet import DeepConvNet

    np.random.seed(7)
    net = DeepConvNet()
    assert [net.params[f"W{i}"].shape for i in (1, 4, 7, 8)] == [(16, 1, 3, 3), (32, 32, 3, 3), (1024, 50), (50, 10)]
    x, t = np.random.rand(2, 1, 28, 28).astype(np.float32), np.array([3, 7])
    grads = net.gradient(x, t)
    assert {k: g.shape for k, g in grads.items()} == {k: p.shape for k, p in net.params.items()}
    assert np.isfinite(net.loss(x, t)) and 0.0 <= net.accuracy(x, t) <= 1.0


def test_load_params_of_a_missing_book_weight_file_names_the_script_that_trains_it(tmp_path, monkeypatch):
    """The book's misclassified_mnist.py loads deep_convnet_params.pkl, which handgrad never
    unpickles: the error says which book script writes the safetensors file it reads instead."""
    from handgrad.book.common import _network
    from handgrad.book.deep_convnet import DeepConvNet

    monkeypatch.setattr(_network, "PARAMS_DIR", tmp_path / "out")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "deep_convnet_params.pkl").write_bytes(b"not read")
    with pytest.raises(_network.ParamsNotFound) as refused:
        DeepConvNet().load_params("deep_convnet_params.pkl")
    message = str(refused.value)
    assert message.startswith(f"{tmp_path / 'out' / 'deep_convnet_params.safetensors'}: no such file")
    assert f"handgrad book-run --out {tmp_path / 'out'} ch08/train_deepnet.py" in message
    assert message.endswith(f"the pickle {tmp_path / 'deep_convnet_params.pkl'} is never read")
    assert isinstance(refused.value, FileNotFoundError)
