"""The `tinygrad-conv` command line (also `python -m tinygrad_conv`).

    tinygrad-conv train [--data NAME|FOLDER] [--model digits-cnn|lenet5] [--image-size N] [--epochs N]
                        [--batch-size N] [--lr X] [--shift N] [--optimizer adam|sgd] [--seed N] [--out DIR]
    tinygrad-conv train --resume RUN_DIR
    tinygrad-conv evaluate CHECKPOINT|RUN_DIR [--data NAME|FOLDER]
    tinygrad-conv predict [--checkpoint CHECKPOINT|RUN_DIR] IMAGE...
    tinygrad-conv graph {derivation,conv,backward,model} [--format svg|png|pdf|dot] [--out FILE] [--no-grad]
                        [--depth D]
    tinygrad-conv derive

Bad arguments and bad data get one line on stderr and exit code 2; never a traceback. docs/DATA.md describes
--data, --model and predict for users.

A training run owns its directory: it is created with os.mkdir (runs/<timestamp>, or -1, -2… if taken) or, for
--out, locked (flock on DIR/.lock) for the run's length. Every epoch ends with DIR/checkpoint.npz (the whole
training state, atomically); a finished run adds model.npz, metrics.json and its pictures (curves.png,
filters.png, confusion.png, misclassified.png: plots.py). Ctrl-C (SIGINT) or SIGTERM end the run with the last
finished epoch's model.npz, metrics.json ("interrupted": true) and the pictures of that epoch's metrics (curves,
filters, confusion), one line on stderr, and exit code 130 or 143; `train --resume DIR`
continues it to the same bits an uninterrupted run gives. Every output file is written atomically
(serialization.atomic_write), model.npz first; a write that fails (a full disk) is one line naming the file,
exit code 1.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not argparse's usage block
        self.exit(2, f"{self.prog}: error: {message}\n")


def _fail(message: str, code: int = 2) -> int:
    print(f"tinygrad-conv: error: {message}", file=sys.stderr)
    return code


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="tinygrad-conv", description="See backpropagation through a convolution.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    train = commands.add_parser("train", help="train a CNN on the handwritten digits or your own images")
    defaults = _train_defaults()
    train.add_argument("--data", default="digits",
                       help="digits (8×8, default), mnist5k (28×28), a folder of MNIST-format IDX files, or a folder "
                            "with one subfolder of PNG/JPEG images per class")
    train.add_argument("--model", choices=["digits-cnn", "lenet5"],
                       help="default: digits-cnn for images under 16 pixels, lenet5 otherwise")
    train.add_argument("--image-size", type=int, help="image folders: resize to N×N (default 28)")
    train.add_argument("--epochs", type=int, help="default: 30 (digits-cnn), 10 (lenet5)")
    train.add_argument("--batch-size", type=int, default=defaults.batch_size)
    train.add_argument("--lr", type=float, help="learning rate (default with sgd: 0.1 digits-cnn, 0.05 lenet5; "
                       "with adam: 0.001, as PyTorch's Adam)")
    train.add_argument("--shift", type=int, help="augmentation: move each training image by up to N pixels "
                                                 "(default: 1; 0: off)")
    train.add_argument("--optimizer", choices=["adam", "sgd"], default=defaults.optimizer,
                       help="sgd (momentum 0.9) or adam (default: %(default)s)")
    train.add_argument("--seed", type=int, default=defaults.seed)
    train.add_argument("--out", type=Path, help="run directory (default: runs/<timestamp>)")
    train.add_argument("--force", action="store_true", help="write into --out even if it holds files (never into "
                                                            "a directory another run is using)")
    train.add_argument("--resume", type=Path, metavar="RUN_DIR",
                       help="continue an interrupted run from RUN_DIR/checkpoint.npz, with its own options; the "
                            "result is the same bits as a run never interrupted")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.add_argument("--on-nonfinite", choices=["stop", "skip"], default=defaults.on_nonfinite,
                       help="on a NaN/inf loss: stop the run (exit code 1), or skip the batch (default: "
                            "%(default)s). A run that completes exits 0 even if its final test accuracy is at chance "
                            "level; it then prints a warning and metrics.json says \"at_chance\": true")

    evaluate = commands.add_parser("evaluate", help="test accuracy and confusion matrix of a checkpoint")
    evaluate.add_argument("checkpoint", type=Path, help="a model.npz, or the run folder holding it (a checkpoint "
                                                        "with NaN/inf weights: exit code 1)")
    evaluate.add_argument("--data", help="evaluate on this data set (default: the one the checkpoint was trained on)")

    predict = commands.add_parser("predict", help="classify images with a trained checkpoint")
    predict.add_argument("images", nargs="+", type=Path, metavar="IMAGE", help="PNG or JPEG files")
    predict.add_argument("--checkpoint", type=Path,
                         help="a model.npz or run folder (default: the newest runs/*/model.npz)")

    graph = commands.add_parser("graph", help="draw a computation graph with graphviz")
    graph.add_argument("name", help="derivation, conv, backward or model")
    graph.add_argument("--format", dest="fmt", help="svg, png, pdf or dot (default: --out's extension, else svg)")
    graph.add_argument("--out", help="file to write; its folders are created (default: NAME.svg)")
    graph.add_argument("--no-grad", action="store_true", help="leave gradients out of the labels")
    graph.add_argument("--depth", type=int, default=0,
                       help="model only: 0 one box per layer (default), 1 every op clustered by layer")

    commands.add_parser("derive", help="autodiff conv gradients beside the closed form")
    return parser


def _train_defaults():
    from tinygrad_conv.train import TrainConfig

    return TrainConfig()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "train":
        return _train(args)
    if args.command == "evaluate":
        return _evaluate(args)
    if args.command == "predict":
        return _predict(args)
    if args.command == "graph":
        from tinygrad_conv import viz

        if args.depth < 0:
            return _fail(f"--depth must be >= 0, got {args.depth}")
        return viz.graph_command(args.name, args.fmt, args.out, show_grad=not args.no_grad, depth=args.depth)
    from tinygrad_conv.derivation import report

    return 0 if report() else 1


LOCK_NAME = ".lock"
CHECKPOINT_NAME = "checkpoint.npz"
EXIT_SIGNAL = {signal.SIGINT: 130, signal.SIGTERM: 143}  # 128 + the signal's number, as a shell reports it


class _RunLock:
    """An exclusive flock on DIR/.lock, held while a run writes into DIR; the kernel drops it if the process dies."""

    def __init__(self, directory: Path):
        import fcntl

        self.path = directory / LOCK_NAME
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise ValueError(f"{directory} is being used by another training run right now") from None
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:  # its holder finished and removed it between our open and our flock
                same = False
            if same:
                self.fd = fd
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode())
                return
            os.close(fd)

    def release(self) -> None:
        with contextlib.suppress(OSError):
            os.unlink(self.path)  # before closing: whoever opens it next makes a new file, which we never held
        os.close(self.fd)


def _run_directory(out: Path | None, force: bool) -> tuple[Path, _RunLock]:
    """A directory to write the run into, locked: a fresh runs/<timestamp>[-k] made by os.mkdir (which fails if it
    exists, so two runs never share one), or --out (empty, or --force, and no other run using it)."""
    try:
        if out is None:
            Path("runs").mkdir(exist_ok=True)
            stamp = time.strftime("%Y%m%d-%H%M%S")
            k = 0
            while True:
                out = Path("runs") / (stamp if k == 0 else f"{stamp}-{k}")
                try:
                    os.mkdir(out)
                    break
                except FileExistsError:
                    k += 1
            return out, _RunLock(out)
        if out.exists() and not out.is_dir():
            raise ValueError(f"--out {out} is not a directory")
        out.mkdir(parents=True, exist_ok=True)
        lock = _RunLock(out)
    except OSError as error:
        raise ValueError(f"cannot write to --out {out}: {error.strerror or error}") from None
    if not force and any(path.name != LOCK_NAME for path in out.iterdir()):
        lock.release()
        raise ValueError(f"--out {out} already holds files (pass --force to overwrite them); to "
                         f"continue an interrupted run there: --resume {out}")
    return out, lock


class _Interrupted(BaseException):
    """SIGINT or SIGTERM arrived; a BaseException, like KeyboardInterrupt, so no `except Exception` swallows it."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _raise_interrupted(signum: int, frame) -> None:
    raise _Interrupted(signum)


