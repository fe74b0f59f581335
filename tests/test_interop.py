"""GPT against PyTorch: nanoGPT's architecture rebuilt in PyTorch here (from the GPT-2 paper and
nanoGPT's description), loaded with handgrad's weights through to_nanogpt; from_nanogpt and
from_huggingface_gpt2."""

import math

import numpy as np
import pytest

from handgrad import interop
from handgrad.model import GPT


def nanogpt_mirror(torch):
    """nanoGPT's model in PyTorch: ``GPT(V, B, L, H, C, bias, gelu)``; ``forward(idx, targets)``
    returns ``(logits, loss)`` (loss: mean cross-entropy, target -100 ignored)."""
    nn, fn = torch.nn, torch.nn.functional

    class CausalSelfAttention(nn.Module):
        def __init__(self, C, H, bias):
            super().__init__()
            self.c_attn, self.c_proj, self.n_head = nn.Linear(C, 3 * C, bias=bias), nn.Linear(C, C, bias=bias), H

        def forward(self, x):
            N, T, C = x.shape
            q, k, v = (z.view(N, T, self.n_head, C // self.n_head).transpose(1, 2)
                       for z in self.c_attn(x).split(C, dim=2))
            att = (q @ k.transpose(-2, -1)) / math.sqrt(C // self.n_head)
            att = att.masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), float("-inf")).softmax(dim=-1)
            return self.c_proj((att @ v).transpose(1, 2).reshape(N, T, C))

    class FlashSelfAttention(CausalSelfAttention):  # nanoGPT's path on PyTorch >= 2 (for speed)
        def forward(self, x):
            N, T, C = x.shape
            q, k, v = (z.view(N, T, self.n_head, C // self.n_head).transpose(1, 2)
                       for z in self.c_attn(x).split(C, dim=2))
            y = fn.scaled_dot_product_attention(q, k, v, is_causal=True)
            return self.c_proj(y.transpose(1, 2).reshape(N, T, C))

    class MLP(nn.Module):
        def __init__(self, C, bias, gelu):
            super().__init__()
            self.c_fc, self.gelu = nn.Linear(C, 4 * C, bias=bias), nn.GELU(approximate=gelu)
            self.c_proj = nn.Linear(4 * C, C, bias=bias)

        def forward(self, x):
            return self.c_proj(self.gelu(self.c_fc(x)))

    class Block(nn.Module):
        def __init__(self, C, H, bias, gelu, flash):
            super().__init__()
            self.ln_1, self.ln_2 = nn.LayerNorm(C, bias=bias), nn.LayerNorm(C, bias=bias)
            self.attn = (FlashSelfAttention if flash else CausalSelfAttention)(C, H, bias)
            self.mlp = MLP(C, bias, gelu)

        def forward(self, x):
            x = x + self.attn(self.ln_1(x))
            return x + self.mlp(self.ln_2(x))

    class MirrorGPT(nn.Module):
        def __init__(self, V, B, L, H, C, bias=True, gelu="none", flash=False, tied=True):
            super().__init__()
            self.transformer = nn.ModuleDict(dict(
                wte=nn.Embedding(V, C), wpe=nn.Embedding(B, C),
                h=nn.ModuleList([Block(C, H, bias, gelu, flash) for _ in range(L)]),
                ln_f=nn.LayerNorm(C, bias=bias)))
            self.lm_head = nn.Linear(C, V, bias=False)
            if tied:  # nanoGPT's; makemore.py's Transformer keeps its own lm_head
                self.lm_head.weight = self.transformer.wte.weight

        def forward(self, idx, targets=None):
            t = self.transformer
            x = t.wte(idx) + t.wpe(torch.arange(idx.shape[1]))
            for block in t.h:
                x = block(x)
            logits = self.lm_head(t.ln_f(x))
            loss = None if targets is None else fn.cross_entropy(logits.view(-1, logits.shape[-1]), targets.view(-1))
            return logits, loss

    return MirrorGPT


def randomize(gpt, seed=0):
    """Every parameter random (gains around 1): zero biases and unit gains would hide mistakes."""
    rng = np.random.default_rng(seed)
    for name, value in gpt.params.items():
        value[...] = rng.normal(1.0 if name.endswith("gamma") else 0.0, 0.3, value.shape)
    return gpt


def mirror_of(torch, gpt, flash=False):
    mirror = nanogpt_mirror(torch)(gpt.vocab_size, gpt.block_size, gpt.n_layer, gpt.n_head, gpt.n_embd,
                                   bias=gpt.bias, gelu=gpt.gelu, flash=flash, tied=gpt.tied_head)
    mirror = mirror.to(torch.float64 if gpt.dtype == np.float64 else torch.float32)
    mirror.load_state_dict({k: torch.from_numpy(v) for k, v in interop.to_nanogpt(gpt).items()})
    return mirror


CONFIGS = [  # (vocab_size, block_size, n_layer, n_head, n_embd, bias, gelu, tied_head)
    (11, 9, 1, 1, 6, True, "none", True),
    (13, 7, 2, 3, 9, False, "none", True),
    (7, 6, 2, 2, 10, True, "tanh", True),
    (5, 5, 1, 3, 3, False, "tanh", True),
    (9, 8, 2, 2, 8, True, "tanh", False),   # makemore.py's Transformer: its own lm_head
    (6, 5, 1, 1, 4, False, "none", False),
]


@pytest.mark.parametrize("V, B, L, H, C, bias, gelu, tied", CONFIGS)
def test_logits_loss_and_every_gradient_equal_nanogpt_float64(torch, V, B, L, H, C, bias, gelu, tied):
    gpt = randomize(GPT(V, B, L, H, C, bias=bias, gelu=gelu, tied_head=tied, seed=1, dtype=np.float64),
                    seed=L + H)
    rng = np.random.default_rng(3)
    idx = rng.integers(0, V, (3, B - 1))
    targets = rng.integers(0, V, (3, B - 1))
    targets[0, 2] = targets[2, 0] = -100  # ignored positions
    mirror = mirror_of(torch, gpt)

    logits = gpt.predict(idx)  # before loss/backward: a forward zeroes the layers' gradients
    loss = gpt.loss(idx, targets)
    gpt.backward()
    t_logits, t_loss = mirror(torch.from_numpy(idx), torch.from_numpy(targets))
    t_loss.backward()

    np.testing.assert_allclose(logits, t_logits.detach().numpy(), rtol=1e-9, atol=1e-12)
    assert loss == pytest.approx(t_loss.item(), rel=1e-9, abs=1e-12)
    ours = interop.to_nanogpt(gpt, grads=True)
    theirs = {name: p.grad.numpy() for name, p in mirror.named_parameters()}
    assert set(theirs) == (set(ours) - {"lm_head.weight"} if tied else set(ours))  # a tied weight is listed once
    for name, grad in theirs.items():
        np.testing.assert_allclose(ours[name], grad, rtol=1e-9, atol=1e-12, err_msg=name)


def test_float32_logits_match_nanogpt_and_flash_attention(torch):
    gpt = randomize(GPT(17, 8, 2, 2, 12, seed=0), seed=5)
    assert gpt.dtype == np.float32
    idx = np.random.default_rng(0).integers(0, 17, (4, 8))
    for flash in (False, True):
        t_logits, _ = mirror_of(torch, gpt, flash=flash)(torch.from_numpy(idx))
        np.testing.assert_allclose(gpt.predict(idx), t_logits.detach().numpy(), rtol=1e-5, atol=1e-5)


def test_from_nanogpt_reads_a_pytorch_state_dict(torch):
    gpt = randomize(GPT(9, 6, 2, 2, 8, seed=0, dtype=np.float64))
    mirror = mirror_of(torch, gpt)
    state = {k: v.numpy() for k, v in mirror.state_dict().items()}
    assert "lm_head.weight" in state
    state["transformer.h.0.attn.bias"] = np.tril(np.ones((1, 1, 6, 6)))  # nanoGPT's mask buffer: ignored
    again = interop.from_nanogpt(state, n_head=2, vocab="abcdefghi")
    assert (again.vocab_size, again.block_size, again.n_layer, again.n_embd, again.bias) == (9, 6, 2, 8, True)
    assert again.dtype == np.float64 and again.decode([0, 8]) == "ai"
    for name, value in gpt.params.items():
        np.testing.assert_array_equal(again.params[name], value, err_msg=name)
    # float32 and bias=False survive the round trip too; the compiled-model prefix is accepted.
    small = randomize(GPT(5, 4, 1, 1, 4, bias=False, seed=0))
    state = {"_orig_mod." + k: v for k, v in interop.to_nanogpt(small).items()}
    back = interop.from_nanogpt(state, n_head=1)
    assert back.bias is False and back.dtype == np.float32
    assert all(np.array_equal(back.params[k], v) for k, v in small.params.items())


def test_an_untied_head_round_trips_through_nanogpt_names(torch):
    """makemore.py's Transformer has nanoGPT's names and its own lm_head: a state dict whose
    lm_head.weight is not wte's loads as tied_head=False, with the same logits as the mirror."""
    gpt = randomize(GPT(9, 6, 2, 2, 8, gelu="tanh", tied_head=False, seed=0, dtype=np.float64))
    state = interop.to_nanogpt(gpt)
    np.testing.assert_array_equal(state["lm_head.weight"], gpt.params["lm_head.W"].T)
    assert state["lm_head.weight"] is not state["transformer.wte.weight"]
    mirror = mirror_of(torch, gpt)
    again = interop.from_nanogpt({k: v.numpy() for k, v in mirror.state_dict().items()}, n_head=2, gelu="tanh")
    assert again.tied_head is False and again.gelu == "tanh" and list(again.params) == list(gpt.params)
    for name, value in gpt.params.items():
        np.testing.assert_array_equal(again.params[name], value, err_msg=name)
    idx = np.random.default_rng(1).integers(0, 9, (2, 6))
    np.testing.assert_allclose(again.predict(idx), mirror(torch.from_numpy(idx))[0].detach().numpy(),
                               rtol=1e-12, atol=1e-12)
    # A tied model's state stays tied: the same array under both names, loaded back as tied.
    tied = interop.to_nanogpt(randomize(GPT(9, 6, 1, 2, 8, seed=0)))
    assert interop.from_nanogpt(tied, n_head=2).tied_head is True


def test_to_nanogpt_layouts_and_tied_head():
    gpt = randomize(GPT(7, 5, 1, 2, 4, seed=0))
    state = interop.to_nanogpt(gpt)
    assert state["transformer.h.0.attn.c_attn.weight"].shape == (12, 4)
    np.testing.assert_array_equal(state["transformer.h.0.attn.c_attn.weight"], gpt.params["h.0.attn.W_qkv"].T)
    np.testing.assert_array_equal(state["transformer.h.0.mlp.c_proj.weight"], gpt.params["h.0.mlp.c_proj.W"].T)
    assert state["lm_head.weight"] is state["transformer.wte.weight"]
    assert state["transformer.wte.weight"] is not gpt.params["wte.W"]  # a copy, not the model's array
    assert not any(k.endswith("bias") for k in interop.to_nanogpt(GPT(7, 5, 1, 2, 4, bias=False)))


def test_from_nanogpt_errors_name_the_key():
    state = interop.to_nanogpt(GPT(7, 5, 2, 2, 4, seed=0))
    bad = dict(state)
    bad["transformer.h.1.mlp.c_fc.weight"] = np.zeros((16, 5), np.float32)
    with pytest.raises(ValueError, match=r"transformer\.h\.1\.mlp\.c_fc\.weight has shape \(16, 5\)"):
        interop.from_nanogpt(bad, n_head=2)
    bad = {k: v for k, v in state.items() if k != "transformer.h.0.ln_2.weight"}
    with pytest.raises(ValueError, match=r"missing 'transformer\.h\.0\.ln_2\.weight'"):
        interop.from_nanogpt(bad, n_head=2)
    with pytest.raises(ValueError, match=r"unexpected keys \['transformer\.h\.0\.attn\.rotary'\]"):
        interop.from_nanogpt({**state, "transformer.h.0.attn.rotary": np.zeros(3, np.float32)}, n_head=2)
    bad = dict(state, **{"lm_head.weight": np.zeros((7, 5), np.float32)})
    with pytest.raises(ValueError, match=r"lm_head\.weight has shape \(7, 5\), expected \(7, 4\)"):
        interop.from_nanogpt(bad, n_head=2)
    with pytest.raises(ValueError, match="n_head must be a positive integer dividing n_embd = 4"):
        interop.from_nanogpt(state, n_head=3)
    bad = dict(state, **{"transformer.ln_f.weight": state["transformer.ln_f.weight"].astype(np.float64)})
    with pytest.raises(TypeError, match="transformer.ln_f.weight has dtype float64"):
        interop.from_nanogpt(bad, n_head=2)
    with pytest.raises(ValueError, match="no 'transformer.wpe.weight'"):
        interop.from_nanogpt({"transformer.wte.weight": state["transformer.wte.weight"]}, n_head=2)
    with pytest.raises(TypeError, match="expected a handgrad GPT"):
        interop.to_nanogpt(object())


def test_from_huggingface_gpt2_logits_match_transformers(torch, tmp_path):
    transformers = pytest.importorskip("transformers", reason="transformers is a test-only dependency, "
                                                              "not installed here")
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=31, n_positions=12, n_embd=24, n_layer=2, n_head=3,
                                     layer_norm_epsilon=1e-6, activation_function="gelu_new")
    model = transformers.GPT2LMHeadModel(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))  # biases and gains away from 0 and 1
    model.save_pretrained(tmp_path, safe_serialization=True)
    gpt = interop.from_huggingface_gpt2(tmp_path)
    assert (gpt.gelu, gpt.eps, gpt.n_head, gpt.block_size) == ("tanh", 1e-6, 3, 12)
    idx = np.random.default_rng(0).integers(0, 31, (2, 12))
    with torch.no_grad():
        expected = model(torch.from_numpy(idx)).logits.numpy()
    np.testing.assert_allclose(gpt.predict(idx), expected, rtol=1e-5, atol=1e-5)


