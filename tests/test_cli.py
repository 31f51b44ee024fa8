"""The command line: a training run leaves its files, evaluate reads them back, bad input gets one line."""

import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinygrad_conv import serialization
from tinygrad_conv.cli import main

ROOT = Path(__file__).resolve().parent.parent
RUN_FILES = {"model.npz", "metrics.json", "curves.png", "filters.png", "confusion.png"}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "one-epoch"
    assert main(["train", "--epochs", "1", "--no-progress", "--out", str(out)]) == 0
    return out


def _one_line_error(capsys, code, expected: str) -> None:
    captured = capsys.readouterr()
    assert code == 2
    assert expected in captured.err
    assert captured.err.count("\n") == 1 and "Traceback" not in captured.err, captured.err


def test_train_writes_metrics_checkpoint_and_pictures(run_dir, capsys):
    assert {p.name for p in run_dir.iterdir()} == RUN_FILES
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["epochs"] == 1 and len(metrics["history"]) == 1 and metrics["args"]["epochs"] == 1
    assert 0.8 < metrics["test_accuracy"] <= 1 and metrics["train_seconds"] > 0
    for picture in ("curves.png", "filters.png", "confusion.png"):
        assert (run_dir / picture).read_bytes().startswith(b"\x89PNG")


def test_evaluate_reports_the_runs_test_accuracy(run_dir, capsys):
    assert main(["evaluate", str(run_dir / "model.npz")]) == 0
    out = capsys.readouterr().out
    accuracy = json.loads((run_dir / "metrics.json").read_text())["test_accuracy"]
    assert f"test accuracy {100 * accuracy:.2f}% on 360 images" in out
    assert "confusion matrix" in out and len(out.splitlines()) == 2 + 1 + 10


def test_train_never_overwrites_a_run_unless_forced(run_dir, capsys):
    before = (run_dir / "model.npz").read_bytes()
    _one_line_error(capsys, main(["train", "--epochs", "1", "--no-progress", "--out", str(run_dir)]),
                    "already holds files (pass --force to overwrite them)")
    assert (run_dir / "model.npz").read_bytes() == before
    assert main(["train", "--epochs", "1", "--no-progress", "--out", str(run_dir), "--force", "--seed", "1"]) == 0
    assert (run_dir / "model.npz").read_bytes() != before


@pytest.mark.parametrize(("args", "expected"), [
    (["--epochs", "0"], "epochs must be an integer >= 1, got 0"),
    (["--epochs", "-2"], "epochs must be an integer >= 1, got -2"),
    (["--batch-size", "0"], "batch_size must be an integer >= 1, got 0"),
    (["--lr", "nan"], "lr must be a positive finite number, got nan"),
    (["--lr", "-1"], "lr must be a positive finite number, got -1.0"),
    (["--lr", "inf"], "lr must be a positive finite number, got inf"),
])
def test_train_rejects_bad_values_in_one_line(args, expected, tmp_path, capsys):
    _one_line_error(capsys, main(["train", "--out", str(tmp_path / "run"), *args]), expected)
    assert not (tmp_path / "run").exists()  # nothing written for a run that never started


@pytest.mark.parametrize(("args", "expected"), [
    (["--optimizer", "rmsprop"], "invalid choice: 'rmsprop'"),
    (["--epochs", "ten"], "invalid int value: 'ten'"),
    (["--lr", "fast"], "invalid float value: 'fast'"),
    (["--bogus"], "unrecognized arguments: --bogus"),
])
def test_train_rejects_unparseable_arguments_in_one_line(args, expected, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", *args])
    _one_line_error(capsys, exit_info.value.code, expected)


def test_train_rejects_an_out_directory_it_cannot_write(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    _one_line_error(capsys, main(["train", "--out", str(blocker)]), "is not a directory")
    _one_line_error(capsys, main(["train", "--out", str(blocker / "run")]), "cannot write to --out")


def _pickled(path: Path) -> Path:
    path.write_bytes(pickle.dumps({"0.weight": np.zeros((16, 1, 3, 3))}))
    return path


def _corrupt(path: Path) -> Path:
    path.write_bytes(b"PK\x03\x04" + bytes(range(256)) * 4)
    return path


def _foreign(path: Path) -> Path:
    serialization.save({"encoder.weight": np.zeros((3, 3), np.float32)}, path)
    return path


def _truncated(run_dir: Path, path: Path) -> Path:
    data = (run_dir / "model.npz").read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.mark.parametrize(("make", "expected"), [
    (lambda run, tmp: tmp / "missing.npz", "not found"),
    (lambda run, tmp: _pickled(tmp / "model.pkl"), "is a Python pickle"),
    (lambda run, tmp: _corrupt(tmp / "corrupt.npz"), "corrupt"),
    (lambda run, tmp: _truncated(run, tmp / "truncated.npz"), "truncated or corrupt"),
    (lambda run, tmp: _foreign(tmp / "foreign.npz"), "encoder.weight"),
    (lambda run, tmp: tmp, "cannot read checkpoint"),
])
def test_evaluate_rejects_bad_checkpoints_in_one_line(make, expected, run_dir, tmp_path, capsys):
    _one_line_error(capsys, main(["evaluate", str(make(run_dir, tmp_path))]), expected)


def test_python_dash_m_runs_the_same_command_line():
    result = subprocess.run([sys.executable, "-m", "tinygrad_conv", "train", "--epochs", "0"],
                            capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == "tinygrad-conv: error: epochs must be an integer >= 1, got 0\n"


def test_a_diverging_run_stops_with_the_epoch_and_batch_in_one_line(tmp_path, capsys):
    code = main(["train", "--lr", "1e30", "--no-progress", "--out", str(tmp_path / "run")])
    captured = capsys.readouterr()
    assert code == 1 and "Traceback" not in captured.err and captured.err.count("\n") == 1
    assert "at epoch 1, batch 2; lower the learning rate (--lr)" in captured.err
    assert "RuntimeWarning" not in captured.err
