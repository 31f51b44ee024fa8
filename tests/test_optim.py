"""optim: SGD and Adam step for step beside torch.optim, dtype kept, in-place updates, argument checks."""

import numpy as np
import pytest

from tinygrad_conv import Tensor, nn, optim

STEPS = 6


def problem():
    """A small least-squares problem: W (3, 4), b (3,), mean squared error of x·Wᵀ + b against targets."""
    rng = np.random.default_rng(0)
    return rng.standard_normal((3, 4)), rng.standard_normal(3), rng.standard_normal((5, 4)), rng.standard_normal((5, 3))


def run_ours(make_optimizer):
    weight, bias, x, target = problem()
    params = [nn.Parameter(weight, dtype=np.float64), nn.Parameter(bias, dtype=np.float64)]
    optimizer = make_optimizer(params)
    history = []
    for _ in range(STEPS):
        optimizer.zero_grad()
        residual = Tensor(x) @ params[0].T + params[1] - Tensor(target)
        (residual * residual).mean().backward()
        optimizer.step()
        history.append([p.data.copy() for p in params])
    return history


def run_torch(torch, make_optimizer):
    weight, bias, x, target = problem()
    params = [torch.tensor(weight, requires_grad=True), torch.tensor(bias, requires_grad=True)]
    optimizer = make_optimizer(params)
    history = []
    for _ in range(STEPS):
        optimizer.zero_grad()
        residual = torch.from_numpy(x) @ params[0].T + params[1] - torch.from_numpy(target)
        (residual * residual).mean().backward()
        optimizer.step()
        history.append([p.detach().numpy().copy() for p in params])
    return history


@pytest.mark.parametrize(
    ("name", "kwargs"),
    [
        ("SGD", dict(lr=0.1)),
        ("SGD", dict(lr=0.1, momentum=0.9)),
        ("SGD", dict(lr=0.05, momentum=0.8, dampening=0.3)),
        ("SGD", dict(lr=0.1, momentum=0.9, nesterov=True)),
        ("SGD", dict(lr=0.1, weight_decay=0.2)),
        ("SGD", dict(lr=0.1, momentum=0.5, weight_decay=0.1, nesterov=True)),
        ("Adam", dict(lr=0.1)),
        ("Adam", dict(lr=0.05, betas=(0.8, 0.99), eps=1e-6)),
        ("Adam", dict(lr=0.1, weight_decay=0.3)),
    ],
)
def test_steps_match_torch_optim(torch, name, kwargs):
    ours = run_ours(lambda params: getattr(optim, name)(params, **kwargs))
    theirs = run_torch(torch, lambda params: getattr(torch.optim, name)(params, **kwargs))
    for step, (mine, reference) in enumerate(zip(ours, theirs), start=1):
        for a, b in zip(mine, reference):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12, err_msg=f"after step {step}")
    assert not np.allclose(ours[-1][0], problem()[0])  # the parameters did move


@pytest.mark.parametrize(
    "make",
    [
        lambda params: optim.SGD(params, lr=np.float64(0.1), momentum=0.9, weight_decay=np.float64(0.01)),
        lambda params: optim.SGD(params, lr=0.1, momentum=0.9, nesterov=True),
        lambda params: optim.Adam(params, lr=np.float64(0.01), weight_decay=0.01),
    ],
)
def test_float32_parameters_and_state_stay_float32_and_are_updated_in_place(make):
    model = nn.Linear(4, 3, rng=0)
    optimizer = make(model.parameters())  # a generator is fine
    arrays = [p.data for p in model.parameters()]
    x = Tensor(np.ones((2, 4), np.float32))
    for _ in range(3):
        optimizer.zero_grad()
        (model(x) * model(x)).sum().backward()
        optimizer.step()
    for param, array in zip(model.parameters(), arrays):
        assert param.data is array and param.dtype == np.float32
        for value in optimizer.state[param].values():
            if isinstance(value, np.ndarray):
                assert value.dtype == np.float32
    assert optimizer.state[model.weight]


def test_parameters_without_a_grad_are_skipped():
    used, unused = nn.Parameter([1.0, 2.0]), nn.Parameter([3.0])
    optimizer = optim.Adam([used, unused], lr=0.1)
    (used * used).sum().backward()
    optimizer.step()
    assert np.array_equal(unused.data, [3.0]) and optimizer.state[unused] == {}
    assert not np.array_equal(used.data, [1.0, 2.0]) and optimizer.state[used]["step"] == 1


def test_step_does_not_change_the_gradient():
    param = nn.Parameter([1.0, -2.0])
    optimizer = optim.SGD([param], lr=0.1, momentum=0.9, weight_decay=0.5)
    (param * param).sum().backward()
    grad = param.grad.copy()
    optimizer.step()
    optimizer.step()
    assert np.array_equal(param.grad, grad)