def test_from_huggingface_gpt2_without_prefix_and_refusals(tmp_path):
    import json

    from handgrad.serialize import write_safetensors

    gpt = randomize(GPT(6, 4, 1, 2, 4, gelu="tanh", seed=0))
    # GPT2Model's names: no "transformer." prefix, Conv1D (in, out) layouts = handgrad's.
    tensors = {k.removeprefix("transformer."): (v.T.copy() if k.endswith(("c_attn.weight", "c_proj.weight",
                                                                            "c_fc.weight")) else v)
               for k, v in interop.to_nanogpt(gpt).items() if k != "lm_head.weight"}
    write_safetensors(tmp_path / "model.safetensors", tensors)
    (tmp_path / "config.json").write_text(json.dumps({"n_head": 2, "n_positions": 4, "layer_norm_epsilon": 1e-5,
                                                      "activation_function": "gelu_new"}))
    back = interop.from_huggingface_gpt2(tmp_path)
    idx = np.array([[1, 2, 3, 4]])
    np.testing.assert_allclose(back.predict(idx), gpt.predict(idx), rtol=1e-6, atol=1e-6)
    (tmp_path / "config.json").write_text(json.dumps({"n_head": 2, "activation_function": "relu"}))
    with pytest.raises(ValueError, match="activation_function 'relu' is not supported"):
        interop.from_huggingface_gpt2(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"n_head": 2, "scale_attn_by_inverse_layer_idx": True}))
    with pytest.raises(ValueError, match="attention scaling"):
        interop.from_huggingface_gpt2(tmp_path)
    with pytest.raises(FileNotFoundError, match="no config.json"):
        interop.from_huggingface_gpt2(tmp_path / "nowhere")


