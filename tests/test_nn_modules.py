"""nn.CrossEntropyLoss, Tanh, Sigmoid, ModuleList and BatchNorm2d beside torch.nn in float64: outputs, gradients,
running statistics and state dicts (buffers included)."""

import numpy as np
import pytest

from tinygrad_conv import Tensor, nn, optim


def test_cross_entropy_loss_equals_torch(torch):
    rng = np.random.default_rng(0)
    logits, target = rng.standard_normal((6, 4)), rng.integers(0, 4, 6)
    x = Tensor(logits, requires_grad=True)
    loss = nn.CrossEntropyLoss()(x, target)
    loss.backward()
    tx = torch.tensor(logits, requires_grad=True)
    tloss = torch.nn.CrossEntropyLoss()(tx, torch.from_numpy(target))
    tloss.backward()
    np.testing.assert_allclose(loss.item(), tloss.item(), rtol=1e-13)
    np.testing.assert_allclose(x.grad, tx.grad.numpy(), rtol=1e-12, atol=1e-15)
    with pytest.raises(ValueError, match="only reduction='mean', got 'sum'"):
        nn.CrossEntropyLoss(reduction="sum")


@pytest.mark.parametrize("name", ["Tanh", "Sigmoid"])
def test_activations_equal_torch(torch, name):
    data = np.random.default_rng(1).standard_normal((3, 5)) * 3
    x = Tensor(data, requires_grad=True)
    y = getattr(nn, name)()(x)
    (y * y).sum().backward()
    tx = torch.tensor(data, requires_grad=True)
    ty = getattr(torch.nn, name)()(tx)
    (ty * ty).sum().backward()
    np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(x.grad, tx.grad.numpy(), rtol=1e-13, atol=1e-15)
    assert repr(getattr(nn, name)()) == f"{name}()"


# ---------------------------------------------------------------- ModuleList


