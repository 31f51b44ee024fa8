"""The command line: a training run leaves its files, evaluate reads them back, bad input gets one line."""

import contextlib
import io
import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinygrad_conv import data, serialization
from tinygrad_conv.cli import main

ROOT = Path(__file__).resolve().parent.parent
RUN_FILES = {"model.npz", "metrics.json", "curves.png", "filters.png", "confusion.png", "misclassified.png",
             "checkpoint.npz"}


@pytest.fixture(scope="module")
def run_output(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "one-epoch"
    with contextlib.redirect_stdout(io.StringIO()) as stdout:
        assert main(["train", "--epochs", "1", "--no-progress", "--out", str(out)]) == 0
    return out, stdout.getvalue().splitlines()


@pytest.fixture(scope="module")
def run_dir(run_output):
    return run_output[0]


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
    for picture in ("curves.png", "filters.png", "confusion.png", "misclassified.png"):
        assert (run_dir / picture).read_bytes().startswith(b"\x89PNG")
    history = metrics["history"]
    assert 0 < history[0]["test_loss"] == metrics["test_loss"] and history[0]["lr"] == 0.1


def test_train_names_its_measures_in_percent_and_lists_every_file(run_output):
    out, printed = run_output
    metrics = json.loads((out / "metrics.json").read_text())
    epoch, final, wrote = printed[-3:]
    assert epoch.startswith("epoch   1/1  running train acc ") and "test acc" in epoch
    assert final.startswith(f"test acc {100 * metrics['test_accuracy']:.2f}%  train acc "
                            f"{100 * metrics['train_accuracy']:.2f}% (a full pass with the final model)")
    assert wrote == (f"wrote {out}/: model.npz metrics.json curves.png filters.png confusion.png misclassified.png "
                     "checkpoint.npz")
    assert set(wrote.split(": ")[1].split()) == RUN_FILES


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


# ---------------------------------------------------------------- --data, --model, predict


from test_data import synthetic_digits, write_idx_folder, write_image_folder  # noqa: E402


@pytest.fixture(scope="module")
def idx_run(tmp_path_factory):
    """lenet5 trained by the CLI for 2 epochs on an IDX folder of three easy synthetic classes."""
    root = tmp_path_factory.mktemp("idx")
    write_idx_folder(root / "MNIST" / "raw", n_train=300, n_test=60, gz=True)
    out = root / "run"
    assert main(["train", "--data", str(root), "--epochs", "2", "--no-progress", "--out", str(out)]) == 0
    return root, out


def test_train_on_an_idx_folder_picks_lenet5_and_records_it(idx_run):
    _, out = idx_run
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["model"] == "lenet5" and metrics["classes"] == ["0", "1", "2"]
    assert metrics["test_accuracy"] > 0.9
    meta = serialization.load_metadata(out / "model.npz")
    assert meta["model"] == "lenet5" and meta["image_size"] == [28, 28] and meta["data_kind"] == "idx"


def test_evaluate_takes_a_run_folder_and_rebuilds_lenet5_with_no_flags(idx_run, capsys):
    _, out = idx_run
    assert main(["evaluate", str(out)]) == 0
    accuracy = json.loads((out / "metrics.json").read_text())["test_accuracy"]
    text = capsys.readouterr().out
    assert f"test accuracy {100 * accuracy:.2f}% on 60 images (lenet5" in text
    assert len(text.splitlines()) == 2 + 1 + 3


def _png(path: Path, image: np.ndarray) -> Path:
    from PIL import Image

    Image.fromarray(image).save(path)
    return path


def test_predict_prints_class_and_probability_per_image(idx_run, tmp_path, capsys):
    _, out = idx_run
    images, labels = synthetic_digits(6, seed=5)
    paths = [_png(tmp_path / f"{k}.png", 255 - np.kron(image, np.ones((4, 4), np.uint8)))  # dark ink on white, 112²
             for k, image in enumerate(images)]
    assert main(["predict", "--checkpoint", str(out), *map(str, paths)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 6
    for line, path in zip(lines, paths):
        name, rest = line.split(": ")
        assert name == str(path) and rest.endswith("%)")
    assert sum(line.split(": ")[1].startswith(str(label)) for line, label in zip(lines, labels)) >= 5


def test_predict_with_the_digits_cnn_checkpoint_and_the_newest_run(run_dir, tmp_path, capsys, monkeypatch):
    images = (data.load_digits()[0][:3, 0] * 255).astype(np.uint8)
    paths = [str(_png(tmp_path / f"d{k}.png", np.kron(image, np.ones((8, 8), np.uint8)))) for k, image in
             enumerate(images)]
    assert main(["predict", "--checkpoint", str(run_dir / "model.npz"), *paths]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3
    monkeypatch.chdir(tmp_path)
    _one_line_error(capsys, main(["predict", paths[0]]), "no --checkpoint given and no runs/*/model.npz here")
    (tmp_path / "runs" / "one").mkdir(parents=True)
    (tmp_path / "runs" / "one" / "model.npz").write_bytes((run_dir / "model.npz").read_bytes())
    assert main(["predict", paths[0]]) == 0
    assert capsys.readouterr().out.startswith(f"checkpoint: {Path('runs/one/model.npz')} (digits-cnn")


def test_a_checkpoint_from_before_metadata_still_evaluates_as_the_digits_cnn(run_dir, tmp_path, capsys):
    serialization.save(serialization.load(run_dir / "model.npz"), tmp_path / "old.npz")  # no metadata
    assert serialization.load_metadata(tmp_path / "old.npz") == {}
    assert main(["evaluate", str(tmp_path / "old.npz")]) == 0
    assert "on 360 images (digits-cnn, data digits)" in capsys.readouterr().out


def test_train_on_an_image_folder_keeps_class_names(tmp_path, capsys):
    write_image_folder(tmp_path / "shapes", per_class=8, rgb=True)
    out = tmp_path / "run"
    assert main(["train", "--data", str(tmp_path / "shapes"), "--image-size", "16", "--epochs", "1",
                 "--no-progress", "--out", str(out)]) == 0
    meta = serialization.load_metadata(out / "model.npz")
    assert meta["classes"] == ["diagonal", "horizontal", "vertical"] and meta["in_channels"] == 3
    assert meta["image_size"] == [16, 16] and meta["ink_box"] is None
    assert main(["evaluate", str(out)]) == 0 and "horizontal" in capsys.readouterr().out
    picture = next((tmp_path / "shapes" / "vertical").iterdir())
    assert main(["predict", "--checkpoint", str(out), str(picture)]) == 0


def test_bad_data_and_images_get_one_line_and_no_run_folder(idx_run, run_dir, tmp_path, capsys):
    root, out = idx_run
    (tmp_path / "junk.png").write_bytes(b"not an image")
    bad_idx = tmp_path / "bad-idx"
    write_idx_folder(bad_idx)
    (bad_idx / "train-images-idx3-ubyte").write_bytes((bad_idx / "train-images-idx3-ubyte").read_bytes()[:999])
    cases = [
        (["train", "--data", "nope", "--out", str(tmp_path / "r1")], "--data nope: not a bundled data set"),
        (["train", "--data", str(bad_idx), "--out", str(tmp_path / "r2")], "truncated IDX file"),
        (["train", "--data", "digits", "--model", "lenet5", "--out", str(tmp_path / "r3")],
         "model 'lenet5' needs images of at least 12×12 pixels, got 8×8"),
        (["train", "--shift", "-1", "--out", str(tmp_path / "r4")], "shift must be an integer >= 0, got -1"),
        (["predict", "--checkpoint", str(out), str(tmp_path / "junk.png")], "junk.png: unreadable image"),
        (["predict", "--checkpoint", str(out), str(tmp_path / "missing.png")], "missing.png: unreadable image"),
        (["evaluate", str(run_dir), "--data", str(root)], "does not fit the checkpoint"),
        (["evaluate", str(tmp_path)], "cannot read checkpoint"),
    ]
    for argv, expected in cases:
        _one_line_error(capsys, main(argv), expected)
    assert not any((tmp_path / f"r{k}").exists() for k in range(1, 5))


def test_graph_model_depth_reaches_the_drawing(tmp_path, capsys):
    from tinygrad_conv.cli import main

    assert main(["graph", "model", "--format", "dot", "--out", str(tmp_path / "m.gv")]) == 0
    layers = (tmp_path / "m.gv").read_text()
    assert main(["graph", "model", "--depth", "1", "--format", "dot", "--out", str(tmp_path / "ops.gv")]) == 0
    ops = (tmp_path / "ops.gv").read_text()
    assert "layer0" in layers and "cluster_0" not in layers and "cluster_0" in ops
    assert main(["graph", "model", "--depth", "-1"]) == 2
    assert "--depth must be >= 0" in capsys.readouterr().err