def test_zero_grad_sets_grads_to_none():
    param = nn.Parameter([1.0])
    optimizer = optim.SGD([param], lr=0.1)
    (param * 3).sum().backward()
    optimizer.zero_grad()
    assert param.grad is None


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda p: optim.SGD(p, lr=0), ValueError, "lr must be a finite number > 0, got 0"),
        (lambda p: optim.SGD(p, lr=-0.1), ValueError, "lr .*-0.1"),
        (lambda p: optim.Adam(p, lr=float("nan")), ValueError, "lr .*nan"),
        (lambda p: optim.Adam(p, lr=float("inf")), ValueError, "lr .*inf"),
        (lambda p: optim.SGD(p, lr="0.1"), TypeError, "lr"),
        (lambda p: optim.SGD(p, lr=0.1, momentum=-0.9), ValueError, "momentum .*-0.9"),
        (lambda p: optim.SGD(p, lr=0.1, weight_decay=-1), ValueError, "weight_decay"),
        (lambda p: optim.SGD(p, lr=0.1, nesterov=True), ValueError, "nesterov=True needs momentum > 0"),
        (lambda p: optim.SGD(p, lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), ValueError, "dampening"),
        (lambda p: optim.Adam(p, betas=(0.9, 1.0)), ValueError, r"betas\[1\] must be in \[0, 1\), got 1.0"),
        (lambda p: optim.Adam(p, betas=(-0.1, 0.9)), ValueError, r"betas\[0\]"),
        (lambda p: optim.Adam(p, betas=0.9), TypeError, "betas"),
        (lambda p: optim.Adam(p, eps=-1e-8), ValueError, "eps"),
    ],
)
def test_hyperparameters_are_checked_by_name(make, error, match):
    with pytest.raises(error, match=match):
        make([nn.Parameter([1.0])])


def test_params_are_checked():
    param = nn.Parameter([1.0])
    with pytest.raises(ValueError, match="empty"):
        optim.SGD([], lr=0.1)
    with pytest.raises(TypeError, match=r"params\[1\] must be a Parameter, got ndarray"):
        optim.SGD([param, np.zeros(2)], lr=0.1)
    with pytest.raises(TypeError, match=r"params\[0\].*requires_grad=False"):
        optim.Adam([Tensor([1.0])])
    with pytest.raises(TypeError, match=r"params\[0\].*not a leaf"):
        optim.Adam([param * 2])
    with pytest.raises(ValueError, match=r"params\[2\] is the same tensor as params\[0\]"):
        optim.Adam([param, nn.Parameter([2.0]), param])
    with pytest.raises(TypeError, match="single Tensor"):
        optim.Adam(param)
    optim.SGD([Tensor([1.0], requires_grad=True)], lr=0.1)  # any leaf tensor that requires grad will do


# ---------------------------------------------------------------- checkpoints: state_dict / load_state_dict


def small_model():
    return nn.Sequential(nn.Conv2d(1, 3, 3, rng=1), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 4 * 4, 2, rng=2))


def train_steps(model, optimizer, scheduler, steps, start):
    """`steps` steps on batches that depend only on the step number, so a resumed run sees the same data."""
    for step in range(start, start + steps):
        rng = np.random.default_rng(step)
        x = Tensor(rng.standard_normal((4, 1, 6, 6)).astype(np.float32))
        optimizer.zero_grad()
        out = model(x)
        (out * out).mean().backward()
        optimizer.step()
        scheduler.step()


@pytest.mark.parametrize(
    "make",
    [
        lambda params: optim.SGD(params, lr=0.05, momentum=0.9, weight_decay=1e-3),
        lambda params: optim.SGD(params, lr=0.05, momentum=0.8, nesterov=True),
        lambda params: optim.SGD(params, lr=0.05),
        lambda params: optim.Adam(params, lr=0.01, betas=(0.8, 0.99)),
    ],
)
def test_a_run_resumed_from_state_dicts_is_bit_identical_to_an_uninterrupted_run(make):
    model = small_model()
    optimizer = make(model.parameters())
    scheduler = optim.CosineAnnealingLR(optimizer, T_max=9)
    train_steps(model, optimizer, scheduler, 5, start=0)
    saved = model.state_dict(), optimizer.state_dict(), scheduler.state_dict()
    train_steps(model, optimizer, scheduler, 7, start=5)  # the uninterrupted run goes on (and must not alter `saved`)

    fresh = nn.Sequential(nn.Conv2d(1, 3, 3, rng=7), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 4 * 4, 2, rng=8))
    fresh_optimizer = make(fresh.parameters())
    fresh_scheduler = optim.CosineAnnealingLR(fresh_optimizer, T_max=9)
    fresh.load_state_dict(saved[0])
    fresh_optimizer.load_state_dict(saved[1])
    fresh_scheduler.load_state_dict(saved[2])
    train_steps(fresh, fresh_optimizer, fresh_scheduler, 7, start=5)

    for (name, ours), theirs in zip(model.state_dict().items(), fresh.state_dict().values()):
        assert ours.dtype == theirs.dtype == np.float32
        assert ours.tobytes() == theirs.tobytes(), name
    assert fresh_optimizer.lr == optimizer.lr


