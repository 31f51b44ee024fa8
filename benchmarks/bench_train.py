"""Seconds per epoch of the demo CNN on the digits, ours beside the same network in PyTorch; where our step's
time goes (a timer around every primitive op); peak memory of an epoch and whether memory stays flat (tracemalloc).

    python benchmarks/bench_train.py [--quick] [--batch-size N] [--epochs 10]
    python benchmarks/bench_train.py --data mnist5k [--quick] [--epochs 5]     # the 28×28 LeNet (lenet5)
    python benchmarks/bench_train.py --data mnist-size [--epochs 1]           # lenet5 on 60,000 synthetic 28×28

--data mnist5k / mnist-size: seconds per epoch of train.build_lenet5 (what `tinygrad-conv train --data mnist5k`
trains) beside the same network in torch.nn, each library in its own process (ours first, then torch, then ours and
torch again; the child processes are this script with --only ours|torch) so neither's thread pool or allocator
touches the other's timing. Same initial weights, batches, optimizer and lr; the training loop only (no evaluation,
no augmentation). mnist-size is random pixels and labels the size of full MNIST's training set (60,000 images):
an epoch's time does not depend on the pixel values.

The network is train.build_model, mirrored layer by layer in torch.nn; both start from the same weights (ours copied
into torch), use TrainConfig's optimizer and learning rate and see the same batches in the same order (data.batches
with equal seeds). Epochs alternate: ours, torch, ours, torch, ...
"""

from __future__ import annotations

import gc
import time
import tracemalloc

import numpy as np
from common import (
    SETTLE,
    OpTimers,
    PrimitivePatch,
    fmt,
    import_torch,
    median,
    parse_args,
    pct,
    print_header,
    print_table,
    spread,
    timing,
)

import tinygrad_conv
from tinygrad_conv import Tensor, data, nn
from tinygrad_conv import functional as F
from tinygrad_conv.train import MODEL_DEFAULTS, TrainConfig, build, build_model, make_optimizer, predict

# ---------------------------------------------------------------- the two trainers


class Ours:
    """train.build_model and make_optimizer with TrainConfig's defaults: what `tinygrad-conv train` trains."""

    def __init__(self, seed: int, batch_size: int, split: tuple[np.ndarray, ...], model: str = "digits-cnn"):
        self.x_train, self.y_train, self.x_test, self.y_test = split
        if model == "digits-cnn":
            self.model = build_model(seed)
        else:
            self.model = build(model, seed, self.x_train.shape[1], int(self.y_train.max()) + 1, self.x_train.shape[2:])
        self.config = TrainConfig.for_model(model, seed=seed)
        self.optimizer = make_optimizer(self.config, list(self.model.parameters()))
        self.batch_size = batch_size
        self.order_rng = np.random.default_rng(seed + 1)  # the batch order, as train.train()

    def step(self, images: np.ndarray, labels: np.ndarray) -> float:
        loss = F.cross_entropy(self.model(Tensor(images)), labels)
        self.optimizer.zero_grad()
        loss.backward(inputs=self.optimizer.params)  # as train.train()
        self.optimizer.step()
        return float(loss.data)

    def epoch(self) -> None:
        self.model.train()
        for images, labels in data.batches(self.x_train, self.y_train, self.batch_size, rng=self.order_rng):
            self.step(images, labels)

    def test_accuracy(self) -> float:
        return float((predict(self.model, self.x_test) == self.y_test).mean())

    def logits(self, images: np.ndarray) -> np.ndarray:
        self.model.eval()
        with tinygrad_conv.no_grad():
            return self.model(Tensor(images)).data


def torch_layer(torch, layer: nn.Module):
    """The torch.nn layer with the same hyperparameters as one of ours."""
    tnn = torch.nn
    if isinstance(layer, nn.Conv2d):
        padding = layer.padding if isinstance(layer.padding, (int, str)) else tuple(layer.padding)
        return tnn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride, padding,
                          layer.dilation, layer.groups, bias=layer.bias is not None)
    if isinstance(layer, nn.Linear):
        return tnn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None)
    if isinstance(layer, nn.MaxPool2d):
        return tnn.MaxPool2d(layer.kernel_size, layer.stride, layer.padding)
    if isinstance(layer, nn.AvgPool2d):
        return tnn.AvgPool2d(layer.kernel_size, layer.stride, layer.padding)
    if isinstance(layer, nn.Flatten):
        return tnn.Flatten(layer.start_dim)
    if isinstance(layer, nn.Dropout):
        return tnn.Dropout(layer.p)
    if isinstance(layer, nn.ReLU):
        return tnn.ReLU()
    raise TypeError(f"no torch counterpart for {type(layer).__name__}")


