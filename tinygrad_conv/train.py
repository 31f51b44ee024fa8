"""Training the demo CNN on the handwritten digits (8×8, 10 classes), on the library's own engine.

    model: Conv(1→24, 3, pad 1) – ReLU – Conv(24→48, 3, pad 1) – ReLU – MaxPool 2 – Flatten – Dropout(0.25)
           – Linear(768→10)
    data:  standardized pixels; each training image shifted by up to one pixel (data.random_shift)
    loss:  cross_entropy(model(x), y), mean over the batch
    optim: SGD with momentum 0.9 (or Adam), lr annealed over the epochs as lr·(1 + cos(π·epoch/epochs))/2

Why these (measured 2026-11-28 over seeds 0–7, 30 epochs of batch 64 at lr 0.1): 98.1–99.4% test accuracy, mean
98.75%, in about 3.5 s of training. Without dropout, or with 16/32 channels, the mean was 98.6–98.8% but one seed
in eight ended at 97.2–97.8%; 8/16 channels, Adam, no shifts or raw [0, 1] pixels each cost 0.5–1.5 points.
One test image is 0.28%, so a run's accuracy moves by ±0.5% with the seed (or any change in float rounding).

One seed fixes the weights' initialisation and the batch order, so two runs give the same bits.
`train()` is what `tinygrad-conv train` runs; demos/train_digits.py writes the same loop out by hand.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from tinygrad_conv import data, nn, optim
from tinygrad_conv import functional as F
from tinygrad_conv.tensor import Tensor, no_grad

NUM_CLASSES = 10


def build_model(seed: int = 0) -> nn.Sequential:
    """The demo CNN, float32, initialised from `seed`: (N, 1, 8, 8) images → (N, 10) logits."""
    rng = np.random.default_rng(seed)
    return nn.Sequential(
        nn.Conv2d(1, 24, 3, padding=1, rng=rng),
        nn.ReLU(),
        nn.Conv2d(24, 48, 3, padding=1, rng=rng),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Dropout(0.25, rng=rng),
        nn.Linear(48 * 4 * 4, NUM_CLASSES, rng=rng),
    )


@dataclass
class TrainConfig:
    """Hyperparameters of one run; every field is a `tinygrad-conv train` option."""

    epochs: int = 30
    batch_size: int = 64
    lr: float = 0.1
    optimizer: str = "sgd"
    seed: int = 0
    on_nonfinite: str = "stop"  # a NaN/inf loss: "stop" the run, or "skip" that batch

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "seed"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < (0 if name == "seed" else 1):
                raise ValueError(f"{name} must be an integer >= {0 if name == 'seed' else 1}, got {value!r}")
        if isinstance(self.lr, bool) or not isinstance(self.lr, (int, float)) or not math.isfinite(self.lr) \
                or self.lr <= 0:
            raise ValueError(f"lr must be a positive finite number, got {self.lr!r}")
        if self.optimizer not in ("adam", "sgd"):
            raise ValueError(f"optimizer must be 'adam' or 'sgd', got {self.optimizer!r}")
        if self.on_nonfinite not in ("stop", "skip"):
            raise ValueError(f"on_nonfinite must be 'stop' or 'skip', got {self.on_nonfinite!r}")


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; says where."""


@dataclass
class TrainResult:
    model: nn.Sequential
    metrics: dict = field(default_factory=dict)


def make_optimizer(config: TrainConfig, params: list) -> optim.Optimizer:
    if config.optimizer == "adam":
        return optim.Adam(params, lr=config.lr)
    return optim.SGD(params, lr=config.lr, momentum=0.9)


def cosine_lr(lr: float, epoch: int, epochs: int) -> float:
    """The learning rate of epoch 0..epochs−1: lr·(1 + cos(π·epoch/epochs))/2, PyTorch's CosineAnnealingLR."""
    return lr * (1 + math.cos(math.pi * epoch / epochs)) / 2


