"""Optimizers against torch.optim: several steps on the same parameters and gradients."""

import numpy as np
import pytest

from handgrad import optim

# float64 agrees with torch.optim to the last few bits; 1e-12 would catch a misplaced eps (1e-8)
# or a bias correction off by one step. float32 rounds each step's arithmetic at about 6e-8.
TOLERANCE = {np.float64: 1e-12, np.float32: 1e-6}

CASES = [
    (optim.SGD, dict(lr=0.1), "SGD", dict(lr=0.1)),
    (optim.SGD, dict(lr=0.1, weight_decay=0.01), "SGD", dict(lr=0.1, weight_decay=0.01)),
    (optim.SGD, dict(lr=0.05, momentum=0.8, dampening=0.1), "SGD", dict(lr=0.05, momentum=0.8, dampening=0.1)),
    (optim.Momentum, dict(lr=0.05), "SGD", dict(lr=0.05, momentum=0.9)),
    (optim.Nesterov, dict(lr=0.05, weight_decay=0.1), "SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.1)),
    (optim.AdaGrad, dict(lr=0.1), "Adagrad", dict(lr=0.1)),
    (optim.AdaGrad, dict(lr=0.1, lr_decay=0.01, weight_decay=0.01, initial_accumulator_value=0.1),
     "Adagrad", dict(lr=0.1, lr_decay=0.01, weight_decay=0.01, initial_accumulator_value=0.1)),
    (optim.RMSprop, dict(lr=0.01), "RMSprop", dict(lr=0.01)),
    (optim.RMSprop, dict(lr=0.01, alpha=0.9, momentum=0.5, centered=True, weight_decay=0.01),
     "RMSprop", dict(lr=0.01, alpha=0.9, momentum=0.5, centered=True, weight_decay=0.01)),
    (optim.Adam, dict(lr=0.01), "Adam", dict(lr=0.01)),
    (optim.Adam, dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1),
     "Adam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    (optim.AdamW, dict(lr=0.01), "AdamW", dict(lr=0.01)),
    (optim.AdamW, dict(lr=0.01, weight_decay=0.5), "AdamW", dict(lr=0.01, weight_decay=0.5)),
]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("ours, our_kwargs, theirs, their_kwargs", CASES,
                         ids=[f"{c[0].__name__}-{i}" for i, c in enumerate(CASES)])
def test_matches_torch_over_several_steps(torch, ours, our_kwargs, theirs, their_kwargs, dtype):
    rng = np.random.default_rng(0)
    params = {"0.W": rng.standard_normal((4, 3)).astype(dtype), "0.b": rng.standard_normal(3).astype(dtype)}
    torch_params = {k: torch.tensor(v.copy(), requires_grad=True) for k, v in params.items()}
    opt, torch_opt = ours(**our_kwargs), getattr(torch.optim, theirs)(list(torch_params.values()), **their_kwargs)
    for _ in range(7):
        grads = {k: rng.standard_normal(v.shape).astype(dtype) for k, v in params.items()}
        opt.update(params, grads)
        for k, p in torch_params.items():
            p.grad = torch.from_numpy(grads[k].copy())
        torch_opt.step()
    for k in params:
        assert params[k].dtype == dtype
        np.testing.assert_allclose(params[k], torch_params[k].detach().numpy(), rtol=TOLERANCE[dtype],
                                   atol=TOLERANCE[dtype], err_msg=k)


@pytest.mark.parametrize("schedule, kwargs, torch_schedule", [
    (optim.StepLR, dict(step_size=3, gamma=0.5), "StepLR"),
    (optim.CosineAnnealingLR, dict(T_max=10, eta_min=0.001), "CosineAnnealingLR"),
])
def test_schedules_match_torch(torch, schedule, kwargs, torch_schedule):
    opt = optim.SGD(lr=0.1)
    torch_opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    ours, theirs = schedule(opt, **kwargs), getattr(torch.optim.lr_scheduler, torch_schedule)(torch_opt, **kwargs)
    for _ in range(10):
        torch_opt.step()
        theirs.step()
        assert ours.step() == pytest.approx(torch_opt.param_groups[0]["lr"], rel=1e-12, abs=1e-15)


def test_update_is_in_place_and_state_round_trips():
    params = {"w": np.ones(3)}
    alias = params["w"]
    opt = optim.Adam(lr=0.1)
    opt.update(params, {"w": np.ones(3)})
    assert params["w"] is alias and np.all(alias < 1)
    clone = optim.Adam(lr=0.1)
    clone.load_state_dict(opt.state_dict())
    a, b = {"w": alias.copy()}, {"w": alias.copy()}
    opt.update(a, {"w": np.full(3, 0.5)})
    clone.update(b, {"w": np.full(3, 0.5)})
    np.testing.assert_array_equal(a["w"], b["w"])


def test_bad_arguments_are_refused_clearly():
    with pytest.raises(ValueError, match="lr must be a finite number >= 0"):
        optim.SGD(lr=-1)
    for rate in (np.inf, np.nan):  # `--lr inf` printed NumPy RuntimeWarnings before its one-line error
        with pytest.raises(ValueError, match="lr must be a finite number >= 0"):
            optim.Adam(lr=rate)
        with pytest.raises(ValueError, match="weight_decay must be a finite number >= 0"):
            optim.AdamW(lr=1e-3, weight_decay=rate)
    with pytest.raises(ValueError, match="nesterov=True needs momentum > 0"):
        optim.SGD(lr=0.1, nesterov=True)
    with pytest.raises(KeyError, match="different keys"):
        optim.SGD().update({"a": np.ones(1)}, {"b": np.ones(1)})
    with pytest.raises(ValueError, match=r"gradient 'a' has shape \(2,\), parameter has \(1,\)"):
        optim.SGD().update({"a": np.ones(1)}, {"a": np.ones(2)})


def _per_parameter(opt, params, grads):
    """The step parameter by parameter (``_update_one``), as before the flat buffers."""
    opt.step_count += 1
    for name, param in params.items():
        opt._update_one(name, param, grads[name], opt.state.setdefault(name, {}))


@pytest.mark.parametrize("make", [
    lambda: optim.Adam(lr=0.01),
    lambda: optim.Adam(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1),
    lambda: optim.AdamW(lr=0.01, weight_decay=0.5),
    lambda: optim.AdamW(lr=0.01, weight_decay=0.5, matrices_only=True),
], ids=["Adam", "Adam-L2", "AdamW", "AdamW-matrices-only"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adam_over_flat_buffers_equals_the_step_parameter_by_parameter(make, dtype):
    """update() runs Adam once over all parameters end to end; every value sees the same
    operations in the same order as one parameter at a time, so the result is the same bit for
    bit (one machine, one run). The state keeps one (views of the buffers) per parameter name; a
    loaded state, a copy and a new set of parameters each get buffers of their own."""
    import copy

    rng = np.random.default_rng(3)
    shapes = {"0.W": (4, 3), "0.b": (3,), "1.gamma": (5,), "2.W": (2, 3, 2), "3.W": (130, 128)}  # 3.W: on its own
    flat_params = {k: rng.standard_normal(s).astype(dtype) for k, s in shapes.items()}
    one_params = {k: v.copy() for k, v in flat_params.items()}
    flat_opt, one_opt = make(), make()
    for step in range(9):
        grads = {k: rng.standard_normal(s).astype(dtype) for k, s in shapes.items()}
        if step == 3:  # a state saved and loaded: copied into new buffers
            reloaded = make()
            reloaded.load_state_dict(flat_opt.state_dict())
            flat_opt = reloaded
        if step == 5:  # a deep copy: its own buffers, not the original's
            original, flat_opt = flat_opt, copy.deepcopy(flat_opt)
        flat_opt.update(flat_params, grads)
        _per_parameter(one_opt, one_params, grads)
        for k in shapes:
            np.testing.assert_array_equal(flat_params[k], one_params[k], err_msg=f"step {step}, {k}")
            np.testing.assert_array_equal(flat_opt.state[k]["exp_avg"], one_opt.state[k]["exp_avg"])
            assert flat_opt.state[k]["exp_avg_sq"].shape == shapes[k]
    assert original.step_count == 5 and flat_opt.step_count == 9  # the copy stepped alone
    assert not np.array_equal(original.state["0.W"]["exp_avg"], flat_opt.state["0.W"]["exp_avg"])
    # A new parameter joins (fine-tuning a grown model): the others keep their moments.
    flat_params["3.b"], one_params["3.b"] = np.ones(2, dtype), np.ones(2, dtype)
    grads = {k: np.full(v.shape, 0.25, dtype) for k, v in flat_params.items()}
    flat_opt.update(flat_params, grads)
    _per_parameter(one_opt, one_params, grads)
    for k in flat_params:
        np.testing.assert_array_equal(flat_params[k], one_params[k], err_msg=k)
    assert "_flat" not in repr(flat_opt)


def test_adam_with_parameters_of_two_precisions_steps_each_in_its_own():
    params = {"a": np.ones(3, np.float32), "b": np.ones(2, np.float64)}
    opt = optim.AdamW(lr=0.1)
    opt.update(params, {"a": np.ones(3, np.float32), "b": np.ones(2, np.float64)})
    assert params["a"].dtype == np.float32 and params["b"].dtype == np.float64
    np.testing.assert_allclose(params["a"], params["b"][0], rtol=1e-6)
    assert np.all(params["a"] < 1)


@pytest.mark.parametrize("make", [lambda: optim.SGD(lr=0.1), lambda: optim.AdamW(lr=0.1)], ids=["SGD", "AdamW"])
def test_a_refused_step_updates_nothing(make):
    """A gradient of the wrong shape after a right one: SGD had updated the first parameter
    before refusing the second; every optimizer now checks all pairs first."""
    params = {"a": np.ones(3), "b": np.ones(2)}
    opt = make()
    with pytest.raises(ValueError, match=r"gradient 'b' has shape \(3,\), parameter has \(2,\)"):
        opt.update(params, {"a": np.ones(3), "b": np.ones(3)})
    np.testing.assert_array_equal(params["a"], np.ones(3))
    assert opt.step_count == 0
