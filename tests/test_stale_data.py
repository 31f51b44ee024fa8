"""Stale data never reaches a gradient: in-place writes are counted (a version per tensor, as PyTorch's) and a
backward pass through a graph recorded before such a write is refused; grad mode is per thread; no_grad covers
generators; a gradient handed to backward() is copied."""

import threading

import numpy as np
import pytest

from tinygrad_conv import Tensor, is_grad_enabled, nn, no_grad, optim


def test_writing_data_after_the_forward_pass_is_refused_naming_the_op_and_tensor():
    x = Tensor([1.0, 2.0, 3.0], requires_grad=True)
    w = Tensor([4.0, 5.0, 6.0], requires_grad=True, name="w")
    loss = (x * w).sum()
    w.data = np.zeros(3)
    with pytest.raises(RuntimeError, match=r"through Mul .* input 1 \('w', shape \(3,\)\).*modified in place"):
        loss.backward()


def test_item_assignment_on_the_tensor_is_counted_and_refused_naming_the_op_and_tensor(torch):
    x = Tensor([1.0, 2.0, 3.0], requires_grad=True)
    w = Tensor([4.0, 5.0, 6.0], requires_grad=True, name="w")
    loss = (x * w).sum()
    w[:] = 0  # the issue's `w.data[:] = 0`, written on the tensor: the documented, counted way
    with pytest.raises(RuntimeError, match=r"through Mul .* input 1 \('w', shape \(3,\)\).*modified in place"):
        loss.backward()
    x_t, w_t = torch.tensor([1.0, 2.0, 3.0], requires_grad=True), torch.tensor([4.0, 5.0, 6.0], requires_grad=True)
    loss_t = (x_t * w_t).sum()
    with torch.no_grad():
        w_t[:] = 0
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):  # PyTorch refuses the same
        loss_t.backward()


def test_item_assignment_into_an_intermediate_refuses_the_backward_through_the_op_that_made_it():
    x = Tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    y[0] = 5.0
    loss = (y * y).sum()  # recorded after the write: its own rule is fine, y's maker Mul is not
    with pytest.raises(RuntimeError, match=r"through Mul .* output .*modified in place"):
        loss.backward()


def test_item_assignment_writes_as_numpy_with_tensor_indices_and_values():
    t = Tensor(np.arange(6.0).reshape(2, 3))
    t[0, Tensor(np.array([2, 0]))] = Tensor([10.0, 20.0])
    t[Tensor(np.array([False, True]))] = -1.0
    np.testing.assert_array_equal(t.data, [[20.0, 1.0, 10.0], [-1.0, -1.0, -1.0]])


def test_writing_into_the_array_from_data_is_not_seen_as_with_pytorchs_data(torch):
    """The limit, stated in `Tensor.data`'s docstring and the README: numpy has no hook on writes into an array,
    so `w.data[...] = v` after the forward pass goes unseen — PyTorch's `.data` behaves the same."""
    x = Tensor([1.0, 2.0, 3.0], requires_grad=True)
    w = Tensor([4.0, 5.0, 6.0], requires_grad=True)
    loss = (x * w).sum()
    w.data[:] = 0
    loss.backward()
    x_t, w_t = torch.tensor([1.0, 2.0, 3.0], requires_grad=True), torch.tensor([4.0, 5.0, 6.0], requires_grad=True)
    loss_t = (x_t * w_t).sum()
    w_t.data[:] = 0
    loss_t.backward()
    np.testing.assert_array_equal(x.grad, x_t.grad.numpy())
    np.testing.assert_array_equal(x.grad, [0.0, 0.0, 0.0])


def test_reading_data_between_forward_and_backward_never_raises():
    x = Tensor(np.ones((2, 3)), requires_grad=True)
    w = Tensor(np.full((3, 2), 0.5), requires_grad=True)
    loss = (x @ w).relu().sum()
    seen = (loss.data, float(loss.data), loss.item(), repr(loss), str(w.data), w.numpy().sum(), np.asarray(w))
    assert seen[1] == 6.0
    loss.backward()
    np.testing.assert_array_equal(x.grad, np.ones((2, 3)))


def test_micrograd_style_updates_through_data_keep_working_and_are_counted():
    w = Tensor([1.0, 2.0], requires_grad=True)
    array = w.data
    loss = (w * w).sum()
    loss.backward()
    w.data -= 0.5 * w.grad  # in place, into the same array
    assert w.data is array
    np.testing.assert_array_equal(w.data, [0.0, 0.0])
    w.data = np.array([3.0, 4.0])
    np.testing.assert_array_equal(w.data, [3.0, 4.0])
    with pytest.raises(RuntimeError, match="modified in place"):
        loss.backward()
    w.grad = None
    (w * w).sum().backward()  # a new forward pass is fine
    np.testing.assert_array_equal(w.grad, [6.0, 8.0])