class Torch:
    """Our model layer by layer in torch.nn, with our initial weights, the same optimizer and the same batches."""

    def __init__(self, torch, ours: Ours, seed: int):
        self.torch = torch
        self.x_train, self.y_train, self.x_test, self.y_test = ours.x_train, ours.y_train, ours.x_test, ours.y_test
        self.model = torch.nn.Sequential(*(torch_layer(torch, layer) for layer in ours.model))
        with torch.no_grad():
            for mine, theirs in zip(ours.model.parameters(), self.model.parameters(), strict=True):
                theirs.copy_(torch.tensor(np.asarray(mine.data), dtype=torch.float32))
        config = ours.config
        if config.optimizer == "adam":
            self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr)
        else:  # as train.make_optimizer
            self.optimizer = torch.optim.SGD(self.model.parameters(), lr=config.lr, momentum=0.9)
        self.batch_size = ours.batch_size
        self.order_rng = np.random.default_rng(seed + 1)  # the same batch order as ours

    def step(self, images: np.ndarray, labels: np.ndarray) -> float:
        torch = self.torch  # torch.tensor copies, as our Tensor(images) does
        loss = torch.nn.functional.cross_entropy(self.model(torch.tensor(images)),
                                                 torch.tensor(labels, dtype=torch.int64))
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return loss.item()

    def epoch(self) -> None:
        self.model.train()
        for images, labels in data.batches(self.x_train, self.y_train, self.batch_size, rng=self.order_rng):
            self.step(images, labels)

    def logits(self, images: np.ndarray) -> np.ndarray:
        self.model.eval()
        with self.torch.no_grad():
            return self.model(self.torch.tensor(images)).numpy()

    def test_accuracy(self) -> float:
        return float((self.logits(self.x_test).argmax(axis=1) == self.y_test).mean())


def timed(fn) -> float:
    time.sleep(SETTLE)
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


# ---------------------------------------------------------------- (a) where a step's time goes


def batch_stream(trainer: Ours, batch_size: int, seed: int):
    """Endless training batches of `batch_size`, epoch after epoch."""
    rng = np.random.default_rng(seed)
    while True:
        yield from data.batches(trainer.x_train, trainer.y_train, batch_size, rng=rng)


def step_seconds(trainer: Ours, batch_size: int, steps: int, seed: int) -> float:
    """Mean seconds of one training step at this batch size (full batches only; the mean, as the op timers sum)."""
    stream = (b for b in batch_stream(trainer, batch_size, seed) if len(b[1]) == batch_size)
    for _ in range(5):
        trainer.step(*next(stream))
    batches = [next(stream) for _ in range(steps)]
    started = time.perf_counter()
    for images, labels in batches:
        trainer.step(images, labels)
    return (time.perf_counter() - started) / steps


class OpReplay(PrimitivePatch):
    """Records every primitive's forward/backward result over some steps, then replays them: after `replaying()`
    each primitive returns its recorded result without computing anything, so a step's time is the engine and glue
    alone (Tensor._apply, backward()'s walk, module and functional code, argument checks)."""

    def __init__(self) -> None:
        super().__init__()
        self.results: list = []

    def recording(self) -> None:
        def make(method, key):
            def recorded(op, *args, **kwargs):
                result = method(op, *args, **kwargs)
                self.results.append(result)
                return result
            return recorded
        self.patch(make)

    def replaying(self) -> None:
        replay = iter(self.results)
        self.patch(lambda method, key: lambda op, *args, **kwargs: next(replay))


def step_timing_the_optimizer(trainer: Ours, images: np.ndarray, labels: np.ndarray) -> float:
    """One training step; returns the seconds its optimizer.step() took."""
    loss = F.cross_entropy(trainer.model(Tensor(images)), labels)
    trainer.optimizer.zero_grad()
    loss.backward(inputs=trainer.optimizer.params)
    started = time.perf_counter()
    trainer.optimizer.step()
    return time.perf_counter() - started


