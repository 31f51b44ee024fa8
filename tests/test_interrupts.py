"""Reliability, round two (issue 15): interrupted runs, resuming, racing runs, failing writes, broken results.

The signal tests are real: `tinygrad-conv train` runs in a subprocess and gets SIGINT or SIGTERM mid-epoch; the
racing tests start real processes at once. For speed, the runs train on 320 of the bundled 8×8 digits (an IDX
folder written once), the independent subprocesses run at the same time, and in-process runs whose pictures no
test looks at skip drawing them (matplotlib takes ~1.5 s a run, most of this file's time)."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from tinygrad_conv import cli, plots, serialization
from tinygrad_conv.cli import main
from tinygrad_conv.train import TrainConfig, train


@pytest.fixture(scope="module")
def small_digits(tmp_path_factory) -> str:
    """An IDX folder (--data) of the first 320 training and 80 test images of the bundled digits."""
    from tinygrad_conv import data

    x_train, y_train, x_test, y_test = data.load_split()
    folder = tmp_path_factory.mktemp("small-digits")
    for part, images, labels in (("train", x_train[:320], y_train[:320]), ("t10k", x_test[:80], y_test[:80])):
        for kind, array in (("images-idx3", np.rint(images[:, 0] * 255)), ("labels-idx1", labels)):
            array = np.asarray(array, np.uint8)
            header = b"\0\0\x08" + bytes([array.ndim]) + b"".join(n.to_bytes(4, "big") for n in array.shape)
            (folder / f"{part}-{kind}-ubyte").write_bytes(header + array.tobytes())
    return str(folder)


@pytest.fixture(scope="module")
def args(small_digits) -> list[str]:
    """2 epochs of the digits CNN with its default batches, on the small digits."""
    return ["--epochs", "2", "--no-progress", "--data", small_digits]


def _skip_drawing(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("plot_curves", "plot_filters", "plot_confusion", "plot_misclassified"):
        monkeypatch.setattr(plots, name, lambda *args, **kwargs: None)


@pytest.fixture
def without_pictures(monkeypatch):
    """For in-process runs whose curves, filters and confusion pictures no test looks at."""
    _skip_drawing(monkeypatch)


# The real command line in a subprocess, with one change: epoch 2 stops after its first batch until a signal arrives
# (its handler raises inside the sleep), and says so by creating the file argv[1]. So the signal lands mid-epoch,
# after a step that the checkpoint does not hold, every time; a guessed sleep after the first checkpoint did not
# promise that.
PAUSED_IN_EPOCH_2 = """
import sys, time
from pathlib import Path
from tinygrad_conv import cli, data

ready, real_batches, epochs = Path(sys.argv[1]), data.batches, []

def batches(*args, **kwargs):
    epochs.append(len(epochs) + 1)
    for k, batch in enumerate(real_batches(*args, **kwargs)):
        if epochs[-1] == 2 and k == 1:
            ready.touch()
            time.sleep(60)
        yield batch

