"""The `tinygrad-conv` command line (also `python -m tinygrad_conv`).

    tinygrad-conv train [--epochs N] [--batch-size N] [--lr X] [--optimizer adam|sgd] [--seed N] [--out DIR]
    tinygrad-conv evaluate CHECKPOINT
    tinygrad-conv graph {derivation,conv,model} [--format svg|png|pdf|dot] [--out FILE] [--no-grad]
    tinygrad-conv derive

Bad arguments get one line on stderr and exit code 2; never a traceback.
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

    train = commands.add_parser("train", help="train the demo CNN on the handwritten digits")
    defaults = _train_defaults()
    train.add_argument("--epochs", type=int, default=defaults.epochs)
    train.add_argument("--batch-size", type=int, default=defaults.batch_size)
    train.add_argument("--lr", type=float, default=defaults.lr, help="learning rate (default: %(default)s)")
    train.add_argument("--optimizer", choices=["adam", "sgd"], default=defaults.optimizer)
    train.add_argument("--seed", type=int, default=defaults.seed)
    train.add_argument("--out", type=Path, help="run directory (default: runs/<timestamp>)")
    train.add_argument("--force", action="store_true", help="write into --out even if it holds files")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.add_argument("--on-nonfinite", choices=["stop", "skip"], default=defaults.on_nonfinite,
                       help="on a NaN/inf loss: stop the run, or skip the batch (default: %(default)s)")

    evaluate = commands.add_parser("evaluate", help="test accuracy and confusion matrix of a checkpoint")
    evaluate.add_argument("checkpoint", type=Path)

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
    from tinygrad_conv import plots, serialization
    from tinygrad_conv.train import NonFiniteLossError, TrainConfig, train

    try:
        config = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, optimizer=args.optimizer,
                             seed=args.seed, on_nonfinite=args.on_nonfinite)
        out = _run_directory(args.out, args.force)
    except ValueError as error:
        return _fail(str(error))
    print(f"training the demo CNN on 1437 handwritten digits ({config.optimizer}, lr {config.lr}, "
          f"batch {config.batch_size}, {config.epochs} epochs, seed {config.seed})")
    try:
        result = train(config, progress=not args.no_progress)
    except NonFiniteLossError as error:
        return _fail(str(error), code=1)
    metrics = result.metrics

    serialization.save(result.model.state_dict(), out / "model.npz")
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    plots.plot_curves(metrics["history"], out / "curves.png")
    plots.plot_filters(result.model[0].weight.data, out / "filters.png")
    plots.plot_confusion(np.array(metrics["confusion"]), out / "confusion.png")
    print(f"test accuracy {100 * metrics['test_accuracy']:.2f}%  (train {100 * metrics['train_accuracy']:.2f}%)  "
          f"in {metrics['train_seconds']:.2f} s of training, {metrics['images_per_second']:,.0f} images/s")
    print(f"wrote {out}/: model.npz metrics.json curves.png filters.png confusion.png")
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from tinygrad_conv import data, serialization
    from tinygrad_conv.train import build_model, confusion_matrix, predict

    try:
        state = serialization.load(args.checkpoint)
        model = build_model()
        model.load_state_dict(state)
    except ValueError as error:  # CheckpointError, and load_state_dict's key/shape report
        return _fail(str(error).replace("\n", "; "))
    _, _, x_test, y_test = data.load_split()
    predictions = predict(model, data.standardize(x_test))
    print(f"test accuracy {100 * float((predictions == y_test).mean()):.2f}% on {len(y_test)} images")
    print("confusion matrix (rows: true digit, columns: predicted):")
    confusion = confusion_matrix(y_test, predictions)
    print("     " + " ".join(f"{d:>4}" for d in range(10)))
    for digit, row in enumerate(confusion):
        print(f"{digit:>4} " + " ".join(f"{c:>4}" for c in row))
    return 0