def bookkeeping_seconds(trainer: Ours, batches: list) -> dict[str, float]:
    """Seconds per step with every primitive replayed: 'step', and of it 'optimizer' (optimizer.step()) and 'dropout'
    (F.dropout: drawing the random mask), the numpy work that is left outside the primitives. The same batches run
    twice: recorded, then replayed (the replayed results do not depend on what the glue computes, e.g. dropout's
    mask)."""
    replay, seconds = OpReplay(), {"optimizer": 0.0, "dropout": 0.0}
    dropout = F.dropout
    try:
        replay.recording()
        for images, labels in batches:
            trainer.step(images, labels)
        replay.replaying()
        F.dropout = timing(dropout, seconds, "dropout")
        started = time.perf_counter()
        seconds["optimizer"] = sum(step_timing_the_optimizer(trainer, images, labels) for images, labels in batches)
        seconds["step"] = time.perf_counter() - started
    finally:
        replay.restore()
        F.dropout = dropout
    return {name: value / len(batches) for name, value in seconds.items()}


def profile_steps(split, seed: int, batch_size: int, steps: int) -> None:
    trainer = Ours(seed, batch_size, split)
    plain = step_seconds(trainer, batch_size, steps, seed)
    single = Ours(seed, 1, split)
    single.optimizer.lr /= batch_size  # the same step per image: at lr 0.1 batch-1 SGD diverges into NaNs
    one = step_seconds(single, 1, steps, seed + 8)
    stream = (b for b in batch_stream(trainer, batch_size, seed + 7) if len(b[1]) == batch_size)
    optimizer_seconds = 0.0
    with OpTimers() as timers:
        for _ in range(5):  # warm-up
            trainer.step(*next(stream))
        timers.seconds.clear(), timers.calls.clear()
        started = time.perf_counter()
        for _ in range(steps):
            optimizer_seconds += step_timing_the_optimizer(trainer, *next(stream))
        timed_step = (time.perf_counter() - started) / steps
    in_ops = sum(timers.seconds.values()) / steps
    in_optimizer = optimizer_seconds / steps
    rest = plain - in_ops - in_optimizer
    replayed = bookkeeping_seconds(trainer, [next(stream) for _ in range(steps)])
    direct = replayed["step"] - replayed["optimizer"]
    python_alone = direct - replayed["dropout"]

    print(f"(a) where one training step goes (batch {batch_size}, {steps} steps)")
    print("    method: every primitive's forward/backward (ops.py) runs inside a timer; those bodies are the numpy")
    print("    kernels of the step (and numpy's per-call overhead). The optimizer's update is timed apart. Graph")
    print("    bookkeeping is the rest of a step run without timers: Tensor._apply, backward()'s walk and gradient")
    print("    sums, module/functional glue, argument checks. Measured directly too: the same kind of steps with every")
    print("    primitive replaying its recorded result (no numpy kernel runs), optimizer excluded. Cross-check: a step")
    print("    at batch 1 is nearly all fixed cost.")
    rows = [
        ["step, no timers", fmt(1e3 * plain, 3), "100%"],
        ["  inside primitive ops (numpy kernels)", fmt(1e3 * in_ops, 3), pct(in_ops / plain)],
        ["  optimizer.step()", fmt(1e3 * in_optimizer, 3), pct(in_optimizer / plain)],
        ["  graph bookkeeping (the rest)", fmt(1e3 * rest, 3), pct(rest / plain)],
        ["  graph bookkeeping (direct: primitives replayed)", fmt(1e3 * direct, 3), pct(direct / plain)],
        ["    of which dropout's random mask (numpy)", fmt(1e3 * replayed["dropout"], 3),
         pct(replayed["dropout"] / plain)],
        ["    the rest: Python alone", fmt(1e3 * python_alone, 3), pct(python_alone / plain)],
        ["step with the timers (their own cost included)", fmt(1e3 * timed_step, 3), "-"],
        ["step at batch 1, no timers (cross-check)", fmt(1e3 * one, 3), f"{pct(one / plain)} of a full step"],
    ]
    print_table(["per step", "ms", "share"], rows)
    top = sorted(timers.seconds.items(), key=lambda item: -item[1])[:10]
    print_table(["primitive", "calls/step", "ms/step", "share of step"],
                [[name, f"{timers.calls[name] / steps:.0f}", fmt(1e3 * t / steps, 3), pct(t / steps / plain)]
                 for name, t in top], title="top 10 primitives by time:")


