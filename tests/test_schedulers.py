"""optim.StepLR and CosineAnnealingLR: the lr sequence equals torch.optim.lr_scheduler's bit for bit, the
optimizer steps with it, and state_dict/load_state_dict resume a schedule where it stopped."""

import numpy as np
import pytest

from tinygrad_conv import nn, optim

EPOCHS = 120

SCHEDULES = [
    ("StepLR", dict(step_size=7)),
    ("StepLR", dict(step_size=3, gamma=0.5)),
    ("StepLR", dict(step_size=1, gamma=0.97)),
    ("CosineAnnealingLR", dict(T_max=10)),
    ("CosineAnnealingLR", dict(T_max=25, eta_min=1e-3)),
    ("CosineAnnealingLR", dict(T_max=1)),
]


def make_optimizer(kind="SGD", lr=0.1):
    param = nn.Parameter([1.0, -2.0], dtype=np.float64)
    if kind == "SGD":
        return optim.SGD([param], lr=lr, momentum=0.9)
    return optim.Adam([param], lr=lr)


def our_lrs(name, kwargs, epochs=EPOCHS, lr=0.1):
    optimizer = make_optimizer(lr=lr)
    scheduler = getattr(optim, name)(optimizer, **kwargs)
    lrs = [scheduler.get_last_lr()[0]]
    for _ in range(epochs):
        scheduler.step()
        lrs.append(scheduler.get_last_lr()[0])
        assert optimizer.lr == lrs[-1]
    return lrs


@pytest.mark.parametrize(("name", "kwargs"), SCHEDULES)
def test_lr_sequence_equals_torch_bit_for_bit(torch, name, kwargs):
    param = torch.zeros(2, requires_grad=True)
    optimizer = torch.optim.SGD([param], lr=0.1, momentum=0.9)
    scheduler = getattr(torch.optim.lr_scheduler, name)(optimizer, **kwargs)
    theirs = [scheduler.get_last_lr()[0]]
    for _ in range(EPOCHS):
        optimizer.step()
        scheduler.step()
        theirs.append(scheduler.get_last_lr()[0])
    assert our_lrs(name, kwargs) == theirs


def test_step_lr_is_the_closed_form_up_to_rounding():
    lrs = our_lrs("StepLR", dict(step_size=4, gamma=0.5), epochs=20, lr=1.0)
    assert lrs == [0.5 ** (epoch // 4) for epoch in range(21)]  # powers of two: exact


def test_cosine_reaches_eta_min_at_t_max_and_follows_the_closed_form():
    lrs = our_lrs("CosineAnnealingLR", dict(T_max=8, eta_min=0.01), epochs=8)
    expected = [0.01 + (0.1 - 0.01) * (1 + np.cos(np.pi * t / 8)) / 2 for t in range(9)]
    np.testing.assert_allclose(lrs, expected, rtol=1e-12)
    assert lrs[-1] == pytest.approx(0.01, abs=1e-15)
    assert our_lrs("CosineAnnealingLR", dict(T_max=8), epochs=8)[-1] == 0.0


def test_the_optimizer_steps_with_the_scheduled_lr():
    param = nn.Parameter([0.0], dtype=np.float64)
    optimizer = optim.SGD([param], lr=1.0)
    scheduler = optim.StepLR(optimizer, step_size=1, gamma=0.5)
    for _ in range(3):
        param.grad = np.ones(1)
        optimizer.step()
        scheduler.step()
    assert param.data[0] == -(1.0 + 0.5 + 0.25)


@pytest.mark.parametrize(("name", "kwargs"), SCHEDULES[:2] + SCHEDULES[3:5])
@pytest.mark.parametrize("kind", ["SGD", "Adam"])
def test_state_dicts_resume_the_schedule_where_it_stopped(name, kwargs, kind):
    optimizer = make_optimizer(kind)
    scheduler = getattr(optim, name)(optimizer, **kwargs)
    for _ in range(13):
        scheduler.step()
    saved_optimizer, saved_scheduler = optimizer.state_dict(), scheduler.state_dict()
    uninterrupted = []
    for _ in range(40):
        scheduler.step()
        uninterrupted.append(optimizer.lr)

    resumed_optimizer = make_optimizer(kind, lr=0.7)  # a different lr, which loading must overwrite
    resumed = getattr(optim, name)(resumed_optimizer, **kwargs)
    resumed.load_state_dict(saved_scheduler)
    resumed_optimizer.load_state_dict(saved_optimizer)
    assert resumed.last_epoch == 13 and resumed.get_last_lr() == [resumed_optimizer.lr]
    continued = []
    for _ in range(40):
        resumed.step()
        continued.append(resumed_optimizer.lr)
    assert continued == uninterrupted


def test_state_dict_is_a_copy():
    scheduler = optim.StepLR(make_optimizer(), step_size=2)
    state = scheduler.state_dict()
    assert "optimizer" not in state and state["last_epoch"] == 0 and state["base_lrs"] == [0.1]
    scheduler.step()
    scheduler.step()
    assert state["last_epoch"] == 0 and state["_last_lr"] == [0.1]


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda o: optim.StepLR(o, step_size=0), ValueError, "step_size must be a positive int, got 0"),
        (lambda o: optim.StepLR(o, step_size=2.5), ValueError, "step_size"),
        (lambda o: optim.StepLR(o, step_size=2, gamma=-0.1), ValueError, "gamma"),
        (lambda o: optim.CosineAnnealingLR(o, T_max=0), ValueError, "T_max must be a positive int, got 0"),
        (lambda o: optim.CosineAnnealingLR(o, T_max=5, eta_min=float("nan")), ValueError, "eta_min"),
        (lambda o: optim.StepLR(o.params, step_size=2), TypeError, "needs a tinygrad_conv.optim Optimizer, got list"),
    ],
)
def test_arguments_are_checked_by_name(make, error, match):
    with pytest.raises(error, match=match):
        make(make_optimizer())


def test_load_state_dict_rejects_another_schedulers_state():
    cosine = optim.CosineAnnealingLR(make_optimizer(), T_max=5)
    step = optim.StepLR(make_optimizer(), step_size=2)
    with pytest.raises(ValueError, match="StepLR.load_state_dict expects the keys"):
        step.load_state_dict(cosine.state_dict())
    with pytest.raises(ValueError, match="last_epoch"):
        step.load_state_dict(dict(step.state_dict(), last_epoch=-3))
    assert step.last_epoch == 0