data.batches = batches
sys.exit(cli.main(sys.argv[2:]))
"""


def _digest(path: Path) -> str:
    arrays = serialization.load(path)
    sha = hashlib.sha256()
    for name, array in sorted(arrays.items()):
        sha.update(name.encode() + array.tobytes())
    return sha.hexdigest()


@pytest.fixture(scope="module")
def runs(tmp_path_factory, args):
    """An uninterrupted run (in this process) and, at the same time, two subprocess runs of the same command, one
    sent SIGINT and one SIGTERM in the middle of epoch 2: {"whole": its directory, signum: (its directory, the
    finished process)}."""
    base = tmp_path_factory.mktemp("runs")
    started = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        out, ready = base / signal.Signals(signum).name, base / f"{signal.Signals(signum).name}.ready"
        process = subprocess.Popen([sys.executable, "-c", PAUSED_IN_EPOCH_2, str(ready), "train", *args, "--out",
                                    str(out)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        started[signum] = out, ready, process
    found = {"whole": base / "whole"}
    with pytest.MonkeyPatch.context() as patch:
        _skip_drawing(patch)
        assert main(["train", *args, "--out", str(found["whole"])]) == 0
    deadline = time.monotonic() + 60
    for signum, (_, ready, process) in started.items():
        while not ready.exists():
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()
            time.sleep(0.01)
        process.send_signal(signum)
    for signum, (out, _, process) in started.items():
        stdout, stderr = process.communicate(timeout=60)
        found[signum] = out, subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    return found


@pytest.fixture(scope="module")
def uninterrupted(runs):
    return runs["whole"]


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signalled_run_keeps_its_last_epoch_and_resumes_to_the_same_bits(signum, code, runs, uninterrupted,
                                                                           without_pictures):
    out, done = runs[signum]
    name = signal.Signals(signum).name
    assert done.returncode == code, done.stderr
    assert "Traceback" not in done.stderr and done.stderr.count("\n") == 1, done.stderr
    assert f"interrupted by {name} after epoch 1/2" in done.stderr and f"--resume {out}" in done.stderr
    files = {p.name for p in out.iterdir()}
    assert files == {"model.npz", "metrics.json", "curves.png", "filters.png", "confusion.png", "misclassified.png",
                     "checkpoint.npz"}
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["interrupted"] is True and metrics["signal"] == name and metrics["epochs_completed"] == 1
    assert len(metrics["history"]) == 1
    assert not any(p.name.endswith(".tmp") for p in out.iterdir())
    assert main(["evaluate", str(out)]) == 0  # the epoch-1 model is a working checkpoint

    assert main(["train", "--resume", str(out), "--no-progress"]) == 0
    assert _digest(out / "model.npz") == _digest(uninterrupted / "model.npz")
    assert _digest(out / "checkpoint.npz") == _digest(uninterrupted / "checkpoint.npz")  # optimizer + RNG states
    resumed = json.loads((out / "metrics.json").read_text())
    whole = json.loads((uninterrupted / "metrics.json").read_text())
    assert "interrupted" not in resumed
    drop = ("seconds", "train_seconds", "images_per_second", "history")
    assert {k: v for k, v in resumed.items() if k not in drop} == {k: v for k, v in whole.items() if k not in drop}
    assert [h["test_accuracy"] for h in resumed["history"]] == [h["test_accuracy"] for h in whole["history"]]


def test_resume_is_bit_identical_for_adam_and_a_model_with_dropout(tmp_path):
    quiet = {"progress": False, "log": lambda line: None}
    from tinygrad_conv import data

    x_train, y_train, x_test, y_test = data.load_split()
    quiet["split"] = (x_train[:256], y_train[:256], x_test[:64], y_test[:64])
    config = TrainConfig(epochs=2, optimizer="adam", batch_size=32)
    whole = train(config, **quiet)

    class Stop(Exception):
        pass

    lines = []

    def stop_after_one_epoch(line):
        lines.append(line)
        raise Stop

    with pytest.raises(Stop):
        train(config, checkpoint=tmp_path / "state.npz", progress=False, log=stop_after_one_epoch,
              split=quiet["split"])
    resumed = train(config, checkpoint=tmp_path / "state.npz", resume=True, **quiet)
    for (name, a), (_, b) in zip(sorted(whole.model.state_dict().items()), sorted(resumed.model.state_dict().items())):
        assert a.tobytes() == b.tobytes(), name
    with pytest.raises(ValueError, match="finished all 2 epochs"):
        train(config, checkpoint=tmp_path / "state.npz", resume=True, **quiet)
    with pytest.raises(ValueError, match="another config"):
        train(TrainConfig(epochs=3, optimizer="adam", batch_size=32), checkpoint=tmp_path / "state.npz",
              resume=True, **quiet)


def test_a_run_interrupted_before_its_first_epoch_leaves_metrics_and_resumes(tmp_path, monkeypatch, capsys,
                                                                            without_pictures):
    import tinygrad_conv.train as train_module

    real_batches = train_module.data.batches

    def batches_then_ctrl_c(*args, **kwargs):
        yield next(real_batches(*args, **kwargs))
        raise KeyboardInterrupt

    monkeypatch.setattr(train_module.data, "batches", batches_then_ctrl_c)
    monkeypatch.setattr(cli, "_raise_interrupted", cli._raise_interrupted)
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):  # in-process: Python's own SIGINT handler is the one that raises
        main(["train", "--epochs", "1", "--no-progress", "--out", str(out)])
    # the CLI turns a real signal into its one-line exit; here we drive that path directly
    assert cli._write_interrupted(out, TrainConfig(epochs=1), _digits(), signal.SIGINT) == 130
    assert "before its first epoch ended" in capsys.readouterr().err
    assert json.loads((out / "metrics.json").read_text())["epochs_completed"] == 0
    monkeypatch.setattr(train_module.data, "batches", real_batches)
    assert main(["train", "--resume", str(out), "--no-progress"]) == 0
    assert (out / "model.npz").exists()


def _digits():
    from tinygrad_conv import datasets

    return datasets.load("digits")


def test_resume_refuses_what_it_cannot_continue(tmp_path, uninterrupted, capsys):
    assert main(["train", "--resume", str(tmp_path)]) == 2
    assert "no checkpoint.npz" in capsys.readouterr().err
    assert main(["train", "--resume", str(uninterrupted)]) == 2
    assert "finished all 2 epochs already" in capsys.readouterr().err


# ---------------------------------------------------------------- concurrent runs


def test_racing_threads_each_get_their_own_run_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    made, errors = [], []

    def make():
        try:
            for _ in range(25):
                out, lock = cli._run_directory(None, False)
                made.append(out)
                lock.release()
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=make) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(made) == 200 and len(set(made)) == 200
    assert all(path.is_dir() and not any(path.iterdir()) for path in made)
    assert not list(Path("runs").glob(".write-test*"))


# The command line in a subprocess, drawing no pictures (what the racing runs are about is their directories).
WITHOUT_PICTURES = """
import sys
from tinygrad_conv import cli, plots

