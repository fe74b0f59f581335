"""The GPT model: gradients by central differences, the tied weight, dropout, generation with a
key/value cache and nanoGPT's crop, sampling, save/load and messages. (PyTorch parity of logits,
loss and every gradient: test_interop.py.)"""

import dataclasses

import numpy as np
import pytest

import handgrad as hg
from handgrad.data.text import CharVocab
from handgrad.gradcheck import gradient_check, numerical_gradient, relative_error
from handgrad.layers import GELU, Affine, Dropout, LayerNorm
from handgrad.model import GPT, MODEL_TYPES
from handgrad.model.gpt import GPTConfig, _sample


def randomize(gpt, seed=0, scale=0.3):
    rng = np.random.default_rng(seed)
    for name, value in gpt.params.items():
        value[...] = rng.normal(1.0 if name.endswith("gamma") else 0.0, scale, value.shape)
    return gpt


def data(V, N, T, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, V, (N, T)), rng.integers(0, V, (N, T))


@pytest.mark.parametrize("bias, gelu, tied_head", [(True, "none", True), (False, "tanh", True),
                                                   (True, "tanh", False)])
def test_numerical_gradients_of_a_tiny_gpt(bias, gelu, tied_head):
    gpt = randomize(GPT(5, 4, 2, 2, 4, bias=bias, gelu=gelu, tied_head=tied_head, seed=0, dtype=np.float64))
    idx, targets = data(5, 2, 4)
    targets[1, 1] = -100
    report = gradient_check(gpt, idx, targets)
    assert set(report.errors) == set(gpt.params)  # ids have no gradient: no "x" entry
    assert report.passed, report.errors


def test_dropout_gradients_with_the_masks_held_fixed():
    gpt = randomize(GPT(5, 4, 1, 2, 4, dropout=0.3, seed=0, dtype=np.float64))
    assert sum(isinstance(layer, Dropout) for _, layer in gpt.named_layers()) == 3
    idx, targets = data(5, 2, 4)
    state = gpt.rng.bit_generator.state

    def loss(_):
        gpt.rng.bit_generator.state = state  # the same masks at every evaluation
        return gpt.loss(idx, targets)

    loss(None)
    gpt.backward()
    analytic = {name: grad.copy() for name, grad in gpt.grads.items()}  # a forward zeroes them
    for name in ("wte.W", "wpe.W", "h.0.attn.W_qkv", "h.0.attn.b_o", "h.0.mlp.c_fc.W", "ln_f.gamma"):
        assert relative_error(analytic[name], numerical_gradient(loss, gpt.params[name])) < 1e-6, name
    first = loss(None)
    assert loss(None) == first and gpt.loss(idx, targets) != first  # fresh masks differ
    with gpt.mode(False):  # evaluation: no dropout, the deterministic model
        plain = GPT(5, 4, 1, 2, 4, seed=0, dtype=np.float64)
        for name, value in gpt.params.items():
            plain.params[name][...] = value
        np.testing.assert_array_equal(gpt.predict(idx), plain.predict(idx))


def test_dropout_zero_adds_no_layer_and_is_exact():
    gpt = GPT(7, 5, 2, 1, 4, dropout=0.0, seed=0)
    assert not any(isinstance(layer, Dropout) for _, layer in gpt.named_layers())
    idx, _ = data(7, 2, 5)
    np.testing.assert_array_equal(gpt.predict(idx), gpt.predict(idx))


def test_tied_weight_is_listed_once_and_gets_both_uses():
    gpt = randomize(GPT(9, 6, 1, 2, 4, seed=0, dtype=np.float64))
    assert [k for k in gpt.params if "wte" in k or "lm_head" in k] == ["wte.W"]
    assert len({id(v) for v in gpt.params.values()}) == len(gpt.params)
    assert set(gpt.params) == set(gpt.grads)
    idx = np.array([[0, 1, 2, 1, 0, 2], [2, 2, 1, 0, 0, 1]])  # tokens 3 .. 8 never read
    targets = np.array([[1, 2, 3, 4, 5, 6], [7, 8, 0, 1, 2, 3]])
    gpt.loss(idx, targets)
    gpt.backward()
    dlogits = gpt.loss_layer.backward(1.0).reshape(-1, 9)
    head_share = dlogits.T @ gpt._xf  # logits = x_f wte^T: dwte = dlogits^T x_f
    grad = gpt.grads["wte.W"]
    np.testing.assert_allclose(grad[3:], head_share[3:], rtol=1e-12, atol=1e-15)  # unused rows: the head only
    assert np.abs(grad[3:]).min() > 0
    assert np.abs(grad[:3] - head_share[:3]).min() > 1e-6  # used rows: the embedding's share added