def subtract_from_data(t: Tensor) -> None:
    t.data -= 1.0  # gets the array, subtracts in place, then sets `data`: an optimizer step's write


@pytest.mark.parametrize("write", [
    subtract_from_data, lambda t: t.zero_(), lambda t: t.fill_(2.0), lambda t: t.copy_(np.ones(3)),
    lambda t: t.add_(1.0, alpha=2.0), lambda t: t.mul_(3.0), lambda t: t.__setitem__(slice(1, None), 7.0),
], ids=["data -=", "zero_", "fill_", "copy_", "add_", "mul_", "t[1:] ="])
def test_every_in_place_write_counts(write):
    x = Tensor([1.0, 2.0, 3.0], requires_grad=True)
    loss = (x * x).sum()
    before = x._version
    write(x)
    assert x._version > before
    with pytest.raises(RuntimeError, match="modified in place"):
        loss.backward()


def test_in_place_methods_compute_what_they_say():
    t = Tensor([1.0, 2.0])
    np.testing.assert_array_equal(t.add_(Tensor([1.0, 1.0]), alpha=2).data, [3.0, 4.0])
    np.testing.assert_array_equal(t.mul_(2).data, [6.0, 8.0])
    np.testing.assert_array_equal(t.copy_([5.0, 6.0]).data, [5.0, 6.0])
    np.testing.assert_array_equal(t.zero_().data, [0.0, 0.0])


def test_an_optimizer_step_between_two_backwards_of_one_graph_is_refused():
    layer = nn.Linear(3, 2, dtype=np.float64, rng=0)
    optimizer = optim.SGD(layer.parameters(), lr=0.1)
    loss = layer(Tensor(np.ones((4, 3)))).sum()
    loss.backward()
    optimizer.step()
    with pytest.raises(RuntimeError, match="modified in place"):
        loss.backward()
    layer(Tensor(np.ones((4, 3)))).sum().backward()  # a new forward pass is fine


def test_an_op_that_uses_its_output_refuses_when_the_output_was_written():
    x = Tensor([0.5, 1.0], requires_grad=True)
    y = x.exp()
    y.mul_(2.0)
    with pytest.raises(RuntimeError, match="through (Exp|Sum)"):
        y.sum().backward()
    with pytest.raises(RuntimeError, match="through Exp .* output"):
        y.backward(np.ones(2))


def test_loading_a_state_dict_counts_as_a_write():
    layer = nn.Linear(2, 2, dtype=np.float64, rng=0)
    loss = layer(Tensor(np.ones((1, 2)))).sum()
    layer.load_state_dict(nn.Linear(2, 2, dtype=np.float64, rng=1).state_dict())
    with pytest.raises(RuntimeError, match="modified in place"):
        loss.backward()


def test_the_gradient_given_to_backward_is_copied_not_shared():
    x = Tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    g = np.array([1.0, 1.0])
    y.backward(g)
    g[:] = 100.0
    np.testing.assert_array_equal(y.grad, [1.0, 1.0])
    np.testing.assert_array_equal(x.grad, [2.0, 2.0])


def test_a_gradient_of_nones_is_refused_not_read_as_nan():
    y = Tensor([1.0, 2.0, 3.0], requires_grad=True) * 2
    with pytest.raises(TypeError, match="grad must be an array of numbers"):
        y.backward([None] * 3)


def test_no_grad_in_one_thread_leaves_recording_on_in_another():
    inside, release, seen = threading.Event(), threading.Event(), {}

    def other() -> None:
        with no_grad():
            seen["other"] = is_grad_enabled()
            inside.set()
            release.wait(5)

    thread = threading.Thread(target=other)
    thread.start()
    inside.wait(5)
    y = Tensor([1.0], requires_grad=True) * 2  # the main thread records while the other is in no_grad
    release.set()
    thread.join()
    assert seen["other"] is False and y.requires_grad and y.op is not None


def test_no_grad_on_a_generator_covers_its_steps_and_not_the_caller():
    x = Tensor([1.0], requires_grad=True)

    @no_grad()
    def steps():
        for _ in range(3):
            received = yield (x * 2).requires_grad
            assert received is None
        return "done"

    caller_modes = []
    generator = steps()
    values = []
    for value in generator:
        values.append(value)
        caller_modes.append((x * 2).requires_grad)
    assert values == [False, False, False] and caller_modes == [True, True, True]

    def driver():
        return (yield from steps())

    driven = driver()
    with pytest.raises(StopIteration) as stop:
        while True:
            next(driven)
    assert stop.value.value == "done"


def test_a_name_must_be_a_string():
    with pytest.raises(TypeError, match="name must be a string or None, got int 123"):
        Tensor(1.0, name=123)
