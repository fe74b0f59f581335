"""Values against PyTorch: the functions softmax, log_softmax and cross_entropy, in both
precisions. The layers against PyTorch: every row of the table of layer cases in
tests/test_layer_cases.py, and each layer's own parity tests in tests/layers/.

Tolerances: 1e-10 in float64, 1e-5 in float32 (relative, with a matching absolute floor).
"""

import numpy as np
import pytest
from helpers import DTYPES, close, targets

from handgrad import functions as F

# Every test takes the `torch` fixture (tests/conftest.py): it skips without PyTorch, and fails
# instead under HANDGRAD_REQUIRE_TORCH=1 (CI), so that a broken install cannot pass for green.


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", range(5))
def test_softmax_and_log_softmax(torch, dtype, seed):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((7, 5)) * 10).astype(dtype)
    close(F.softmax(x), torch.softmax(torch.from_numpy(x), dim=-1), dtype)
    close(F.log_softmax(x), torch.log_softmax(torch.from_numpy(x), dim=-1), dtype)
    close(F.softmax(x, axis=0), torch.softmax(torch.from_numpy(x), dim=0), dtype)
    big = np.array([[1000.0, 1010.0, -1000.0]], dtype=dtype)
    close(F.log_softmax(big), torch.log_softmax(torch.from_numpy(big), dim=-1), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.1, 1.0])
@pytest.mark.parametrize("kind", ["index", "one_hot", "soft"])
def test_cross_entropy(torch, dtype, reduction, label_smoothing, kind):
    rng = np.random.default_rng(7)
    logits = (3 * rng.standard_normal((6, 4))).astype(dtype)
    t, t_torch = targets(torch, kind, rng.integers(0, 4, 6), 4, rng, dtype)
    ours = F.cross_entropy(logits, t, reduction=reduction, label_smoothing=label_smoothing)
    theirs = torch.nn.functional.cross_entropy(torch.from_numpy(logits), t_torch, reduction=reduction, label_smoothing=label_smoothing)
    close(ours, theirs, dtype)


@pytest.mark.parametrize("label_smoothing", [0.0, 0.3])
def test_cross_entropy_one_unbatched_sample(torch, label_smoothing):
    logits = np.array([0.5, -1.0, 2.0])
    ours = F.cross_entropy(logits, 1, label_smoothing=label_smoothing)
    theirs = torch.nn.functional.cross_entropy(torch.from_numpy(logits), torch.tensor(1), label_smoothing=label_smoothing)
    close(ours, theirs, np.float64)
