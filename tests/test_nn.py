"""nn: parameter discovery and naming, PyTorch's default init, layers against torch.nn, state dicts, modes, scopes."""

import math

import numpy as np
import pytest

from tinygrad_conv import Tensor, nn


class TwoBranch(nn.Module):
    """A custom model: a sub-module, its own parameter between layers, a no-bias layer, a shared parameter."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 2, 3, rng=0)
        self.scale = nn.Parameter(np.ones(1))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(2 * 4 * 4, 3, bias=False, rng=1))
        self.tied = self.scale  # the same parameter again: reported once
        self.note = "not a module"

    def forward(self, x):
        return self.head(self.conv1(x) * self.scale)


class NoSuperInit(nn.Module):
    def __init__(self):  # forgets super().__init__(): discovery and training still work
        self.fc = nn.Linear(2, 2, rng=0)

    def forward(self, x):
        return self.fc(x)


def small_cnn(seed=0):
    rng = np.random.default_rng(seed)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, rng=rng), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(4 * 3 * 3, 5, rng=rng))


# ---------------------------------------------------------------- discovery and names


def test_named_parameters_of_nested_sequential_are_dotted_in_definition_order():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Sequential(nn.Linear(4, 3), nn.Dropout(), nn.Linear(3, 2)))
    names = [name for name, _ in model.named_parameters()]
    assert names == ["0.weight", "0.bias", "2.0.weight", "2.0.bias", "2.2.weight", "2.2.bias"]
    assert [p for _, p in model.named_parameters()] == list(model.parameters())


def test_named_parameters_of_a_custom_module_follow_its_attributes_each_parameter_once():
    model = TwoBranch()
    assert [name for name, _ in model.named_parameters()] == ["conv1.weight", "conv1.bias", "scale", "head.1.weight"]
    assert [name for name, _ in model.named_modules()] == ["", "conv1", "head", "head.0", "head.1"]
    assert list(model.children()) == [model.conv1, model.head]
    assert model(Tensor(np.zeros((2, 1, 6, 6), np.float32))).shape == (2, 3)


def test_a_module_without_super_init_still_finds_its_parameters_and_toggles_training():
    model = NoSuperInit()
    assert [name for name, _ in model.named_parameters()] == ["fc.weight", "fc.bias"]
    assert model.training and not model.eval().training and not model.fc.training


def test_named_parameters_leaves_parameters_unnamed():
    model = small_cnn()
    list(model.named_parameters())
    assert all(p.name is None for p in model.parameters())


def test_parameter_is_a_float32_leaf_tensor_unless_a_dtype_is_given():
    p = nn.Parameter([1.0, 2.0])
    assert isinstance(p, Tensor) and p.requires_grad and p.dtype == np.float32 and p.name is None
    assert nn.Parameter(np.zeros(2), dtype=np.float64).dtype == np.float64
    assert (p * 2).__class__ is Tensor  # op results are plain tensors
    assert repr(p).startswith("Parameter containing:\n")


@pytest.mark.parametrize(
    ("layer", "count"),
    [
        (lambda: nn.Conv2d(3, 8, 5), 8 * 3 * 5 * 5 + 8),
        (lambda: nn.Conv2d(4, 6, (3, 2), groups=2, bias=False), 6 * 2 * 3 * 2),
        (lambda: nn.Linear(256, 10), 256 * 10 + 10),
        (lambda: nn.Linear(7, 3, bias=False), 21),
    ],
)
def test_parameter_counts(layer, count):
    assert sum(p.size for p in layer().parameters()) == count


# ---------------------------------------------------------------- initialisation


@pytest.mark.parametrize(
    ("layer", "fan_in"),
    [
        (lambda rng: nn.Conv2d(6, 30, (3, 5), groups=3, rng=rng), 2 * 3 * 5),
        (lambda rng: nn.Linear(50, 400, rng=rng), 50),
    ],
)
def test_default_init_is_uniform_within_one_over_sqrt_fan_in_in_float32(layer, fan_in):
    module = layer(np.random.default_rng(0))
    bound = 1 / math.sqrt(fan_in)
    for param in module.parameters():
        values = param.data
        assert param.dtype == np.float32
        assert np.all(np.abs(values) <= bound)
    weight = module.weight.data.ravel()  # a few thousand draws: they fill [-bound, bound] evenly
    assert weight.min() < -0.95 * bound and weight.max() > 0.95 * bound
    assert abs(weight.mean()) < 0.05 * bound
    assert np.std(weight) == pytest.approx(bound / math.sqrt(3), rel=0.05)  # U(−b, b) has std b/√3


def test_init_is_reproducible_from_a_seed_and_respects_dtype():
    a, b = nn.Conv2d(2, 3, 3, rng=7), nn.Conv2d(2, 3, 3, rng=np.random.default_rng(7))
    assert np.array_equal(a.weight.data, b.weight.data) and np.array_equal(a.bias.data, b.bias.data)
    assert not np.array_equal(nn.Linear(4, 4, rng=1).weight.data, nn.Linear(4, 4, rng=2).weight.data)
    assert nn.Linear(4, 4, dtype=np.float64).weight.dtype == np.float64


# ---------------------------------------------------------------- layers against torch.nn


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
@pytest.mark.parametrize(
    "kwargs",
    [
        dict(in_channels=2, out_channels=4, kernel_size=3),
        dict(in_channels=4, out_channels=6, kernel_size=(3, 2), stride=2, padding=1, dilation=(2, 1), groups=2),
        dict(in_channels=3, out_channels=2, kernel_size=4, padding="same", bias=False),
    ],
)
def test_conv2d_forward_and_backward_match_torch(torch, kwargs):
    conv = nn.Conv2d(**kwargs, dtype=np.float64, rng=0)
    reference = torch.nn.Conv2d(**kwargs)
    with torch.no_grad():
        reference.weight.copy_(torch.from_numpy(conv.weight.data))
        if conv.bias is not None:
            reference.bias.copy_(torch.from_numpy(conv.bias.data))
    x_data = np.random.default_rng(1).standard_normal((2, kwargs["in_channels"], 9, 8))
    x, x_ref = Tensor(x_data, requires_grad=True), torch.tensor(x_data, requires_grad=True)
    y, y_ref = conv(x), reference(x_ref)
    np.testing.assert_allclose(y.data, y_ref.detach().numpy(), rtol=1e-12, atol=1e-12)
    grad_output = np.random.default_rng(2).standard_normal(y.shape)
    y.backward(grad_output)
    y_ref.backward(torch.from_numpy(grad_output))
    np.testing.assert_allclose(x.grad, x_ref.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(conv.weight.grad, reference.weight.grad.numpy(), rtol=1e-10, atol=1e-12)
    if conv.bias is not None:
        np.testing.assert_allclose(conv.bias.grad, reference.bias.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_linear_forward_and_backward_match_torch(torch):
    linear, reference = nn.Linear(5, 3, dtype=np.float64, rng=0), torch.nn.Linear(5, 3)
    with torch.no_grad():
        reference.weight.copy_(torch.from_numpy(linear.weight.data))
        reference.bias.copy_(torch.from_numpy(linear.bias.data))
    x_data = np.random.default_rng(1).standard_normal((4, 5))
    x, x_ref = Tensor(x_data, requires_grad=True), torch.tensor(x_data, requires_grad=True)
    y, y_ref = linear(x), reference(x_ref)
    np.testing.assert_allclose(y.data, y_ref.detach().numpy(), rtol=1e-12, atol=1e-12)
    (y * y).sum().backward()
    (y_ref * y_ref).sum().backward()
    np.testing.assert_allclose(x.grad, x_ref.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(linear.weight.grad, reference.weight.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(linear.bias.grad, reference.bias.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_pooling_flatten_and_relu_layers_match_torch_forward_and_backward(torch):
    x_data = np.random.default_rng(0).standard_normal((2, 3, 7, 6))
    pairs = [
        (nn.MaxPool2d(3, stride=2, padding=1), torch.nn.MaxPool2d(3, stride=2, padding=1)),
        (nn.AvgPool2d(2, padding=1), torch.nn.AvgPool2d(2, padding=1)),
        (nn.Flatten(), torch.nn.Flatten()),
        (nn.Flatten(0, 2), torch.nn.Flatten(0, 2)),
        (nn.ReLU(), torch.nn.ReLU()),
    ]
    for ours, theirs in pairs:
        x, x_t = Tensor(x_data, requires_grad=True), torch.tensor(x_data, requires_grad=True)
        y, y_t = ours(x), theirs(x_t)
        np.testing.assert_allclose(y.data, y_t.detach().numpy(), rtol=1e-12, atol=1e-12)
        (y * y).sum().backward()  # standard normal data: no ties in a pooling window, no zeros at ReLU's kink
        (y_t * y_t).sum().backward()
        np.testing.assert_allclose(x.grad, x_t.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_a_layer_given_a_wrong_input_shape_raises_functionals_error():
    with pytest.raises(ValueError, match="4-D input"):
        nn.Conv2d(1, 2, 3)(Tensor(np.zeros((8, 8), np.float32)))
    with pytest.raises(ValueError, match="in_features=4"):
        nn.Linear(4, 2)(Tensor(np.zeros((3, 5), np.float32)))


# ---------------------------------------------------------------- argument checks


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: nn.Conv2d(3, 4, 3, groups=2), ValueError, "groups=2 must divide"),
        (lambda: nn.Conv2d(1, 4, 0), ValueError, "kernel_size"),
        (lambda: nn.Conv2d(1, 4, (3, -1)), ValueError, "kernel_size"),
        (lambda: nn.Conv2d(0, 4, 3), ValueError, "in_channels"),
        (lambda: nn.Conv2d(1.5, 4, 3), TypeError, "in_channels"),
        (lambda: nn.Conv2d(1, 4, 3, stride=0), ValueError, "stride"),
        (lambda: nn.Conv2d(1, 4, 3, padding=-1), ValueError, "padding"),
        (lambda: nn.Conv2d(1, 4, 3, padding="full"), ValueError, "padding"),
        (lambda: nn.Conv2d(1, 4, 3, stride=2, padding="same"), ValueError, "same"),
        (lambda: nn.Conv2d(1, 4, 3, groups=0), ValueError, "groups"),
        (lambda: nn.Conv2d(1, 4, 3, bias=1), TypeError, "bias"),
        (lambda: nn.Conv2d(1, 4, 3, dtype=np.int32), TypeError, "dtype"),
        (lambda: nn.Conv2d(1, 4, 3, rng="seed"), TypeError, "rng"),
        (lambda: nn.Linear(4, 0), ValueError, "out_features"),
        (lambda: nn.MaxPool2d(0), ValueError, "kernel_size"),
        (lambda: nn.AvgPool2d(2, padding=2), ValueError, "padding"),
        (lambda: nn.Dropout(1.0), ValueError, "p must be in"),
        (lambda: nn.Sequential(nn.ReLU(), lambda x: x), TypeError, "argument 1"),
    ],
)
def test_constructor_arguments_are_checked_by_name(make, error, match):
    with pytest.raises(error, match=match):
        make()


# ---------------------------------------------------------------- Sequential and repr


def test_sequential_is_indexable_sized_and_iterable():
    layers = [nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten()]
    model = nn.Sequential(*layers)
    assert len(model) == 3 and list(model) == layers
    assert model[0] is layers[0] and model[-1] is layers[2]
    assert list(model[1:]) == layers[1:] and isinstance(model[1:], nn.Sequential)
    with pytest.raises(IndexError):
        model[3]


def test_repr_reads_like_pytorch():
    assert repr(nn.Conv2d(1, 8, 3, padding=1)) == "Conv2d(1, 8, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))"
    assert repr(nn.Linear(256, 10)) == "Linear(in_features=256, out_features=10, bias=True)"
    assert repr(nn.Sequential(nn.ReLU(), nn.Sequential(nn.MaxPool2d(2)))) == (
        "Sequential(\n  (0): ReLU()\n  (1): Sequential(\n    (0): MaxPool2d(kernel_size=2, stride=2, padding=0)\n  )\n)"
    )


# ---------------------------------------------------------------- state dicts


def test_state_dict_holds_copies_and_loads_into_a_fresh_model():
    model, fresh = small_cnn(seed=0), small_cnn(seed=1)
    state = model.state_dict()
    assert list(state) == ["0.weight", "0.bias", "4.weight", "4.bias"]
    state["0.bias"][:] = 123  # a copy: the model is untouched
    assert not np.any(model[0].bias.data == 123)
    state = model.state_dict()
    weight_array = fresh[0].weight.data
    fresh.load_state_dict(state)
    assert fresh[0].weight.data is weight_array  # loaded in place
    x = Tensor(np.random.default_rng(2).standard_normal((3, 1, 6, 6)).astype(np.float32))
    assert np.array_equal(fresh(x).data, model(x).data)


def test_load_state_dict_keeps_the_parameter_dtype():
    model = nn.Linear(2, 2)
    model.load_state_dict({"weight": np.eye(2), "bias": [1, 2]})  # float64 and int values into float32
    assert model.weight.dtype == np.float32 and np.array_equal(model.weight.data, np.eye(2))
    assert np.array_equal(model.bias.data, [1, 2])


def test_load_state_dict_reports_every_problem_at_once_and_loads_nothing():
    model = small_cnn()
    before = model.state_dict()
    state = {"0.weight": np.zeros((4, 1, 5, 5)), "0.bias": np.zeros(4), "4.weight": np.zeros((5, 36)),
             "extra.weight": np.zeros((2, 2)), "4.bias.typo": np.zeros(5)}
    with pytest.raises(ValueError) as info:
        model.load_state_dict(state)
    message = str(info.value)
    for part in ["missing key '4.bias'", "unexpected key 'extra.weight'", "unexpected key '4.bias.typo'",
                 "shape mismatch for '0.weight'", "(4, 1, 5, 5)", "(4, 1, 3, 3)", "nothing was loaded"]:
        assert part in message
    assert "'0.bias'" not in message and "'4.weight'" not in message
    for name, value in model.state_dict().items():
        assert np.array_equal(value, before[name])


def test_load_state_dict_refuses_non_numeric_values_and_non_mappings():
    with pytest.raises(ValueError, match="'bias' holds"):
        nn.Linear(2, 1).load_state_dict({"weight": np.zeros((1, 2)), "bias": np.array(["a"])})
    with pytest.raises(TypeError, match="mapping"):
        nn.Linear(2, 1).load_state_dict([("weight", np.zeros((1, 2)))])


# ---------------------------------------------------------------- modes, scopes, gradients


def test_train_and_eval_toggle_dropout_recursively():
    model = nn.Sequential(nn.Linear(4, 4), nn.Sequential(nn.Dropout(0.5, rng=0)))
    dropout = model[1][0]
    x = Tensor(np.ones((50, 40), np.float32))
    assert dropout.training
    y = dropout(x).data
    assert set(np.unique(y)) == {0.0, 2.0} and y.dtype == np.float32  # dropped, the rest scaled by 1/(1 − p)
    assert model.eval() is model and not dropout.training and not model.training
    assert np.array_equal(dropout(x).data, x.data)
    model.train()
    assert dropout.training and model[0].training


def test_dropout_masks_are_reproducible_from_its_rng():
    x = Tensor(np.ones((8, 8)))
    assert np.array_equal(nn.Dropout(0.3, rng=5)(x).data, nn.Dropout(0.3, rng=5)(x).data)


def test_forward_hooks_see_each_module_call_in_order_and_can_be_removed():
    model = small_cnn()
    calls = []
    handles = [module.register_forward_pre_hook(lambda m, inputs: calls.append(("pre", m))) for module in model]
    handles += [module.register_forward_hook(lambda m, inputs, out: calls.append(("post", m, out.shape)))
                for module in model]
    x = Tensor(np.zeros((1, 1, 6, 6), np.float32))
    y = model(x)
    assert [c[0] for c in calls] == ["pre", "post"] * len(model)
    assert [c[1] for c in calls[::2]] == list(model) and calls[-1][2] == y.shape
    for handle in handles:
        handle.remove()
        handle.remove()  # a second remove does nothing
    model(x)
    assert len(calls) == 2 * len(model)
    with pytest.raises(TypeError, match="hook must be callable"):
        model.register_forward_hook(3)


def test_zero_grad_forgets_every_gradient():
    model = small_cnn()
    x = Tensor(np.ones((2, 1, 6, 6), np.float32))
    model(x).sum().backward()
    assert all(p.grad is not None and p.grad.shape == p.shape for p in model.parameters())
    model.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_a_module_without_forward_says_so():
    with pytest.raises(NotImplementedError, match="forward"):
        nn.Module()(Tensor(1.0))