# ---------------------------------------------------------------- (b) memory


def memory(split, seed: int, batch_size: int, epochs: int) -> None:
    gc.collect()
    tracemalloc.start()
    trainer = Ours(seed, batch_size, split)
    gc.collect()
    before, _ = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    trainer.epoch()
    _, peak = tracemalloc.get_traced_memory()
    currents = []
    for _ in range(epochs):
        trainer.epoch()
        gc.collect()
        currents.append(tracemalloc.get_traced_memory()[0])
    tracemalloc.stop()
    first, last, most = currents[0], currents[-1], max(currents)
    growth = last - first
    flat = growth < 0.05 * first or growth < 1 << 20
    mb = 1 / (1 << 20)
    print("(b) memory (tracemalloc: Python objects and numpy buffers; the data set was loaded before tracing)")
    print(f"    peak during one training epoch (first epoch, fresh model): {peak * mb:.2f} MB traced, "
          f"{(peak - before) * mb:.2f} MB above the {before * mb:.2f} MB held before it (model)")
    print(f"    current after each of {epochs} further epochs (after gc.collect()): first {first * mb:.3f} MB, "
          f"last {last * mb:.3f} MB, max {most * mb:.3f} MB; growth {growth * mb:+.3f} MB -> "
          f"flat: {'yes' if flat else 'no'} (yes = growth < 5% or < 1 MB)")


# ---------------------------------------------------------------- main


def argparse_suppress() -> str:
    import argparse

    return argparse.SUPPRESS


# ---------------------------------------------------------------- (c) 28×28: each library in its own process


def lenet_split(name: str) -> tuple[np.ndarray, ...]:
    """Standardized (x_train, y_train, x_test, y_test) for --data mnist5k or mnist-size (60,000 random images)."""
    from tinygrad_conv import datasets

    if name == "mnist5k":
        dataset = datasets.load("mnist5k")
        return (dataset.standardize(dataset.x_train), dataset.y_train, dataset.standardize(dataset.x_test),
                dataset.y_test)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((60000, 1, 28, 28), dtype=np.float32)
    y = rng.integers(0, 10, 60000)
    return x, y, x[:1000], y[:1000]


def child(args) -> None:
    """One library's epochs, as JSON on the last line of stdout: {"seconds": [...], "accuracy": ...}."""
    import json

    split = lenet_split(args.data)
    ours = Ours(args.seed, args.batch_size, split, model="lenet5")
    trainer = ours
    if args.only == "torch":
        torch = import_torch()
        trainer = Torch(torch, ours, args.seed)
        del ours.model  # only its initial weights were needed
    trainer.epoch()  # warm-up epoch, not recorded
    seconds = [timed(trainer.epoch) for _ in range(args.epochs)]
    print(json.dumps({"seconds": seconds, "accuracy": trainer.test_accuracy()}))


def separate_processes(args) -> None:
    import json
    import subprocess
    import sys

    torch = import_torch()
    epochs = args.epochs or (1 if args.data == "mnist-size" else (2 if args.quick else 5))
    size = ("4000 training images of mnist5k" if args.data == "mnist5k"
            else "60,000 random 28×28 images (full MNIST's size)")
    print_header(
        f"lenet5 training on {size}: tinygrad_conv vs PyTorch, each in its own process",
        torch,
        args.quick,
        [f"model: {' - '.join(type(layer).__name__ for layer in build('lenet5', 0, 1, 10, (28, 28)))} "
         f"(train.build_lenet5)",
         f"data: standardized, no augmentation; batch {args.batch_size}; sgd lr {MODEL_DEFAULTS['lenet5']['lr']} "
         f"momentum 0.9 (constant lr); seed {args.seed}",
         f"timing: 1 warm-up epoch, then {epochs} timed epoch(s) per process; processes ours, torch, ours, torch; "
         "medians over both processes' epochs"],
    )
    times: dict[str, list[float]] = {"ours": [], "torch": []}
    accuracy = {}
    names = ["ours", "torch"] if torch is not None else ["ours"]
    for _ in range(1 if args.data == "mnist-size" else 2):
        for name in names:
            command = [sys.executable, __file__, "--data", args.data, "--only", name, "--epochs", str(epochs),
                       "--batch-size", str(args.batch_size), "--seed", str(args.seed)]
            done = subprocess.run(command, capture_output=True, text=True, check=True)
            result = json.loads(done.stdout.strip().splitlines()[-1])
            times[name] += result["seconds"]
            accuracy[name] = result["accuracy"]
    n = 4000 if args.data == "mnist5k" else 60000
    rows = [[name, fmt(median(times[name]), 3), fmt(n / median(times[name]), 0), fmt(min(times[name]), 3),
             pct(spread(times[name])), f"{100 * accuracy[name]:.1f}%"] for name in names]
    print_table(["", "s/epoch (median)", "images/s", "fastest epoch s", "noise", "test acc (last process)"], rows,
                title="seconds per epoch (noise = interquartile range / median of the epochs):")
    if torch is not None:
        print(f"ratio ours/torch (median s/epoch): {median(times['ours']) / median(times['torch']):.2f}")