def test_a_hf_checkpoint_whose_lm_head_differs_from_wte_is_refused(tmp_path):
    """GPT-2 ties its output layer: an lm_head.weight that differs is a different model."""
    gpt = randomize(GPT(6, 4, 1, 2, 4, gelu="tanh", seed=0))
    tensors = {k.removeprefix("transformer."): (v.T.copy() if k.endswith(("c_attn.weight", "c_proj.weight",
                                                                            "c_fc.weight")) else v)
               for k, v in interop.to_nanogpt(gpt).items()}
    tensors["lm_head.weight"] = tensors["wte.weight"] + 1
    folder = hf_checkpoint(tmp_path / "untied", {"n_head": 2, "activation_function": "gelu_new"}, tensors)
    with pytest.raises(ValueError, match="lm_head.weight differs from wte.weight; a GPT-2 checkpoint ties"):
        interop.from_huggingface_gpt2(folder)


# --- issue 22: a Hugging Face checkpoint is checked before anything is allocated --------------------


def hf_checkpoint(folder, config, tensors=None):
    """A GPT2Model-style checkpoint (no prefix, Conv1D layouts) of a small random GPT in ``folder``."""
    import json

    from handgrad.serialize import write_safetensors

    if tensors is None:
        gpt = randomize(GPT(6, 4, 1, 2, 4, gelu="tanh", seed=0))
        tensors = {k.removeprefix("transformer."): (v.T.copy() if k.endswith(("c_attn.weight", "c_proj.weight",
                                                                                "c_fc.weight")) else v)
                   for k, v in interop.to_nanogpt(gpt).items() if k != "lm_head.weight"}
    folder.mkdir(exist_ok=True)
    write_safetensors(folder / "model.safetensors", tensors)
    (folder / "config.json").write_text(config if isinstance(config, str) else json.dumps(config))
    return folder