def test_module_list_indexes_iterates_appends_and_names_parameters_like_sequential():
    layers = nn.ModuleList([nn.Linear(2, 3, rng=0), nn.ReLU()])
    layers.append(nn.Linear(3, 1, rng=1))
    assert len(layers) == 3 and isinstance(layers[0], nn.Linear) and layers[-1] is list(layers)[2]
    assert isinstance(layers[1:], nn.ModuleList) and len(layers[1:]) == 2
    assert [name for name, _ in layers.named_parameters()] == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert list(layers.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = nn.ModuleList(nn.Linear(2, 2, rng=i) for i in range(2))

        def forward(self, x):
            for block in self.blocks:
                x = block(x).relu()
            return x

    model = Model()
    assert list(model.state_dict()) == ["blocks.0.weight", "blocks.0.bias", "blocks.1.weight", "blocks.1.bias"]
    model(Tensor(np.ones((1, 2), np.float32))).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    assert len(list(optim.SGD(model.parameters(), lr=0.1).params)) == 4
    assert "(blocks): ModuleList(\n    (0): Linear" in repr(model)


def test_module_list_checks_its_items():
    layers = nn.ModuleList()
    assert len(layers) == 0 and list(layers) == []
    with pytest.raises(TypeError, match="ModuleList.append expects a Module, got int"):
        layers.append(3)
    with pytest.raises(TypeError, match="item 1 must be a Module, got str"):
        nn.ModuleList([nn.ReLU(), "relu"])
    with pytest.raises(IndexError, match="index 2 is out of range for a ModuleList of 1 modules"):
        nn.ModuleList([nn.ReLU()])[2]
    with pytest.raises(NotImplementedError):
        nn.ModuleList([nn.ReLU()])(Tensor([1.0]))


# ---------------------------------------------------------------- BatchNorm2d

BATCH_NORM_CASES = [
    dict(),
    dict(momentum=0.3, eps=1e-3),
    dict(affine=False),
    dict(momentum=None),
    dict(track_running_stats=False),
]


def pair_of_batch_norms(torch, kwargs, channels=3):
    ours = nn.BatchNorm2d(channels, dtype=np.float64, **kwargs)
    theirs = torch.nn.BatchNorm2d(channels, dtype=torch.float64, **kwargs)
    if ours.affine:  # parameters away from their initial 1 and 0, identical in both
        rng = np.random.default_rng(5)
        weight, bias = rng.uniform(0.5, 1.5, channels), rng.standard_normal(channels)
        ours.weight.data[...] = weight
        ours.bias.data[...] = bias
        with torch.no_grad():
            theirs.weight.copy_(torch.from_numpy(weight))
            theirs.bias.copy_(torch.from_numpy(bias))
    return ours, theirs


def compare_step(torch, ours, theirs, data, upstream):
    x = Tensor(data, requires_grad=True)
    y = ours(x)
    (y * Tensor(upstream)).sum().backward()
    tx = torch.tensor(data, requires_grad=True)
    ty = theirs(tx)
    (ty * torch.from_numpy(upstream)).sum().backward()
    np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(x.grad, tx.grad.numpy(), rtol=1e-10, atol=1e-12)
    if ours.affine:
        np.testing.assert_allclose(ours.weight.grad, theirs.weight.grad.numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(ours.bias.grad, theirs.bias.grad.numpy(), rtol=1e-10, atol=1e-12)
        ours.zero_grad()
        theirs.zero_grad()
    if ours.track_running_stats:
        np.testing.assert_allclose(ours.running_mean, theirs.running_mean.numpy(), rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(ours.running_var, theirs.running_var.numpy(), rtol=1e-13, atol=1e-15)
        assert int(ours.num_batches_tracked) == int(theirs.num_batches_tracked)


@pytest.mark.parametrize("kwargs", BATCH_NORM_CASES)
def test_batch_norm_matches_torch_in_train_and_eval_mode(torch, kwargs):
    ours, theirs = pair_of_batch_norms(torch, kwargs)
    rng = np.random.default_rng(2)
    for step in range(3):  # three training batches move the running statistics
        data = rng.standard_normal((4, 3, 5, 6)) * (step + 1) + step
        compare_step(torch, ours, theirs, data, rng.standard_normal((4, 3, 5, 6)))
    ours.eval()
    theirs.eval()
    compare_step(torch, ours, theirs, rng.standard_normal((2, 3, 4, 4)) + 1, rng.standard_normal((2, 3, 4, 4)))
    if ours.track_running_stats:
        assert int(ours.num_batches_tracked) == 3
        assert not np.allclose(ours.running_mean, 0)


def test_batch_norm_state_dict_holds_torch_keys_and_restores_the_running_statistics(torch):
    def model():
        return nn.Sequential(nn.Conv2d(1, 2, 3, dtype=np.float64, rng=0), nn.BatchNorm2d(2, dtype=np.float64),
                             nn.ReLU(), nn.Flatten(), nn.Linear(2 * 4 * 4, 3, dtype=np.float64, rng=1))

    trained = model()
    for seed in range(2):
        trained(Tensor(np.random.default_rng(seed).standard_normal((5, 1, 6, 6))))
    state = trained.state_dict()
    reference = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2), torch.nn.ReLU(),
                                    torch.nn.Flatten(), torch.nn.Linear(32, 3))
    assert list(state) == list(reference.state_dict())
    assert state["1.num_batches_tracked"].dtype == np.int64 and state["1.num_batches_tracked"] == 2
    assert state["1.running_mean"] is not trained[1].running_mean  # a copy

    reference.load_state_dict({key: torch.from_numpy(np.asarray(value)) for key, value in state.items()})
    fresh = model()
    fresh.load_state_dict({key: value.numpy() for key, value in reference.state_dict().items()})
    running_mean = fresh[1].running_mean
    fresh.load_state_dict(state)
    assert fresh[1].running_mean is running_mean  # loaded in place
    for key, value in fresh.state_dict().items():
        assert np.array_equal(value, state[key]), key
    x = np.random.default_rng(9).standard_normal((2, 1, 6, 6))
    fresh.eval()
    reference.eval()
    np.testing.assert_allclose(fresh(Tensor(x)).data, reference(torch.from_numpy(x)).detach().numpy(), rtol=1e-12)


def test_batch_norm_load_state_dict_lists_buffer_and_parameter_problems_and_loads_nothing():
    model = nn.Sequential(nn.Linear(2, 2, rng=0), nn.BatchNorm2d(2))
    before = model.state_dict()
    bad = dict(before)
    bad["1.running_var"] = np.ones(3, np.float32)
    del bad["1.running_mean"]
    bad["0.weight"] = np.zeros((2, 2), np.float32)
    bad["0.bias"] = np.zeros(5, np.float32)
    with pytest.raises(ValueError, match=r"(?s)3 problems; nothing was loaded.*'0.bias'.*"
                                         r"missing key '1.running_mean'.*shape mismatch for '1.running_var'"):
        model.load_state_dict(bad)
    for key, value in model.state_dict().items():
        assert np.array_equal(value, before[key]), key
    only_buffers_wrong = dict(before, **{"0.weight": np.zeros((2, 2), np.float32), "1.running_var": np.ones(4)})
    with pytest.raises(ValueError, match=r"1 problem; nothing was loaded"):
        model.load_state_dict(only_buffers_wrong)
    assert np.array_equal(model[0].weight.data, before["0.weight"])


def test_a_model_without_buffers_keeps_its_state_dict():
    model = nn.Sequential(nn.Linear(2, 2, rng=0), nn.ReLU())
    assert list(model.state_dict()) == ["0.weight", "0.bias"] and list(model.named_buffers()) == []
    norm = nn.BatchNorm2d(4, affine=False)
    assert list(norm.state_dict()) == ["running_mean", "running_var", "num_batches_tracked"]
    assert list(nn.BatchNorm2d(4, track_running_stats=False).state_dict()) == ["weight", "bias"]


def test_batch_norm_checks_its_arguments_and_input():
    norm = nn.BatchNorm2d(3)
    assert repr(norm) == "BatchNorm2d(3, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)"
    assert norm.weight.dtype == norm.running_mean.dtype == np.float32
    with pytest.raises(ValueError, match="4-D input"):
        norm(Tensor(np.ones((2, 3), np.float32)))
    with pytest.raises(ValueError, match=r"BatchNorm2d\(3\) got an input with 2 channels"):
        norm(Tensor(np.ones((2, 2, 2, 2), np.float32)))
    with pytest.raises(TypeError, match="float32 parameters and statistics, got a float64 input"):
        norm(Tensor(np.ones((2, 3, 2, 2))))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        norm(Tensor(np.ones((1, 3, 1, 1), np.float32)))
    norm.eval()
    norm(Tensor(np.ones((1, 3, 1, 1), np.float32)))  # fine in eval mode
    with pytest.raises(ValueError, match="momentum"):
        nn.BatchNorm2d(3, momentum=1.5)
    with pytest.raises(ValueError, match="eps"):
        nn.BatchNorm2d(3, eps=0)
    with pytest.raises(TypeError, match="num_features"):
        nn.BatchNorm2d(3.0)


def test_batch_norm_gradients_pass_gradcheck():
    from tinygrad_conv import gradcheck

    norm = nn.BatchNorm2d(2, dtype=np.float64)
    x = Tensor(np.random.default_rng(3).standard_normal((3, 2, 2, 2)), requires_grad=True)
    assert gradcheck(lambda x, w, b: norm(x) * Tensor(np.arange(24.0).reshape(3, 2, 2, 2)),
                     (x, norm.weight, norm.bias))