def test_backward_leaves_one_steps_gradients():
    gpt = randomize(GPT(6, 4, 1, 2, 4, seed=0))
    idx, targets = data(6, 3, 4)
    gpt.loss(idx, targets)
    gpt.backward()
    first = {k: v.copy() for k, v in gpt.grads.items()}
    gpt.backward()  # twice: zeroed first, not doubled
    gpt.loss(idx, targets)
    gpt.backward()
    for name, value in gpt.grads.items():
        np.testing.assert_allclose(value, first[name], rtol=1e-6, atol=1e-9, err_msg=name)


def test_nanogpt_initialisation_and_bias_option():
    gpt = GPT(50, 16, 3, 4, 64, seed=0)
    p = gpt.params
    for name, value in p.items():
        assert value.dtype == np.float32, name
        if name.endswith(("W_o", "c_proj.W")):
            assert value.std() == pytest.approx(0.02 / np.sqrt(6), rel=0.05), name
        elif name.endswith((".W", "W_qkv")):
            assert value.std() == pytest.approx(0.02, rel=0.05), name
        elif name.endswith("gamma"):
            assert np.all(value == 1)
        else:
            assert np.all(value == 0), name
    no_bias = GPT(50, 16, 3, 4, 64, bias=False, seed=0)
    assert set(no_bias.params) == {k for k in p if not k.endswith((".b", ".beta", "b_qkv", "b_o"))}
    assert GPT(50, 16, 3, 4, 64, seed=0).num_params == gpt.num_params == sum(v.size for v in p.values())
    np.testing.assert_array_equal(GPT(50, 16, 3, 4, 64, seed=7).params["wte.W"],
                                  GPT(50, 16, 3, 4, 64, seed=7).params["wte.W"])


def test_pytorch_initialisation_and_an_untied_head_as_makemore():
    """makemore.py's Transformer: PyTorch's default initialisation (embeddings N(0, 1), every
    Linear uniform in +-1/sqrt(fan_in), bias included) and its own lm_head without bias."""
    gpt = GPT(50, 16, 2, 4, 64, tied_head=False, init="pytorch", seed=0)
    p = gpt.params
    assert list(p)[-1] == "lm_head.W" and p["lm_head.W"].shape == (64, 50)
    assert "lm_head.b" not in p and "lm_head.b" not in gpt.grads
    uniform_std = lambda fan_in: 1 / np.sqrt(fan_in) / np.sqrt(3)  # noqa: E731  (the std of U(-a, a))
    for name, value in p.items():
        if name in ("wte.W", "wpe.W"):
            assert value.std() == pytest.approx(1.0, rel=0.05), name
        elif name.endswith("gamma"):
            assert np.all(value == 1), name
        elif name.endswith("beta"):
            assert np.all(value == 0), name
        else:  # an Affine's W or b: bounded by 1/sqrt(fan_in) (4C for the MLP's c_proj)
            fan_in = 256 if ".mlp.c_proj." in name else 64
            assert np.abs(value).max() <= 1 / np.sqrt(fan_in), name
            if value.size > 1000:
                assert value.std() == pytest.approx(uniform_std(fan_in), rel=0.05), name
    assert gpt.num_params == sum(v.size for v in p.values()) == GPT(50, 16, 2, 4, 64, seed=0).num_params + 64 * 50
    with pytest.raises(ValueError, match="init must be one of 'nanogpt', 'pytorch', 'zeros', got 'he'"):
        GPT(5, 4, 1, 1, 4, init="he")