for name in ("plot_curves", "plot_filters", "plot_confusion", "plot_misclassified"):
    setattr(plots, name, lambda *args, **kwargs: None)
sys.exit(cli.main(sys.argv[1:]))
"""

# Racers for run directories, released together: each blocks reading a byte from stdin, then for k < rounds asks
# for --out base/out-k and for a fresh runs/<timestamp>, prints what it got, and holds every lock it won until a
# second byte tells it to exit: a racer that ended early would free its (still empty) directories for a slower one.
# The short sleep each round keeps the racers abreast (on a busy machine, one would otherwise run through every
# round before the others start), so they meet at the same directories.
RACER = """
import json, os, sys, time
from pathlib import Path
from tinygrad_conv import cli

base, rounds = Path(sys.argv[1]), int(sys.argv[2])
os.chdir(base)
(base / f"ready-{os.getpid()}").touch()
sys.stdin.read(1)
won, made, locks = [], [], []
for k in range(rounds):
    time.sleep(0.0005)
    try:
        out, lock = cli._run_directory(base / f"out-{k}", False)
        won.append(k)
        locks.append(lock)
    except ValueError as error:
        assert "being used by another training run" in str(error) or "already holds" in str(error), error
    out, lock = cli._run_directory(None, False)
    made.append(str(out))
    locks.append(lock)
