"""Training the demo CNN: it learns, it is deterministic, the demo script matches it, checkpoints round-trip."""

import dataclasses
import hashlib
import json
import re
import runpy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinygrad_conv import data, serialization
from tinygrad_conv.train import TrainConfig, build_model, cosine_lr, predict, train

ROOT = Path(__file__).resolve().parent.parent
QUIET = {"progress": False, "log": lambda line: None}


@pytest.fixture(scope="module")
def three_epochs():
    return train(TrainConfig(epochs=3), **QUIET)


def _digest(model) -> str:
    sha = hashlib.sha256()
    for name, array in sorted(model.state_dict().items()):
        sha.update(name.encode() + array.tobytes())
    return sha.hexdigest()


def _without_times(metrics: dict) -> dict:
    history = [{k: v for k, v in epoch.items() if k != "seconds"} for epoch in metrics["history"]]
    kept = {k: v for k, v in metrics.items() if k not in ("train_seconds", "images_per_second", "history")}
    return {**kept, "history": history}


def test_three_epochs_clearly_learn(three_epochs):
    metrics = three_epochs.metrics
    assert metrics["test_accuracy"] > 0.9 and metrics["train_accuracy"] > 0.9
    assert [h["epoch"] for h in metrics["history"]] == [1, 2, 3]
    assert metrics["history"][-1]["train_loss"] < metrics["history"][0]["train_loss"] < np.log(10)
    assert np.array(metrics["confusion"]).sum() == 360 and metrics["skipped_batches"] == 0
    assert metrics["args"] == {**TrainConfig().__dict__, "epochs": 3}
    json.dumps(metrics)  # everything in it can go to metrics.json


def test_same_seed_gives_the_same_weights_and_metrics(three_epochs):
    again = train(TrainConfig(epochs=3), **QUIET)
    assert _digest(again.model) == _digest(three_epochs.model)
    assert _without_times(again.metrics) == _without_times(three_epochs.metrics)
    other_seed = train(TrainConfig(epochs=1, seed=1), **QUIET)
    assert _digest(other_seed.model) != _digest(train(TrainConfig(epochs=1), **QUIET).model)


TRAIN_ONE_EPOCH = """
import hashlib, json
from tinygrad_conv.train import TrainConfig, train
result = train(TrainConfig(epochs=1), progress=False, log=lambda line: None)
sha = hashlib.sha256()
for name, array in sorted(result.model.state_dict().items()):
    sha.update(name.encode() + array.tobytes())
print(sha.hexdigest())
print(json.dumps(result.metrics))  # as the CLI writes metrics.json
"""


def _metrics_bits(metrics: dict) -> str:
    """The metrics without timings, as JSON: float repr round-trips, so equal text is equal bits."""
    return json.dumps(_without_times(metrics), sort_keys=True)


def test_same_seed_gives_the_same_weights_and_metrics_in_separate_processes():
    runs = []
    for _ in range(2):  # one after the other: side by side, their BLAS threads contend and take 8× as long
        done = subprocess.run([sys.executable, "-c", TRAIN_ONE_EPOCH], capture_output=True, text=True, cwd=ROOT)
        assert done.returncode == 0, done.stderr
        digest, metrics_json = done.stdout.splitlines()
        runs.append((digest, _metrics_bits(json.loads(metrics_json))))
    here = train(TrainConfig(epochs=1), **QUIET)
    assert runs == [(_digest(here.model), _metrics_bits(here.metrics))] * 2
    assert json.loads(runs[0][1])["history"][0]["train_loss"] > 0  # the losses are in what is compared


def test_demo_script_trains_the_same_weights_as_the_cli(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["train_digits.py", "2"])
    demo = runpy.run_path(str(ROOT / "demos" / "train_digits.py"), run_name="__main__")
    assert _digest(demo["model"]) == _digest(train(TrainConfig(epochs=2), **QUIET).model)
    assert capsys.readouterr().out.count("test accuracy") == 2


def test_checkpoint_round_trip_predicts_the_same(three_epochs, tmp_path):
    serialization.save(three_epochs.model.state_dict(), tmp_path / "model.npz")
    restored = build_model(seed=123)
    restored.load_state_dict(serialization.load(tmp_path / "model.npz"))
    assert _digest(restored) == _digest(three_epochs.model)
    x_test = data.standardize(data.load_split()[2])
    np.testing.assert_array_equal(predict(restored, x_test), predict(three_epochs.model, x_test))