def main() -> None:
    config = TrainConfig()

    def extra(parser) -> None:
        parser.add_argument("--batch-size", type=int, default=config.batch_size)
        parser.add_argument("--epochs", type=int, default=None, help="timed epochs of each (default 10; --quick 3)")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--data", choices=["digits", "mnist5k", "mnist-size"], default="digits",
                            help="digits: the demo CNN (default); mnist5k / mnist-size: lenet5 on 28×28")
        parser.add_argument("--only", choices=["ours", "torch"], help=argparse_suppress())

    args = parse_args(__doc__.splitlines()[0], interleave=False, extra=extra)
    if args.only:
        return child(args)
    if args.data != "digits":
        return separate_processes(args)
    epochs = args.epochs or (3 if args.quick else 10)
    profile_n, memory_epochs = (30, 5) if args.quick else (100, 20)
    torch = import_torch()
    x_train, y_train, x_test, y_test = data.load_split()
    split = (data.standardize(x_train), y_train, data.standardize(x_test), y_test)  # as train.train feeds the model
    print_header(
        "demo CNN training on the digits: tinygrad_conv vs PyTorch",
        torch,
        args.quick,
        [
            f"model: {' - '.join(type(layer).__name__ for layer in build_model())} (train.build_model)",
            f"data: {len(x_train)} training / {len(x_test)} test images {x_train.shape[1:]}, standardized, no "
            f"augmentation; batch {args.batch_size}; {config.optimizer} lr {config.lr} (TrainConfig defaults, "
            f"constant lr); seed {args.seed}",
            f"timing: {epochs} epochs each, alternating ours/torch epoch by epoch ({1e3 * SETTLE:.0f} ms pause "
            "before each); seconds per epoch = training loop only (no evaluation); medians",
        ],
    )

    ours = Ours(args.seed, args.batch_size, split)
    trainers = {"ours": ours}
    if torch is not None:
        trainers["torch"] = Torch(torch, ours, args.seed)
        start = np.abs(ours.logits(split[2][:64]) - trainers["torch"].logits(split[2][:64])).max()
        print(f"same initial network: max |logits ours - torch| on 64 test images = {start:.1e}\n")
    times = {name: [] for name in trainers}
    for _ in range(epochs):
        for name, trainer in trainers.items():
            times[name].append(timed(trainer.epoch))
    rows = []
    for name, trainer in trainers.items():
        seconds = median(times[name])
        rows.append([name, fmt(seconds, 4), fmt(len(split[0]) / seconds, 0), fmt(min(times[name]), 4),
                     pct(spread(times[name])), f"{100 * trainer.test_accuracy():.1f}%"])
    print_table(["", "s/epoch (median)", "images/s", "fastest epoch s", "noise", f"test acc after {epochs} epochs"],
                rows, title="seconds per epoch (noise = interquartile range / median of the epochs):")
    if torch is not None:
        print(f"ratio ours/torch (median s/epoch): {median(times['ours']) / median(times['torch']):.2f}\n")
    else:
        print("torch not importable: no PyTorch row\n")

    profile_steps(split, args.seed, args.batch_size, profile_n)
    memory(split, args.seed, args.batch_size, memory_epochs)


if __name__ == "__main__":
    main()