print(json.dumps({"won": won, "made": made}), flush=True)
sys.stdin.read(1)
"""


def test_racing_processes_each_get_their_own_run_directory_many_times(tmp_path):
    racers, rounds = 4, 50
    processes = [subprocess.Popen([sys.executable, "-c", RACER, str(tmp_path), str(rounds)], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(racers)]
    deadline = time.monotonic() + 60
    while len(list(tmp_path.glob("ready-*"))) < racers:
        assert all(p.poll() is None for p in processes) and time.monotonic() < deadline
        time.sleep(0.01)
    for process in processes:  # all blocked in read(1): released within microseconds of each other
        process.stdin.write("g")
        process.stdin.flush()
    results = [json.loads(process.stdout.readline()) for process in processes]  # all still hold their locks
    for process in processes:
        _, stderr = process.communicate("x", timeout=60)
        assert process.returncode == 0, stderr
    won = sorted(k for result in results for k in result["won"])
    assert won == list(range(rounds))  # every --out directory went to exactly one racer; the others were told
    made = [path for result in results for path in result["made"]]
    assert len(set(made)) == racers * rounds  # no two runs/<timestamp> directories shared
    assert all((tmp_path / path).is_dir() for path in made)


def test_two_runs_racing_for_one_out_directory_one_wins_one_is_told(tmp_path, small_digits):
    out = tmp_path / "shared"
    command = [sys.executable, "-c", WITHOUT_PICTURES, "train", "--epochs", "1", "--no-progress", "--data",
               small_digits, "--out", str(out)]
    processes = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(3)]
    results = [(p.wait(timeout=120), p.stderr.read()) for p in processes]
    assert sorted(code for code, _ in results) == [0, 2, 2], results
    for code, err in results:
        if code == 2:
            assert err.count("\n") == 1 and ("being used by another training run" in err or "already holds" in err)
    assert json.loads((out / "metrics.json").read_text())["epochs"] == 1
    assert not (out / ".lock").exists()


def test_a_locked_out_directory_is_refused_even_with_force(tmp_path, capsys):
    out = tmp_path / "busy"
    out.mkdir()
    lock = cli._RunLock(out)
    try:
        assert main(["train", "--epochs", "1", "--no-progress", "--out", str(out), "--force"]) == 2
        assert "is being used by another training run" in capsys.readouterr().err
    finally:
        lock.release()


# ---------------------------------------------------------------- failing writes


@pytest.mark.parametrize("failing", ["model.npz", "metrics.json", "curves.png"])
def test_a_full_disk_is_one_line_naming_the_file_and_no_empty_metrics(failing, tmp_path, monkeypatch, capsys,
                                                                      small_digits):
    real = serialization.atomic_write

    def full_disk(path, write):
        if Path(path).name == failing:
            raise OSError(28, "No space left on device", os.fspath(path))
        real(path, write)

    monkeypatch.setattr(serialization, "atomic_write", full_disk)
    monkeypatch.setattr("tinygrad_conv.plots.atomic_write", full_disk)
    out = tmp_path / "run"
    assert main(["train", "--epochs", "1", "--no-progress", "--data", small_digits, "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err == f"tinygrad-conv: error: cannot write {out / failing}: No space left on device\n"
    assert not (out / "metrics.json").exists() or json.loads((out / "metrics.json").read_text())
    if failing != "model.npz":
        assert (out / "model.npz").exists()  # the model is written first
    assert not any(p.name.endswith(".tmp") for p in out.iterdir())


def test_metrics_json_is_strict_json_with_null_for_nan(tmp_path, capsys):
    out = tmp_path / "run"
    epoch = {"epoch": 1, "train_loss": float("nan"), "train_accuracy": float("inf"), "test_accuracy": 0.5,
             "seconds": 0.1}
    metrics = {"test_accuracy": 0.5, "history": [epoch], "confusion": [[1, 0], [0, 1]]}
    out.mkdir()
    weights = {"0.weight": np.zeros((2, 1, 3, 3), np.float32), "0.bias": np.zeros(2, np.float32)}
    cli._write_outputs(out, weights, {}, metrics, ["a", "b"])
    text = (out / "metrics.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text)["history"][0]["train_loss"] is None
    assert "null where a value was NaN" in capsys.readouterr().err


# ---------------------------------------------------------------- broken results


def test_evaluate_refuses_nan_weights_naming_the_parameter(uninterrupted, tmp_path, capsys):
    weights = serialization.load(uninterrupted / "model.npz")
    weights["2.weight"][0, 0, 0, 0] = np.nan
    metadata = serialization.load_metadata(uninterrupted / "model.npz")
    serialization.save(weights, tmp_path / "model.npz", metadata=metadata)
    assert main(["evaluate", str(tmp_path / "model.npz")]) == 1
    err = capsys.readouterr().err
    assert "parameter '2.weight' has 1 NaN/inf value" in err and err.count("\n") == 1


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_a_run_ending_at_chance_warns_and_says_so_in_its_metrics(tmp_path, capsys, small_digits, without_pictures):
    out = tmp_path / "run"
    code = main(["train", "--epochs", "1", "--lr", "1e9", "--on-nonfinite", "skip", "--no-progress", "--data",
                 small_digits, "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 0  # the run completed; see --on-nonfinite's help
    assert "is at chance level" in captured.err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["at_chance"] is True


def test_an_empty_training_set_is_a_clear_value_error():
    empty = np.zeros((0, 1, 8, 8), np.float32)
    with pytest.raises(ValueError, match="training set .* is empty"):
        train(TrainConfig(epochs=1), progress=False, log=lambda line: None,
              split=(empty, np.zeros(0, np.int64), np.zeros((2, 1, 8, 8), np.float32), np.zeros(2, np.int64)))


def test_numpy_integers_are_integers_in_the_config():
    config = TrainConfig(epochs=np.int64(2), batch_size=np.int32(16), seed=np.uint8(3))
    assert (config.epochs, config.batch_size, config.seed) == (2, 16, 3) and type(config.epochs) is int
    json.dumps(config.__dict__)
