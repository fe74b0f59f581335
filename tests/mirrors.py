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
                                            model.n_embd, bias=model.bias, gelu="tanh", tied=model.tied_head)
            if model.dtype == np.float64:
                self.net = self.net.double()
            self.net.load_state_dict({k: torch.from_numpy(v) for k, v in hg.interop.to_nanogpt(model).items()})
            return
        tensor = lambda key: torch.nn.Parameter(torch.from_numpy(model.params[key].copy()))  # noqa: E731
        kinds = [type(layer).__name__ for layer in model.layers]
        self.by_path = kinds[0] == "PreviousTokens" or kinds[1:2] == ["PositionEmbedding"]
        if self.by_path:  # makemore.py's MLP or BoW: parameters keyed as handgrad's ("1.W")
            self.kind, self.recurrent = kinds[0], None
            self.params = {key: tensor(key) for key in model.params}
            if self.kind == "PreviousTokens":
                self.block_size, self.blank = model.layers[0].block_size, model.layers[0].blank
            return
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
        if self.by_path:
            return self._mlp(torch.from_numpy(x)) if self.kind == "PreviousTokens" else self._bow(torch.from_numpy(x))
        h = self.params["table"][torch.from_numpy(x)]
        if self.recurrent is None:
            return h
        return self.recurrent(h)[0] @ self.params["W"] + self.params["b"]

    def _mlp(self, idx):
        """makemore.py's ``MLP.forward``, as it is written: the embeddings of the current id and
        of ``block_size - 1`` ids back (``torch.roll``, the blank id rolled in), concatenated."""
        torch, p = self.torch, self.params
        embs = []
        for _ in range(self.block_size):
            embs.append(p["1.W"][idx])
            idx = torch.roll(idx, 1, 1)
            idx[:, 0] = self.blank
        h = torch.tanh(torch.cat(embs, -1) @ p["3.W"] + p["3.b"])
        return h @ p["5.W"] + p["5.b"]

    def _bow(self, idx):
        """makemore.py's ``BoW.forward``: token + position embeddings, ``x + CausalBoW(x)`` (a
        softmax of zeros over a causal mask), ``x + MLP(x)``, the head."""
        torch, p = self.torch, self.params
        steps = idx.shape[1]
        x = p["0.W"][idx] + p["1.W"][:steps]
        allowed = torch.tril(torch.ones(steps, steps, dtype=torch.bool))
        att = torch.zeros((idx.shape[0], steps, steps), dtype=x.dtype).masked_fill(~allowed, float("-inf"))
        x = x + torch.softmax(att, dim=-1) @ x
        x = x + torch.tanh(x @ p["3.body.0.W"] + p["3.body.0.b"]) @ p["3.body.2.W"] + p["3.body.2.b"]
        return x @ p["4.W"] + p["4.b"]