def test_an_untied_head_gets_its_own_gradient_and_survives_save_and_load(tmp_path):
    gpt = randomize(GPT(9, 6, 1, 2, 4, tied_head=False, seed=0, dtype=np.float64))
    idx = np.array([[0, 1, 2, 1, 0, 2], [2, 2, 1, 0, 0, 1]])
    targets = np.array([[1, 2, 3, 4, 5, 6], [7, 8, 0, 1, 2, 3]])
    gpt.loss(idx, targets)
    gpt.backward()
    dlogits = gpt.loss_layer.backward(1.0).reshape(-1, 9)
    np.testing.assert_allclose(gpt.grads["lm_head.W"], gpt._xf.T @ dlogits, rtol=1e-12, atol=1e-15)
    assert np.all(gpt.grads["wte.W"][3:] == 0)  # rows never read: no output layer's share any more
    assert gpt.spec()["tied_head"] is False and "tied_head" not in GPT(9, 6, 1, 2, 4).spec()
    hg.save(gpt, tmp_path / "untied.safetensors")
    back = hg.load(tmp_path / "untied.safetensors")
    assert back.tied_head is False and back.dtype == np.float64
    np.testing.assert_array_equal(back.predict(idx), gpt.predict(idx))
    cached = gpt.generate(idx[:, :2], 7, temperature=0)  # the key/value cache uses the same head
    np.testing.assert_array_equal(cached, gpt.generate(idx[:, :2], 7, temperature=0, use_cache=False))