@pytest.mark.parametrize("n_layer, every_key, expected", [
    (8, True, "h.0.ln_1.weight has shape (0,), expected (2048,)"),
    (2000, False, "missing 'h.0.ln_1.bias'"),
    (10_001, False, "n_layer must be a positive integer <= 10000, got 10001"),
])
def test_a_crafted_hf_checkpoint_is_refused_before_allocating(tmp_path, n_layer, every_key, expected):
    """A 33 KB file took 1.5 GiB and 5 s before it was refused (blocks of width 2048 whose
    tensors are empty); another asked for ~400 GB (2000 blocks, each announced by one key)."""
    import time
    import tracemalloc

    C = 2048
    tensors = {"wte.weight": np.zeros((1, C), np.float32), "wpe.weight": np.zeros((1, C), np.float32),
               "ln_f.weight": np.zeros(C, np.float32), "ln_f.bias": np.zeros(C, np.float32)}
    names = [theirs for theirs, _, _ in interop._layout(n_layer, True, "") if theirs.startswith("h.")]
    tensors.update({name: np.zeros(0, np.float32) for name in names if every_key or name.endswith(".ln_1.weight")})
    folder = hf_checkpoint(tmp_path / "crafted", {"n_head": 1}, tensors)
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(ValueError) as info:
            interop.from_huggingface_gpt2(folder)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - started < 5.0
    # Python's bookkeeping of 2000 blocks' names takes ~12 MiB; the model asked for 1.5 GiB / 400 GB.
    assert peak < 32 * 2 ** 20, f"{peak / 2 ** 20:.0f} MiB for a {(folder / 'model.safetensors').stat().st_size} B file"
    message = str(info.value)
    assert "\n" not in message and str(folder / "model.safetensors") in message
    assert expected in message, message