@contextlib.contextmanager
def _signals(handler):
    """SIGINT and SIGTERM go to `handler` inside the block (main thread only), as before after it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {kind: signal.signal(kind, handler) for kind in EXIT_SIGNAL}
    try:
        yield
    finally:
        for kind, old in previous.items():
            signal.signal(kind, signal.SIG_DFL if old is None else old)


def _resume_config(run: Path):
    """The config and dataset of the run in `run` (from its checkpoint.npz, or the metrics.json of a run
    interrupted before its first epoch ended); ValueError saying why not."""
    from tinygrad_conv import datasets
    from tinygrad_conv.train import TrainConfig, read_training_info

    checkpoint = run / CHECKPOINT_NAME
    if checkpoint.exists():
        info = read_training_info(checkpoint)
        args, started = info["config"], True
        if info["epoch"] >= args["epochs"]:
            raise ValueError(f"--resume {run}: the run finished all {args['epochs']} epochs already")
    else:
        try:
            metrics = json.loads((run / "metrics.json").read_text())
            args, started = metrics["args"], False
        except (OSError, ValueError, KeyError, TypeError):
            raise ValueError(f"--resume {run}: no {CHECKPOINT_NAME} (nor the metrics.json of an interrupted run) "
                             "there to continue from") from None
    config = TrainConfig(**args)
    return config, datasets.load(config.data, config.image_size), started


def _train(args: argparse.Namespace) -> int:
    from tinygrad_conv import datasets
    from tinygrad_conv.train import NonFiniteLossError, TrainConfig, build, default_model, train

    given = {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "optimizer": args.optimizer,
             "seed": args.seed, "on_nonfinite": args.on_nonfinite, "shift": args.shift, "data": args.data,
             "image_size": args.image_size}
    lock = None
    try:
        if args.resume is not None:
            if args.out is not None:
                raise ValueError("--resume RUN_DIR continues in RUN_DIR; give no --out with it")
            if not args.resume.is_dir():
                raise ValueError(f"--resume {args.resume}: not a run directory")
            out, lock = args.resume, _RunLock(args.resume)
            config, dataset, resume = _resume_config(out)
            model = config.model or default_model(dataset.image_size)
        else:
            TrainConfig.for_model(args.model or "digits-cnn", **given)  # bad numbers fail before any data is read
            dataset = datasets.load(args.data, args.image_size)
            model = args.model or default_model(dataset.image_size)
            config = TrainConfig.for_model(model, **given)
            build(model, config.seed, dataset.in_channels, dataset.num_classes, dataset.image_size)  # fits the data?
            out, lock = _run_directory(args.out, args.force)
            resume = False
    except ValueError as error:  # DataError and CheckpointError included
        if lock is not None:
            lock.release()
        return _fail(str(error).replace("\n", "; "))
    except OSError as error:
        return _fail(f"cannot use {args.resume}: {error.strerror or error}")
    try:
        return _train_in(out, args, config, dataset, model, resume, train, NonFiniteLossError)
    finally:
        lock.release()


def _train_in(out: Path, args, config, dataset, model: str, resume: bool, train, NonFiniteLossError) -> int:
    verb = "resuming" if resume else "training"
    print(f"{verb} {model} on {len(dataset.y_train)} images of {dataset.description}: "
          f"{dataset.num_classes} classes, {len(dataset.y_test)} test images "
          f"({config.optimizer}, lr {config.lr}, batch {config.batch_size}, {config.epochs} epochs, "
          f"seed {config.seed}) into {out}/", flush=True)
    try:
        with _signals(_raise_interrupted):
            result = train(config, progress=not args.no_progress, dataset=dataset, checkpoint=out / CHECKPOINT_NAME,
                           resume=resume)
    except _Interrupted as interrupted:
        with _signals(signal.SIG_IGN):  # a second Ctrl-C must not cut the outputs of the first short
            return _write_interrupted(out, config, dataset, interrupted.signum)
    except NonFiniteLossError as error:
        return _fail(str(error), code=1)
    except ValueError as error:  # a checkpoint.npz that does not fit (resume)
        return _fail(str(error).replace("\n", "; "))
    metrics = result.metrics
    chance = 1 / dataset.num_classes
    metrics["at_chance"] = metrics["test_accuracy"] <= 1.5 * chance
    wrong = None if result.test_predictions is None else (dataset.x_test, dataset.y_test, result.test_predictions)
    try:
        with _signals(signal.SIG_IGN):
            _write_outputs(out, result.model.state_dict(), result.metadata, metrics, dataset.classes, wrong)
    except OSError as error:
        return _fail(_write_error(error), code=1)
    print(f"test acc {100 * metrics['test_accuracy']:.2f}%  train acc {100 * metrics['train_accuracy']:.2f}% (a full "
          f"pass with the final model)  in {metrics['train_seconds']:.2f} s of training, "
          f"{metrics['images_per_second']:,.0f} images/s")
    if metrics["at_chance"]:
        print(f"warning: the final test accuracy {100 * metrics['test_accuracy']:.2f}% is at chance level "
              f"({100 * chance:.1f}% for {dataset.num_classes} classes): the model learned nothing useful",
              file=sys.stderr)
    print(f"wrote {out}/: model.npz metrics.json curves.png filters.png confusion.png misclassified.png "
          f"{CHECKPOINT_NAME}")
    return 0


def _write_error(error: OSError) -> str:
    return f"cannot write {error.filename or 'an output file'}: {error.strerror or error}"


def _write_outputs(out: Path, weights: dict, metadata: dict, metrics: dict, classes: list[str],
                   wrong: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None) -> None:
    """model.npz first (the result that matters), then metrics.json and the plots, each atomically.

    wrong: (test images, their labels, the final model's predictions) for misclassified.png (a finished run)."""
    from tinygrad_conv import plots, serialization
    from tinygrad_conv.train import json_safe

    serialization.save(weights, out / "model.npz", metadata=metadata)
    safe = json_safe(metrics)
    if safe != metrics:
        print("warning: metrics.json has null where a value was NaN or infinite", file=sys.stderr)
    text = json.dumps(safe, indent=2, allow_nan=False) + "\n"
    serialization.atomic_write(out / "metrics.json", lambda file: file.write(text.encode()))
    history = [{k: (math.nan if v is None else v) for k, v in epoch.items()} for epoch in metrics["history"]]
    if history:
        plots.plot_curves(history, out / "curves.png", plots.run_title(metrics))
    first = next(iter(weights.values()))
    if first.ndim == 4:
        plots.plot_filters(first, out / "filters.png")
    if metrics.get("confusion") is not None:
        plots.plot_confusion(np.array(metrics["confusion"]), out / "confusion.png", classes)
    if wrong is not None:
        plots.plot_misclassified(*wrong, out / "misclassified.png", classes)


def _write_interrupted(out: Path, config, dataset, signum: int) -> int:
    """The run's files as of its last finished epoch (read back from checkpoint.npz), metrics marked interrupted."""
    from dataclasses import asdict

    from tinygrad_conv import serialization
    from tinygrad_conv.train import model_from_metadata, predict, read_training_info

    name = signal.Signals(signum).name
    checkpoint = out / CHECKPOINT_NAME
    try:
        if checkpoint.exists():
            info = read_training_info(checkpoint)
            arrays = serialization.load(checkpoint)
            weights = {key[len("model."):]: value for key, value in arrays.items() if key.startswith("model.")}
            history = info["history"]
            metrics = {"interrupted": True, "signal": name, "epochs_completed": info["epoch"],
                       "test_accuracy": history[-1]["test_accuracy"], "test_loss": history[-1].get("test_loss"),
                       "train_accuracy": None,
                       "epochs": config.epochs, "train_seconds": info["train_seconds"],
                       "skipped_batches": info["skipped_batches"], "history": history, "confusion": info["confusion"],
                       "args": asdict(config), "data": dataset.name, "model": info["model_metadata"]["model"],
                       "classes": dataset.classes}
            model = model_from_metadata(info["model_metadata"])
            model.load_state_dict(weights)
            predictions = predict(model, dataset.standardize(dataset.x_test))
            _write_outputs(out, weights, info["model_metadata"], metrics, dataset.classes,
                           (dataset.x_test, dataset.y_test, predictions))
            done = f"after epoch {info['epoch']}/{config.epochs}; wrote {out}/ as of that epoch"
        else:
            metrics = {"interrupted": True, "signal": name, "epochs_completed": 0, "epochs": config.epochs,
                       "history": [], "args": asdict(config), "data": dataset.name}
            text = json.dumps(metrics, indent=2, allow_nan=False) + "\n"
            serialization.atomic_write(out / "metrics.json", lambda file: file.write(text.encode()))
            done = f"before its first epoch ended; wrote {out}/metrics.json"
    except (OSError, ValueError) as error:
        what = _write_error(error) if isinstance(error, OSError) else str(error)
        return _fail(f"interrupted by {name}, and then {what}", code=EXIT_SIGNAL[signum])
    print(f"tinygrad-conv: interrupted by {name} {done}; continue with: tinygrad-conv train --resume {out}",
          file=sys.stderr)
    return EXIT_SIGNAL[signum]


def _checkpoint_file(path: Path) -> Path:
    """A model.npz given directly, or the one inside a run folder."""
    if path.is_dir() and (path / "model.npz").is_file():
        return path / "model.npz"
    return path


def _load_checkpoint(path: Path):
    """(model with the checkpoint's weights, its metadata); ValueError with one readable line."""
    from tinygrad_conv import serialization
    from tinygrad_conv.train import DIGITS_METADATA, model_from_metadata

    path = _checkpoint_file(path)
    metadata = {**DIGITS_METADATA, **serialization.load_metadata(path)}
    state = serialization.load(path)
    model = model_from_metadata(metadata)
    model.load_state_dict(state)
    for name, array in state.items():
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            bad = int((~np.isfinite(array)).sum())
            raise _NonFiniteWeights(f"checkpoint {path}: parameter {name!r} has {bad} NaN/inf value(s) of "
                                    f"{array.size}; the run diverged, its predictions would mean nothing")
    return model, metadata


class _NonFiniteWeights(ValueError):
    """A checkpoint whose weights hold NaN or inf: exit code 1 (a broken result), not 2 (a bad argument)."""


def _evaluate(args: argparse.Namespace) -> int:
    from tinygrad_conv import datasets
    from tinygrad_conv.train import confusion_matrix, predict

    try:
        model, meta = _load_checkpoint(args.checkpoint)
        spec = args.data or meta["data"]
        dataset = datasets.load(spec, meta.get("image_size_option"))
        if dataset.classes != meta["classes"] or dataset.in_channels != meta["in_channels"] \
                or list(dataset.image_size) != meta["image_size"]:
            raise ValueError(f"--data {spec} does not fit the checkpoint: {dataset.num_classes} classes of "
                             f"{dataset.in_channels}×{dataset.image_size[0]}×{dataset.image_size[1]} images, the "
                             f"checkpoint's model takes {meta['in_channels']}×{meta['image_size'][0]}×"
                             f"{meta['image_size'][1]} and has {len(meta['classes'])} classes {meta['classes']}")
    except ValueError as error:  # CheckpointError, DataError, and load_state_dict's key/shape report
        return _fail(str(error).replace("\n", "; "), code=1 if isinstance(error, _NonFiniteWeights) else 2)
    x_test = datasets.standardize(dataset.x_test, meta["pixel_mean"], meta["pixel_std"])
    predictions = predict(model, x_test)
    y_test = dataset.y_test
    print(f"test accuracy {100 * float((predictions == y_test).mean()):.2f}% on {len(y_test)} images "
          f"({meta['model']}, data {spec})")
    print("confusion matrix (rows: true class, columns: predicted):")
    confusion = confusion_matrix(y_test, predictions, len(meta["classes"]))
    width = max(4, *(len(name) for name in meta["classes"][:50]))
    width = min(width, 12)
    names = [name[:width] for name in meta["classes"]]
    print(" " * (width + 1) + " ".join(f"{name:>{width}}" for name in names))
    for name, row in zip(names, confusion):
        print(f"{name:>{width}} " + " ".join(f"{c:>{width}}" for c in row))
    return 0


def _newest_run() -> Path:
    runs = sorted(Path("runs").glob("*/model.npz"), key=lambda p: p.stat().st_mtime)
    if not runs:
        raise ValueError("no --checkpoint given and no runs/*/model.npz here; train first "
                         "(tinygrad-conv train) or pass --checkpoint")
    return runs[-1]


def _predict(args: argparse.Namespace) -> int:
    from tinygrad_conv import datasets
    from tinygrad_conv.train import predict_proba

    try:
        checkpoint = args.checkpoint if args.checkpoint is not None else _newest_run()
        model, meta = _load_checkpoint(checkpoint)
        size = tuple(meta["image_size"])
        images = np.stack([datasets.prepare_image(path, meta["in_channels"], size, meta["ink_box"])
                           for path in args.images])
    except ValueError as error:
        return _fail(str(error).replace("\n", "; "), code=1 if isinstance(error, _NonFiniteWeights) else 2)
    if args.checkpoint is None:
        print(f"checkpoint: {_checkpoint_file(checkpoint)} ({meta['model']}, trained on {meta['data']})")
    probabilities = predict_proba(model, datasets.standardize(images, meta["pixel_mean"], meta["pixel_std"]))
    for path, row in zip(args.images, probabilities):
        best = int(row.argmax())
        print(f"{path}: {meta['classes'][best]} ({100 * float(row[best]):.1f}%)")
    return 0