@no_grad()
def predict(model: nn.Module, images: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Class predictions (N,) for standardized images (N, 1, 8, 8) (data.standardize), recording no graph."""
    model.eval()
    predictions = [model(Tensor(images[i : i + batch_size])).data.argmax(axis=1)
                   for i in range(0, len(images), batch_size)]
    return np.concatenate(predictions) if predictions else np.zeros(0, np.int64)


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int = NUM_CLASSES) -> np.ndarray:
    """counts[true, predicted]."""
    counts = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(counts, (labels, predictions), 1)
    return counts


def train(
    config: TrainConfig,
    progress: bool = True,
    log: Callable[[str], None] = print,
    split: tuple[np.ndarray, ...] | None = None,
) -> TrainResult:
    """Train the demo CNN; returns the model and metrics (accuracies, losses per epoch, seconds, images/s).

    split: (x_train, y_train, x_test, y_test) with pixels in [0, 1], default data.load_split().
    """
    x_train, y_train, x_test, y_test = split if split is not None else data.load_split()
    x_test = data.standardize(x_test)
    model = build_model(config.seed)
    optimizer = make_optimizer(config, list(model.parameters()))
    order_rng = np.random.default_rng(config.seed + 1)
    history, train_seconds, skipped = [], 0.0, 0

    for epoch in range(1, config.epochs + 1):
        model.train()
        optimizer.lr = cosine_lr(config.lr, epoch - 1, config.epochs)
        started = time.perf_counter()
        total_loss, correct, seen = 0.0, 0, 0
        batches = data.batches(x_train, y_train, config.batch_size, rng=order_rng)
        bar = _progress(batches, progress, epoch, config, len(x_train))
        for step, (images, labels) in enumerate(bar, start=1):
            images = data.standardize(data.random_shift(images, order_rng))
            with np.errstate(over="ignore", invalid="ignore"):  # a diverging run is caught just below, by name
                logits = model(Tensor(images))
                loss = F.cross_entropy(logits, labels)
            loss_value = float(loss.data)
            if not math.isfinite(loss_value):
                where = f"loss is {loss_value} at epoch {epoch}, batch {step}"
                if config.on_nonfinite == "stop":
                    raise NonFiniteLossError(f"{where}; lower the learning rate (--lr), or skip such batches "
                                             f"(on_nonfinite='skip', --on-nonfinite skip)")
                log(f"warning: {where}; batch skipped")
                skipped += 1
                continue
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total_loss += loss_value * len(labels)
            correct += int((logits.data.argmax(axis=1) == labels).sum())
            seen += len(labels)
            if progress:
                bar.set_postfix(loss=f"{total_loss / seen:.4f}", acc=f"{correct / seen:.3f}", refresh=False)
        seconds = time.perf_counter() - started
        train_seconds += seconds
        test_predictions = predict(model, x_test)
        test_accuracy = float((test_predictions == y_test).mean())
        history.append({
            "epoch": epoch,
            "train_loss": total_loss / seen if seen else math.nan,  # nan: every batch of the epoch was skipped
            "train_accuracy": correct / seen if seen else math.nan,
            "test_accuracy": test_accuracy,
            "seconds": seconds,
        })
        log(f"epoch {epoch:>3}/{config.epochs}  loss {history[-1]['train_loss']:.4f}  "
            f"train {100 * history[-1]['train_accuracy']:.1f}%  test {100 * test_accuracy:.1f}%  {seconds:.2f} s")

    metrics = {  # test_accuracy and test_predictions: the last epoch's, i.e. the final model's
        "test_accuracy": test_accuracy,
        "train_accuracy": float((predict(model, data.standardize(x_train)) == y_train).mean()),
        "epochs": config.epochs,
        "train_seconds": train_seconds,
        "images_per_second": config.epochs * len(x_train) / train_seconds if train_seconds else 0.0,
        "skipped_batches": skipped,
        "history": history,
        "confusion": confusion_matrix(y_test, test_predictions).tolist(),
        "args": asdict(config),
    }
    return TrainResult(model, metrics)


def _progress(batches, enabled: bool, epoch: int, config: TrainConfig, n: int):
    if not enabled:
        return batches
    from tqdm import tqdm

    return tqdm(batches, total=math.ceil(n / config.batch_size), desc=f"epoch {epoch}/{config.epochs}",
                leave=False, unit="batch")
