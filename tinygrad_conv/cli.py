"""The `tinygrad-conv` command line (also `python -m tinygrad_conv`).

    tinygrad-conv train [--data NAME|FOLDER] [--model digits-cnn|lenet5] [--image-size N] [--epochs N]
                        [--batch-size N] [--lr X] [--shift N] [--optimizer adam|sgd] [--seed N] [--out DIR]
    tinygrad-conv evaluate CHECKPOINT|RUN_DIR [--data NAME|FOLDER]
    tinygrad-conv predict [--checkpoint CHECKPOINT|RUN_DIR] IMAGE...
    tinygrad-conv graph {derivation,conv,model} [--format svg|png|pdf|dot] [--out FILE] [--no-grad]
    tinygrad-conv derive

Bad arguments and bad data get one line on stderr and exit code 2; never a traceback. docs/DATA.md describes
--data, --model and predict for users.
"""

from __future__ import annotations

import argparse
import json
import sys
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
    train.add_argument("--lr", type=float, help="learning rate (default: 0.1 digits-cnn, 0.05 lenet5)")
    train.add_argument("--shift", type=int, help="augmentation: move each training image by up to N pixels "
                                                 "(default: 1; 0: off)")
    train.add_argument("--optimizer", choices=["adam", "sgd"], default=defaults.optimizer)
    train.add_argument("--seed", type=int, default=defaults.seed)
    train.add_argument("--out", type=Path, help="run directory (default: runs/<timestamp>)")
    train.add_argument("--force", action="store_true", help="write into --out even if it holds files")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.add_argument("--on-nonfinite", choices=["stop", "skip"], default=defaults.on_nonfinite,
                       help="on a NaN/inf loss: stop the run, or skip the batch (default: %(default)s)")

    evaluate = commands.add_parser("evaluate", help="test accuracy and confusion matrix of a checkpoint")
    evaluate.add_argument("checkpoint", type=Path, help="a model.npz, or the run folder holding it")
    evaluate.add_argument("--data", help="evaluate on this data set (default: the one the checkpoint was trained on)")

    predict = commands.add_parser("predict", help="classify images with a trained checkpoint")
    predict.add_argument("images", nargs="+", type=Path, metavar="IMAGE", help="PNG or JPEG files")
    predict.add_argument("--checkpoint", type=Path,
                         help="a model.npz or run folder (default: the newest runs/*/model.npz)")

    graph = commands.add_parser("graph", help="draw a computation graph with graphviz")
    graph.add_argument("name", help="derivation, conv or model")
    graph.add_argument("--format", dest="fmt", help="svg, png, pdf or dot")
    graph.add_argument("--out")
    graph.add_argument("--no-grad", action="store_true", help="leave gradients out of the labels")

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

        return viz.graph_command(args.name, args.fmt, args.out, show_grad=not args.no_grad)
    from tinygrad_conv.derivation import report

    return 0 if report() else 1


def _run_directory(out: Path | None, force: bool) -> Path:
    """A directory to write the run into: a fresh runs/<timestamp>, or --out (empty, or --force)."""
    if out is None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        out, k = Path("runs") / stamp, 1
        while out.exists():
            out, k = Path("runs") / f"{stamp}-{k}", k + 1
    elif out.exists() and (not out.is_dir() or (any(out.iterdir()) and not force)):
        what = "is not a directory" if not out.is_dir() else "already holds files (pass --force to overwrite them)"
        raise ValueError(f"--out {out} {what}")
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise ValueError(f"cannot write to --out {out}: {error.strerror or error}") from None
    return out


def _train(args: argparse.Namespace) -> int:
    from tinygrad_conv import datasets, plots, serialization
    from tinygrad_conv.train import NonFiniteLossError, TrainConfig, build, default_model, train

    given = {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "optimizer": args.optimizer,
             "seed": args.seed, "on_nonfinite": args.on_nonfinite, "shift": args.shift, "data": args.data,
             "image_size": args.image_size}
    try:
        TrainConfig.for_model(args.model or "digits-cnn", **given)  # bad numbers fail before any data is read
        dataset = datasets.load(args.data, args.image_size)
        model = args.model or default_model(dataset.image_size)
        config = TrainConfig.for_model(model, **given)
        build(model, config.seed, dataset.in_channels, dataset.num_classes, dataset.image_size)  # fits the data?
        out = _run_directory(args.out, args.force)
    except ValueError as error:  # DataError included
        return _fail(str(error))
    print(f"training {model} on {len(dataset.y_train)} images of {dataset.description}: "
          f"{dataset.num_classes} classes, {len(dataset.y_test)} test images "
          f"({config.optimizer}, lr {config.lr}, batch {config.batch_size}, {config.epochs} epochs, "
          f"seed {config.seed})")
    try:
        result = train(config, progress=not args.no_progress, dataset=dataset)
    except NonFiniteLossError as error:
        return _fail(str(error), code=1)
    metrics = result.metrics

    serialization.save(result.model.state_dict(), out / "model.npz", metadata=result.metadata)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    plots.plot_curves(metrics["history"], out / "curves.png")
    plots.plot_filters(result.model[0].weight.data, out / "filters.png")
    plots.plot_confusion(np.array(metrics["confusion"]), out / "confusion.png", dataset.classes)
    print(f"test accuracy {100 * metrics['test_accuracy']:.2f}%  (train {100 * metrics['train_accuracy']:.2f}%)  "
          f"in {metrics['train_seconds']:.2f} s of training, {metrics['images_per_second']:,.0f} images/s")
    print(f"wrote {out}/: model.npz metrics.json curves.png filters.png confusion.png")
    return 0


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
    return model, metadata


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
        return _fail(str(error).replace("\n", "; "))
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
        return _fail(str(error).replace("\n", "; "))
    if args.checkpoint is None:
        print(f"checkpoint: {_checkpoint_file(checkpoint)} ({meta['model']}, trained on {meta['data']})")
    probabilities = predict_proba(model, datasets.standardize(images, meta["pixel_mean"], meta["pixel_std"]))
    for path, row in zip(args.images, probabilities):
        best = int(row.argmax())
        print(f"{path}: {meta['classes'][best]} ({100 * float(row[best]):.1f}%)")
    return 0
