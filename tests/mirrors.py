"""PyTorch mirrors of handgrad's makemore models, shared by tests/test_makemore.py (parity in
float64) and benchmarks/makemore.py (the same training, side by side)."""

from __future__ import annotations


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
