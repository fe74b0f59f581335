"""PyTorch mirrors of handgrad's makemore models, shared by tests/test_makemore.py (parity in
float64) and benchmarks/makemore.py (the same training, side by side)."""

from __future__ import annotations

import numpy as np


class ContextsMirror:
    """Zero to Hero's models in PyTorch, from a handgrad Sequential's layers and weights."""

    def __init__(self, torch, model) -> None:
        self.torch, self.layers = torch, model.layers
        self.params = {k: torch.nn.Parameter(torch.from_numpy(v.copy())) for k, v in model.params.items()}
        self.buffers = {k: torch.from_numpy(v.copy()) for k, v in model.buffers.items()}
        self.training = True

    def parameters(self):
        return list(self.params.values())

    def logits(self, x):
        torch, p = self.torch, self.params
        h = p["0.W"][torch.from_numpy(x)]
        for i, layer in enumerate(self.layers[1:], 1):
            kind = type(layer).__name__
            if kind == "Reshape":
                h = h.reshape(len(h), -1)
            elif kind == "FlattenConsecutive":
                B, T, C = h.shape
                h = h.reshape(B, T // 2, C * 2)
                h = h.squeeze(1) if h.shape[1] == 1 else h
            elif kind == "Affine":
                h = h @ p[f"{i}.W"] + p[f"{i}.b"]
            elif kind == "BatchNorm":
                z = h if h.ndim == 2 else h.transpose(1, 2)
                z = torch.nn.functional.batch_norm(z, self.buffers[f"{i}.running_mean"], self.buffers[f"{i}.running_var"],
                                                   p[f"{i}.gamma"], p[f"{i}.beta"], training=self.training,
                                                   momentum=layer.momentum, eps=layer.eps)
                h = z if h.ndim == 2 else z.transpose(1, 2)
            elif kind == "Tanh":
                h = torch.tanh(h)
            else:
                raise SystemExit(f"no mirror for {kind}")
        return h


class SequencesMirror:
    """makemore's models of whole words in PyTorch, with a handgrad model's weights: the bigram
    table; Embedding, ``nn.RNN`` (tanh; its second bias frozen at 0, handgrad's RNN having one)
    or ``nn.GRU``, Linear; or, for a GPT, tests/test_interop.py's nanoGPT mirror."""

    def __init__(self, torch, model) -> None:
        import handgrad as hg

        self.torch, self.training, self.net = torch, True, None
        if isinstance(model, hg.model.GPT):
            from test_interop import nanogpt_mirror

            self.net = nanogpt_mirror(torch)(model.vocab_size, model.block_size, model.n_layer, model.n_head,
                                            model.n_embd, bias=model.bias, gelu="tanh")
            if model.dtype == np.float64:
                self.net = self.net.double()
            self.net.load_state_dict({k: torch.from_numpy(v) for k, v in hg.interop.to_nanogpt(model).items()})
            return
        tensor = lambda key: torch.nn.Parameter(torch.from_numpy(model.params[key].copy()))  # noqa: E731
        self.params = {"table": tensor("0.W")}
        self.recurrent = None
        if len(model.layers) == 3:
            cell = model.layers[1]
            kind = type(cell).__name__
            D, H = cell.params["Wx"].shape[0], cell.params["Wh"].shape[0]
            self.recurrent = (torch.nn.RNN if kind == "RNN" else torch.nn.GRU)(D, H, batch_first=True,
                                                                              dtype=self.params["table"].dtype)
            with torch.no_grad():
                self.recurrent.weight_ih_l0.copy_(torch.from_numpy(cell.params["Wx"].T.copy()))
                self.recurrent.weight_hh_l0.copy_(torch.from_numpy(cell.params["Wh"].T.copy()))
                if kind == "RNN":
                    self.recurrent.bias_ih_l0.copy_(torch.from_numpy(cell.params["b"]))
                    self.recurrent.bias_hh_l0.zero_()
                else:
                    self.recurrent.bias_ih_l0.copy_(torch.from_numpy(cell.params["bx"]))
                    self.recurrent.bias_hh_l0.copy_(torch.from_numpy(cell.params["bh"]))
            if kind == "RNN":
                self.recurrent.bias_hh_l0.requires_grad_(False)
            self.params |= {"W": tensor("2.W"), "b": tensor("2.b")}

    def parameters(self):
        if self.net is not None:
            return list(self.net.parameters())
        extra = [p for p in self.recurrent.parameters() if p.requires_grad] if self.recurrent is not None else []
        return list(self.params.values()) + extra

    def logits(self, x):
        torch = self.torch
        if self.net is not None:
            self.net.train(self.training)
            return self.net(torch.from_numpy(x))[0]
        h = self.params["table"][torch.from_numpy(x)]
        if self.recurrent is None:
            return h
        return self.recurrent(h)[0] @ self.params["W"] + self.params["b"]