def test_state_dict_has_torch_layout_and_copies():
    params = [nn.Parameter([1.0, 2.0]), nn.Parameter([3.0]), nn.Parameter([[4.0]])]
    optimizer = optim.Adam(params, lr=0.1)
    assert optimizer.state_dict() == {"state": {}, "param_groups": [
        {"lr": 0.1, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0, "params": [0, 1, 2]}]}
    (params[0].sum() + params[2].sum()).backward()
    optimizer.step()
    state = optimizer.state_dict()["state"]
    assert sorted(state) == [0, 2] and state[0]["step"] == 1 and set(state[0]) == {"step", "exp_avg", "exp_avg_sq"}
    assert state[0]["exp_avg"] is not optimizer.state[params[0]]["exp_avg"]
    sgd = optim.SGD(params, lr=0.1, momentum=0.9)
    sgd.step()
    assert set(sgd.state_dict()["state"][0]) == {"momentum_buffer"}
    assert sgd.state_dict()["param_groups"][0] == {"lr": 0.1, "momentum": 0.9, "dampening": 0.0,
                                                   "weight_decay": 0.0, "nesterov": False, "params": [0, 1, 2]}


def test_load_state_dict_casts_to_the_parameter_dtype_and_restores_an_annealed_zero_lr():
    param = nn.Parameter([1.0, 2.0])  # float32
    optimizer = optim.SGD([param], lr=0.1, momentum=0.9)
    state = {"state": {0: {"momentum_buffer": np.array([0.5, 0.25])}},
             "param_groups": [{"lr": 0.0, "momentum": 0.5, "dampening": 0.0, "weight_decay": 0.0,
                               "nesterov": False, "params": [0]}]}
    optimizer.load_state_dict(state)
    buffer = optimizer.state[param]["momentum_buffer"]
    assert buffer.dtype == np.float32 and np.array_equal(buffer, [0.5, 0.25]) and optimizer.lr == 0.0
    assert optimizer.momentum == 0.5
    buffer[0] = 9
    assert state["state"][0]["momentum_buffer"][0] == 0.5  # loaded as a copy


def test_load_state_dict_lists_every_problem_and_loads_nothing():
    params = [nn.Parameter([1.0, 2.0]), nn.Parameter([3.0])]
    optimizer = optim.SGD(params, lr=0.1, momentum=0.9)
    (params[0].sum() + params[1].sum()).backward()
    optimizer.step()
    good = optimizer.state_dict()
    before = optimizer.state_dict()

    bad_shape = {"state": {0: {"momentum_buffer": np.zeros(3)}, 5: {"momentum_buffer": np.zeros(1)}},
                 "param_groups": good["param_groups"]}
    with pytest.raises(ValueError, match=r"(?s)2 problems; nothing was loaded.*"
                                         r"state\[0\]\['momentum_buffer'\] has shape \(3,\), its parameter has \(2,\)"
                                         r".*state key 5 is not a parameter index in \[0, 2\)"):
        optimizer.load_state_dict(bad_shape)
    with pytest.raises(ValueError, match="the state dict is for 1 parameters, the optimizer has 2"):
        optimizer.load_state_dict(optim.SGD(params[:1], lr=0.1).state_dict())
    adam = optim.Adam(params)
    adam.step()
    with pytest.raises(ValueError, match=r"(?s)missing hyperparameter 'momentum'.*unexpected hyperparameter 'betas'"):
        optimizer.load_state_dict(adam.state_dict())
    with pytest.raises(ValueError, match=r"state\[0\] has keys \['momentum_buffer'\], expected"):
        adam.load_state_dict(dict(good, param_groups=adam.state_dict()["param_groups"]))
    with pytest.raises(ValueError, match="lr must be a finite number >= 0, got -1.0"):
        optimizer.load_state_dict(dict(good, param_groups=[dict(good["param_groups"][0], lr=-1.0)]))
    with pytest.raises(ValueError, match="keys 'state' and 'param_groups'"):
        optimizer.load_state_dict({"state": {}})
    after = optimizer.state_dict()
    assert after["param_groups"] == before["param_groups"]
    assert np.array_equal(after["state"][0]["momentum_buffer"], before["state"][0]["momentum_buffer"])