def test_cached_generation_equals_uncached_and_greedy_is_argmax_step_by_step():
    gpt = randomize(GPT(11, 6, 2, 2, 8, seed=0, dtype=np.float64), scale=0.5)
    prompt, _ = data(11, 2, 3, seed=4)
    # 3 + 8 tokens: the context outgrows block_size = 6, so both paths crop (the cache is rebuilt).
    cached, logits = gpt.generate(prompt, 8, temperature=0, return_logits=True)
    uncached, logits_uncached = gpt.generate(prompt, 8, temperature=0, use_cache=False, return_logits=True)
    np.testing.assert_array_equal(cached, uncached)
    np.testing.assert_allclose(logits, logits_uncached, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(cached[:, :3], prompt)
    ids = prompt
    for step in range(8):
        full = gpt.predict(ids[:, -6:])[:, -1]  # nanoGPT's crop: the last block_size tokens
        np.testing.assert_allclose(logits[:, step], full, rtol=1e-10, atol=1e-12)
        ids = np.concatenate([ids, full.argmax(axis=-1)[:, None]], axis=1)
    np.testing.assert_array_equal(ids, cached)


def test_sampled_generation_is_seeded_and_cache_independent():
    gpt = randomize(GPT(13, 5, 1, 2, 6, seed=0), scale=0.5)
    prompt = np.array([[1, 2], [3, 4], [5, 6]])
    a = gpt.generate(prompt, 9, temperature=0.8, top_k=5, seed=3)
    assert a.shape == (3, 11) and a.dtype == np.int64
    np.testing.assert_array_equal(a, gpt.generate(prompt, 9, temperature=0.8, top_k=5, seed=3))
    np.testing.assert_array_equal(a, gpt.generate(prompt, 9, temperature=0.8, top_k=5, seed=3, use_cache=False))
    assert not np.array_equal(a, gpt.generate(prompt, 9, temperature=0.8, top_k=5, seed=4))
    np.testing.assert_array_equal(gpt.generate(prompt, 4, top_k=1, seed=0), gpt.generate(prompt, 4, temperature=0))
    assert gpt.generate(prompt, 0).shape == (3, 2)


def test_sampling_follows_softmax_of_the_top_k():
    logits = np.log(np.array([[0.1, 0.4, 0.2, 0.3]]))
    rng = np.random.default_rng(0)
    draws = _sample(np.repeat(logits, 40_000, axis=0), 1.0, None, rng)
    np.testing.assert_allclose(np.bincount(draws, minlength=4) / 40_000, [0.1, 0.4, 0.2, 0.3], atol=0.01)
    draws = _sample(np.repeat(logits, 40_000, axis=0), 0.5, 2, rng)  # top 2: p^2 renormalised
    np.testing.assert_allclose(np.bincount(draws, minlength=4) / 40_000, [0, 16 / 25, 0, 9 / 25], atol=0.01)
    tied = np.array([[1.0, 3.0, 3.0, 0.0]])  # ties with the k-th value are kept, as nanoGPT
    assert set(_sample(np.repeat(tied, 1000, axis=0), 1.0, 1, rng)) == {1, 2}


def test_save_and_load_round_trip(tmp_path):
    for kwargs in ({}, {"bias": False, "dropout": 0.1, "gelu": "tanh", "eps": 1e-6, "vocab": "abcdefg"}):
        gpt = randomize(GPT(7, 6, 2, 2, 4, seed=0, **kwargs))
        hg.save(gpt, tmp_path / "gpt.safetensors")
        back = hg.load(tmp_path / "gpt.safetensors")
        assert isinstance(back, GPT) and MODEL_TYPES["GPT"] is GPT
        assert back.spec() == gpt.spec() and set(back.params) == set(gpt.params)
        for name, value in gpt.params.items():
            np.testing.assert_array_equal(back.params[name], value, err_msg=name)
        idx, _ = data(7, 2, 6)
        with gpt.mode(False), back.mode(False):
            np.testing.assert_allclose(back.predict(idx), gpt.predict(idx), rtol=1e-6, atol=1e-7)
    assert back.decode(back.encode("gafe")) == "gafe"
    with pytest.raises(ValueError, match="bad description"):
        hg.serialize.build_model({**gpt.spec(), "n_head": 3}, tensors={})


def test_fit_trains_it():
    gpt = GPT(8, 8, 1, 2, 16, seed=0)
    x = np.tile(np.arange(8), (32, 1))
    t = (x + 1) % 8
    before = gpt.loss(x, t)
    hg.fit(gpt, hg.optim.Adam(lr=1e-2), (x, t), epochs=15, batch_size=8, seed=0, progress=False)
    assert gpt.loss(x, t) < 0.3 * np.log(8) < before


def test_messages():
    gpt = GPT(10, 4, 1, 2, 4, seed=0)
    with pytest.raises(ValueError, match=r"T = 5 exceeds block_size = 4 .* crop the context"):
        gpt.predict(np.zeros((1, 5), int))
    with pytest.raises(ValueError, match=r"must lie in \[0, 10\), got values from 0 to 10"):
        gpt.predict(np.array([[0, 10]]))
    with pytest.raises(TypeError, match="must be integers"):
        gpt.predict(np.zeros((1, 2)))
    with pytest.raises(ValueError, match=r"shape \(N, T\).*idx\[None\]"):
        gpt.predict(np.zeros(3, int))
    with pytest.raises(ValueError, match="n_embd = 6 must be divisible by n_head = 4"):
        GPT(10, 4, 1, 4, 6)
    with pytest.raises(ValueError, match="vocab must list vocab_size = 10"):
        GPT(10, 4, 1, 1, 4, vocab="abc")
    with pytest.raises(ValueError, match="no vocabulary"):
        gpt.encode("hi")
    with pytest.raises(ValueError, match="temperature must be a finite number >= 0"):
        gpt.generate(np.zeros((1, 1), int), 2, temperature=-1)
    with pytest.raises(ValueError, match="top_k must be None or an integer >= 1"):
        gpt.generate(np.zeros((1, 1), int), 2, top_k=0)
    with pytest.raises(RuntimeError, match="backward\\(\\) called before forward"):
        GPT(10, 4, 1, 2, 4).backward()
    with pytest.raises(ValueError, match="SoftmaxWithLoss|label"):
        gpt.loss(np.zeros((1, 3), int), np.zeros((1, 2), int))


# --- issue 22: what load refuses is refused at construction; sampling never sees NaN -------------


@pytest.mark.parametrize("kwargs, match", [
    ({"n_layer": 10_001}, r"GPT: n_layer must be a positive integer <= 10000, got 10001"),
    ({"eps": 1.0}, r"GPT: eps must be > 0 and < 1, got 1.0"),
    ({"eps": 1e10}, r"GPT: eps must be > 0 and < 1, got 10000000000.0"),
    ({"eps": True}, r"GPT: eps must be > 0 and < 1, got True \(a bool, where a number is needed\)"),
    ({"eps": float("nan")}, r"GPT: eps must be > 0 and < 1, got nan"),
    ({"dropout": 1.0}, r"GPT: dropout must be >= 0 and < 1, got 1.0"),
    ({"bias": 1}, r"GPT: bias must be true or false, got 1"),
    ({"block_size": 2 ** 40}, r"GPT: block_size must be a positive integer <= 1099511627775"),
    ({"n_embd": "4"}, r"GPT: n_embd must be a positive integer, got '4' \(a str, where an integer is needed\)"),
    ({"vocab": "ab\udc80"}, r"GPT: vocab holds the lone surrogate '\\udc80' at position 2"),
])
def test_a_gpt_that_load_would_refuse_is_refused_at_construction(kwargs, match):
    """A GPT with n_layer 10001 or eps 1.0 trained, saved, and then could not be loaded."""
    settings = {"vocab_size": 3, "block_size": 4, "n_layer": 1, "n_head": 1, "n_embd": 2, **kwargs}
    with pytest.raises(ValueError, match=match):
        GPT(**settings)
    with pytest.raises(ValueError, match=match):  # the one check, the config's
        GPTConfig(**settings)
    spec = {"model": "GPT", "dropout": 0.0, "bias": True, "gelu": "none", "eps": 1e-5, "vocab": None, **settings}
    with pytest.raises(ValueError, match=match):  # load's own check, the same function, the same words
        GPT.param_shapes(spec)


def test_a_gpt_dtype_no_model_file_stores_is_refused_at_construction():
    with pytest.raises(TypeError, match="GPT: dtype must be a float type a model file can store"):
        GPT(3, 4, 1, 1, 2, dtype=np.longdouble)


def test_layernorm_refuses_the_eps_load_refuses():
    from handgrad.layers import LayerNorm

    for eps in (1.0, 1e10, True, float("inf")):
        with pytest.raises(ValueError, match="LayerNorm: eps must be > 0 and < 1"):
            LayerNorm(4, eps=eps)
        with pytest.raises(ValueError, match="eps must be > 0 and < 1"):
            LayerNorm.param_shapes({"type": "LayerNorm", "num_features": 4, "eps": eps})


def test_the_largest_settings_the_constructor_accepts_save_and_load(tmp_path):
    gpt = GPT(3, 4, 1, 1, 2, seed=0, eps=0.999, dropout=0.999, vocab="ab\U0001F600")
    hg.save(gpt, tmp_path / "g.safetensors")
    assert hg.load(tmp_path / "g.safetensors").spec() == gpt.spec()
    assert GPT.param_shapes({**gpt.spec(), "n_layer": 10_000})  # the limit itself is accepted


@pytest.mark.parametrize("temperature", [1e-320, 5e-324, 1e-300, 1e-12])
def test_a_subnormal_temperature_samples_the_argmax_not_token_zero(temperature):
    """generate --temperature 1e-320 divided to inf, then NaN, and the sampler returned id 0."""
    gpt = randomize(GPT(11, 8, 1, 2, 8, seed=0), scale=0.5)
    prompt = np.array([[3, 4], [5, 6]])
    greedy = gpt.generate(prompt, 6, temperature=0)
    assert (greedy[:, 2:] != 0).any()  # token 0 everywhere would not tell the bug apart
    np.testing.assert_array_equal(gpt.generate(prompt, 6, temperature=temperature, seed=0), greedy)
    np.testing.assert_array_equal(gpt.generate(prompt, 6, temperature=temperature, top_k=3, seed=0), greedy)
    logits = np.array([[1.0, 5.0, 5.0, -3.0], [-np.finfo(np.float32).max, 0.0, np.finfo(np.float32).max, 1.0]],
                      np.float32)
    draws = _sample(np.repeat(logits, 500, axis=0), temperature, None, np.random.default_rng(0))
    assert set(draws[:500].tolist()) == {1, 2} and set(draws[500:].tolist()) == {2}  # ties shared, never token 0


@pytest.mark.parametrize("temperature", [-1.0, -1e-320, float("nan"), float("inf"), True, "0.8"])
def test_a_negative_nan_or_infinite_temperature_is_refused(temperature):
    gpt = GPT(5, 4, 1, 1, 2, seed=0)
    with pytest.raises(ValueError, match=r"GPT.generate: temperature must be a finite number >= 0 \(0: greedy\)"):
        gpt.generate(np.zeros((1, 1), int), 2, temperature=temperature)


@pytest.mark.parametrize("temperature", [0, 0.8])
def test_non_finite_logits_are_refused_instead_of_sampling_token_zero(temperature):
    gpt = GPT(5, 4, 1, 1, 2, seed=0)
    gpt.params["ln_f.gamma"][0] = np.nan
    with pytest.raises(ValueError, match=r"GPT.generate: the model's logits are not finite \(NaN or infinity in "
                                         r"row\(s\) \[0\] of 1\)"):
        gpt.generate(np.zeros((1, 1), int), 2, temperature=temperature, seed=0)
    with pytest.raises(ValueError, match="logits are not finite"):
        _sample(np.array([[0.0, np.inf]]), 1.0, None, np.random.default_rng(0))


# --- issue 21, item 5: one GPTConfig, a pure apply for generation, children called by name -------


def test_a_gpt_is_its_config_and_from_config_builds_the_same_model(tmp_path):
    config = GPTConfig(vocab_size=7, block_size=6, n_layer=2, n_head=2, n_embd=4, dropout=0.1, bias=False,
                       gelu="tanh", eps=1e-6, vocab="abcdefg")
    gpt = GPT(7, 6, 2, 2, 4, dropout=0.1, bias=False, gelu="tanh", eps=1e-6, vocab="abcdefg", seed=3)
    assert gpt.config == config
    twin = GPT.from_config(config, seed=3)
    assert twin.config == config and twin.spec() == gpt.spec()
    # The saved description: the keys and their order of every file saved so far.
    assert list(gpt.spec()) == ["model", "vocab_size", "block_size", "n_layer", "n_head", "n_embd", "dropout", "bias",
                                "gelu", "eps", "vocab"]
    hg.save(gpt, tmp_path / "a.safetensors")
    hg.save(twin, tmp_path / "b.safetensors")
    assert (tmp_path / "a.safetensors").read_bytes() == (tmp_path / "b.safetensors").read_bytes()
    assert GPT.param_shapes(gpt.spec()) == {name: value.shape for name, value in gpt.params.items()}
    assert (gpt.n_layer, gpt.n_embd, gpt.dropout, gpt.bias, gpt.gelu, gpt.eps) == (2, 4, 0.1, False, "tanh", 1e-6)
    assert repr(gpt) == ("GPT(vocab_size=7, block_size=6, n_layer=2, n_head=2, n_embd=4, dropout=0.1, bias=False, "
                         "gelu='tanh', eps=1e-06, tied_head=True)")
    with pytest.raises(dataclasses.FrozenInstanceError):
        gpt.config.n_layer = 3  # a built GPT's architecture does not change
    with pytest.raises(TypeError, match="GPT.from_config: expected a GPTConfig, got dict"):
        GPT.from_config({"vocab_size": 7})


def test_the_config_stores_its_settings_normalised():
    config = GPTConfig(np.int64(5), 4, 1, 1, 2, dropout=0, eps=np.float32(0.5), bias=np.bool_(False))
    assert (type(config.vocab_size), type(config.dropout), type(config.eps), type(config.bias)) == (int, float, float,
                                                                                                    bool)
    assert GPTConfig.from_spec(GPT.from_config(config).spec()) == config


def test_the_config_follows_a_replaced_vocabulary():
    gpt = GPT(3, 4, 1, 1, 2, vocab="abc", seed=0)
    gpt.vocab = CharVocab("xyz")
    assert gpt.config.vocab == "xyz" and gpt.spec()["vocab"] == "xyz"


@pytest.mark.parametrize("layer, x", [
    (Affine(np.arange(12.0).reshape(3, 4) / 7, np.arange(4.0)), np.linspace(-1, 1, 30).reshape(2, 5, 3)),
    (Affine(np.arange(12.0).reshape(3, 4) / 7, np.arange(4.0)), np.linspace(-1, 1, 3)),
    (Affine(np.arange(12.0).reshape(3, 4) / 7, np.arange(4.0)), np.linspace(-1, 1, 6).reshape(2, 3)),
    (LayerNorm(3, eps=1e-3, dtype=np.float64), np.linspace(-2, 3, 30).reshape(2, 5, 3)),
    (GELU("none"), np.linspace(-6, 6, 40).reshape(2, 4, 5)),
    (GELU("tanh"), np.linspace(-6, 6, 40).reshape(2, 4, 5)),
])
def test_apply_is_the_forward_formula_and_leaves_forward_s_cache_and_the_gradients_alone(layer, x):
    for key, value in layer.params.items():
        value[...] = np.random.default_rng(0).normal(1.0 if key == "gamma" else 0.0, 0.5, value.shape)
    y = layer.forward(x)
    dout = np.random.default_rng(1).normal(size=y.shape)
    dx = layer.backward(dout)
    grads = {key: value.copy() for key, value in layer.grads.items()}
    np.testing.assert_array_equal(layer.apply(x), y)  # the same code, the same numbers
    layer.apply(x[::-1] * 3 + 1)  # other input: nothing of it may stay
    np.testing.assert_array_equal(layer.backward(dout), dx)  # forward's cache untouched...
    for key, value in layer.grads.items():
        np.testing.assert_array_equal(value, 2 * grads[key])  # ...and apply neither zeroed nor added


def test_apply_refuses_bad_input_as_forward_does():
    with pytest.raises(ValueError, match=r"LayerNorm: expected input of shape \(\.\.\., 3\)"):
        LayerNorm(3).apply(np.zeros((2, 4)))
    with pytest.raises(ValueError, match=r"Affine: expected input of shape \(N, 3\)"):
        Affine(np.zeros((3, 2)), np.zeros(2)).apply(np.zeros((2, 4)))


def test_an_error_inside_a_block_names_its_whole_path():
    gpt = GPT(5, 4, 2, 1, 4, seed=0)
    with pytest.raises(ValueError, match=r"^layer h\.0\.ln_1: LayerNorm: expected input of shape \(\.\.\., 4\)"):
        gpt.h.forward(np.zeros((1, 3, 5)))
    gpt.predict(np.zeros((1, 3), int))
    with pytest.raises(ValueError, match=r"^layer h\.1\.mlp\.c_proj: Affine: backward expected dout of shape "
                                         r"\(1, 3, 4\)"):
        gpt.h.backward(np.zeros((1, 3, 5)))


def test_generation_uses_the_layers_apply_and_leaves_training_state_alone():
    gpt = randomize(GPT(9, 8, 2, 2, 8, seed=0, dtype=np.float64), scale=0.5)
    idx, targets = data(9, 2, 8)
    gpt.loss(idx, targets)
    gpt.backward()
    grads = {name: value.copy() for name, value in gpt.grads.items()}
    cached = gpt.generate(idx[:, :3], 5, temperature=0)
    np.testing.assert_array_equal(cached, gpt.generate(idx[:, :3], 5, temperature=0, use_cache=False))
    gpt.loss(idx, targets)  # the uncached path ran predict: run the step again, then compare
    gpt.backward()
    for name, value in gpt.grads.items():
        np.testing.assert_array_equal(value, grads[name], err_msg=name)
    gpt.loss(idx, targets)
    gpt.generate(idx[:, :3], 5, temperature=0)  # cached: no forward of any layer
    gpt.backward()
    for name, value in gpt.grads.items():
        np.testing.assert_array_equal(value, grads[name], err_msg=name)