def test_load_state_dict_names_the_key_and_both_shapes(three_epochs):
    state = three_epochs.model.state_dict()
    full = state["0.weight"].shape
    state["0.weight"] = state["0.weight"][:8]
    with pytest.raises(ValueError, match=rf"'0\.weight': the state dict has \(8, 1, 3, 3\), the model has "
                                         rf"\({full[0]}, 1, 3, 3\)"):
        build_model().load_state_dict(state)


def test_cosine_lr_matches_torch_cosine_annealing(torch):
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=0.1)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=7)
    for epoch in range(7):
        assert cosine_lr(0.1, epoch, 7) == pytest.approx(optimizer.param_groups[0]["lr"], rel=1e-12)
        optimizer.step()
        schedule.step()


@pytest.mark.parametrize(("field", "value", "message"), [
    ("epochs", 0, "epochs must be an integer >= 1, got 0"),
    ("epochs", 2.5, "epochs must be an integer >= 1, got 2.5"),
    ("batch_size", -1, "batch_size must be an integer >= 1, got -1"),
    ("seed", -3, "seed must be an integer >= 0, got -3"),
    ("lr", float("nan"), "lr must be a positive finite number, got nan"),
    ("lr", -1.0, "lr must be a positive finite number, got -1.0"),
    ("lr", float("inf"), "lr must be a positive finite number, got inf"),
    ("optimizer", "rmsprop", "optimizer must be 'adam' or 'sgd', got 'rmsprop'"),
    ("on_nonfinite", "ignore", "on_nonfinite must be 'stop' or 'skip', got 'ignore'"),
])
def test_config_rejects_bad_values_by_name(field, value, message):
    with pytest.raises(ValueError, match=f"^{message.replace('(', '[(]')}$"):
        TrainConfig(**{field: value})


# ---------------------------------------------------------------- the 28×28 LeNet


from tinygrad_conv import datasets  # noqa: E402
from tinygrad_conv.train import (  # noqa: E402
    build,
    build_lenet5,
    checkpoint_metadata,
    default_model,
    model_from_metadata,
)


@pytest.fixture(scope="module")
def mnist_small():
    """mnist5k with 1200 of its training images (120 per class) and 500 test images: seconds, not minutes."""
    full = datasets.load("mnist5k")
    keep_train = np.concatenate([np.flatnonzero(full.y_train == c)[:120] for c in range(10)])
    keep_test = np.arange(0, 1000, 2)
    full.x_train, full.y_train = full.x_train[np.sort(keep_train)], full.y_train[np.sort(keep_train)]
    full.x_test, full.y_test = full.x_test[keep_test], full.y_test[keep_test]
    return full


def test_a_short_lenet5_run_on_28x28_digits_clearly_learns(mnist_small):
    config = TrainConfig.for_model("lenet5", data="mnist5k", epochs=3)
    result = train(config, dataset=mnist_small, **QUIET)
    metrics = result.metrics
    assert metrics["model"] == "lenet5" and metrics["data"] == "mnist5k"
    assert metrics["test_accuracy"] > 0.75, metrics["history"]  # 10% is chance; 84.8% measured
    assert metrics["history"][-1]["train_loss"] < 0.5 * metrics["history"][0]["train_loss"]
    assert result.metadata["model"] == "lenet5" and result.metadata["image_size"] == [28, 28]
    assert 0.65 < result.metadata["ink_box"] < 0.8


def test_lenet5_is_deterministic_on_28x28_digits(mnist_small):
    tiny = dataclasses.replace(mnist_small, x_train=mnist_small.x_train[::4], y_train=mnist_small.y_train[::4],
                               x_test=mnist_small.x_test[:100], y_test=mnist_small.y_test[:100])
    config = TrainConfig.for_model("lenet5", data="mnist5k", epochs=1)
    first, again = (train(config, dataset=tiny, **QUIET) for _ in range(2))
    assert _digest(first.model) == _digest(again.model)
    assert _without_times(first.metrics) == _without_times(again.metrics)
    other = train(TrainConfig.for_model("lenet5", data="mnist5k", epochs=1, seed=1), dataset=tiny, **QUIET)
    assert _digest(other.model) != _digest(first.model)