def test_a_state_dict_with_a_wrong_shape_is_refused_before_the_model_is_built(monkeypatch):
    state = interop.to_nanogpt(GPT(6, 4, 1, 2, 4, seed=0))
    state["transformer.h.0.mlp.c_fc.weight"] = np.zeros((5, 4), np.float32)

    def no_model(*args, **kwargs):
        raise AssertionError("the GPT was built before every shape was checked")

    monkeypatch.setattr(interop, "GPT", type("NoGPT", (), {"__new__": no_model, "param_shapes": GPT.param_shapes}))
    with pytest.raises(ValueError, match=r"transformer.h.0.mlp.c_fc.weight has shape \(5, 4\), expected \(16, 4\)"):
        interop.from_nanogpt(state, n_head=2)


def test_weights_that_are_not_finite_are_refused_by_from_nanogpt():
    state = interop.to_nanogpt(GPT(6, 4, 1, 2, 4, seed=0))
    state["transformer.h.0.attn.c_proj.bias"] = np.full(4, np.nan, np.float32)
    with pytest.raises(ValueError, match=r"from_nanogpt: transformer.h.0.attn.c_proj.bias holds NaN or infinite"):
        interop.from_nanogpt(state, n_head=2)


@pytest.mark.parametrize("config, fragments", [
    ("[1, 2]", ["expected a JSON object of settings, got a list"]),
    ('"gpt2"', ["expected a JSON object of settings, got a str"]),
    ("{'n_head': 2", ["config is not valid JSON"]),
    ({"n_head": 2, "activation_function": ["gelu"]},
     ["activation_function ['gelu'] (a list, where a string is needed) is not supported"]),
    ({"n_head": 2, "n_positions": "32"}, [("n_positions must be a positive integer, got '32' (a str, where an "
                                           "integer is needed)")]),
    ({"n_head": 2, "layer_norm_epsilon": 1e10}, ["layer_norm_epsilon must be > 0 and < 1, got 10000000000.0"]),
    ({"n_head": 2, "layer_norm_epsilon": True}, ["layer_norm_epsilon must be > 0 and < 1, got True (a bool"]),
    ({"n_head": "2"}, ["n_head must be a positive integer, got '2' (a str"]),
    ({"n_positions": 4}, ["n_head is missing"]),
    ({"n_head": 2, "scale_attn_weights": "yes"}, ["scale_attn_weights must be true or false, got 'yes'"]),
    ({"n_head": 2, "n_positions": 32}, ["n_positions is 32, but wpe.weight has 4 rows"]),
    ({"n_head": 2, "n_layer": 3}, ["n_layer is 3, but the weights have 1 blocks"]),
])
def test_a_malformed_hf_config_is_one_line_naming_the_file_and_the_key(tmp_path, config, fragments):
    """A config.json that was a list, a string, invalid JSON or had activation_function: ["gelu"]
    gave a traceback; n_positions "32" said "config says 32 positions, wpe has 32"."""
    from handgrad.serialize import SerializationError

    folder = hf_checkpoint(tmp_path / "hf", config)
    with pytest.raises(SerializationError) as info:
        interop.from_huggingface_gpt2(folder)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{folder / 'config.json'}: "), message
    for fragment in fragments:
        assert fragment in message, message


def test_a_hf_config_that_agrees_with_the_weights_loads(tmp_path):
    folder = hf_checkpoint(tmp_path / "hf", {"n_head": 2, "n_positions": 4, "n_embd": 4, "n_layer": 1,
                                             "vocab_size": 6, "layer_norm_epsilon": 1e-6,
                                             "activation_function": "gelu_pytorch_tanh", "scale_attn_weights": True})
    gpt = interop.from_huggingface_gpt2(folder)
    assert (gpt.eps, gpt.gelu, gpt.n_layer, gpt.block_size) == (1e-6, "tanh", 1, 4)