def test_lenet5_shapes_follow_the_data():
    from tinygrad_conv import Tensor

    model = build_lenet5(0, in_channels=3, num_classes=4, image_size=(32, 32))
    assert model(Tensor(np.zeros((2, 3, 32, 32), np.float32))).shape == (2, 4)
    assert [type(layer).__name__ for layer in model] == ["Conv2d", "ReLU", "MaxPool2d", "Conv2d", "ReLU", "MaxPool2d",
                                                          "Flatten", "Linear", "ReLU", "Dropout", "Linear"]
    with pytest.raises(ValueError, match=r"model 'lenet5' needs images of at least 12×12 pixels, got 8×8"):
        build_lenet5(image_size=(8, 8))
    assert default_model((8, 8)) == "digits-cnn" and default_model((28, 28)) == "lenet5"


def test_the_default_digits_model_is_unchanged_by_its_new_arguments():
    assert _digest(build_model()) == _digest(build("digits-cnn", 0, 1, 10, (8, 8)))


def test_metadata_rebuilds_the_network_and_old_checkpoints_are_the_digits_cnn(mnist_small):
    meta = checkpoint_metadata("lenet5", mnist_small)
    assert meta["classes"] == [str(d) for d in range(10)] and meta["in_channels"] == 1
    assert [p.shape for p in model_from_metadata(meta).parameters()] == \
        [p.shape for p in build_lenet5().parameters()]
    assert [p.shape for p in model_from_metadata({}).parameters()] == [p.shape for p in build_model().parameters()]


@pytest.mark.parametrize(("overrides", "message"), [
    ({"model": "resnet"}, "model must be one of digits-cnn, lenet5, got 'resnet'"),
    ({"shift": -1}, "shift must be an integer >= 0, got -1"),
])
def test_config_rejects_bad_models_and_shifts(overrides, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**overrides)


def test_adam_gets_its_own_default_learning_rate_unless_one_is_given():
    from tinygrad_conv.train import ADAM_LR, TrainConfig

    assert TrainConfig.for_model("digits-cnn", optimizer="adam").lr == ADAM_LR == 1e-3
    assert TrainConfig.for_model("lenet5", optimizer="adam").lr == 1e-3
    assert TrainConfig.for_model("digits-cnn", optimizer="adam", lr=0.01).lr == 0.01
    assert TrainConfig.for_model("digits-cnn", optimizer="sgd").lr == 0.1


def test_every_epoch_records_its_learning_rate_and_test_loss(three_epochs):
    from tinygrad_conv import functional as F
    from tinygrad_conv.tensor import Tensor, no_grad

    history = three_epochs.metrics["history"]
    assert [h["lr"] for h in history] == [cosine_lr(0.1, epoch, 3) for epoch in range(3)]
    assert all(0 < h["test_loss"] < np.log(10) for h in history)
    assert three_epochs.metrics["test_loss"] == history[-1]["test_loss"]
    _, _, x_test, y_test = data.load_split()
    three_epochs.model.eval()
    with no_grad():  # the final model's mean cross-entropy over the test set, as the engine computes it
        loss = F.cross_entropy(three_epochs.model(Tensor(data.standardize(x_test))), y_test)
    assert history[-1]["test_loss"] == pytest.approx(float(loss.data), rel=1e-5)
    predictions = predict(three_epochs.model, data.standardize(x_test))
    np.testing.assert_array_equal(three_epochs.test_predictions, predictions)


def test_the_bar_and_the_epoch_line_name_their_measures_in_percent(monkeypatch):
    import tqdm

    postfixes = []

    class Bar:  # tqdm as the loop uses it, recording what the bar would show
        def __init__(self, iterable, **kwargs):
            self.iterable = iterable

        def __iter__(self):
            return iter(self.iterable)

        def set_postfix_str(self, text, refresh=True):
            postfixes.append(text)

    monkeypatch.setattr(tqdm, "tqdm", Bar)
    lines = []
    result = train(TrainConfig(epochs=1), progress=True, log=lines.append)
    assert len(postfixes) == 23  # one per batch of 64 from 1437 images
    assert all(re.fullmatch(r"running train acc \d+\.\d%, loss \d\.\d{4}", text) for text in postfixes), postfixes
    (line,) = lines
    epoch = result.metrics["history"][0]
    assert re.fullmatch(r"epoch   1/1  running train acc \d+\.\d% \(loss \d\.\d{4}\)  test acc \d+\.\d% "
                        r"\(loss \d\.\d{4}\)  \d+\.\d\d s", line), line
    assert f"running train acc {100 * epoch['train_accuracy']:.1f}%" in line
    assert f"test acc {100 * epoch['test_accuracy']:.1f}% (loss {epoch['test_loss']:.4f})" in line
    assert postfixes[-1].startswith(f"running train acc {100 * epoch['train_accuracy']:.1f}%")
