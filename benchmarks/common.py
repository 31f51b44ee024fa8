"""Shared helpers of the benchmark scripts: timing (warm-up, interleaving, medians), the machine header,
plain-text tables, and the optional PyTorch import.

Timing rules used by every script:
  * time.perf_counter around one call; warm-up calls first, not recorded;
  * competitors take turns in blocks of consecutive calls (ours, torch, torch, ours, ...: the order flips every
    round so neither always runs first), so drift on a shared machine hits both; each turn starts with a short pause
    and warm-up calls (see time_interleaved for why not call by call); PyTorch runs in a process of its own
    (Worker), so the two libraries' thread pools never share one;
  * the reported figure is the median of the recorded runs (robust to the odd slow run).
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

# `python benchmarks/bench_x.py` puts benchmarks/ first on sys.path; without the package installed (pip install -e .)
# fall back to the checkout this file lives in, so the scripts run from the repo root either way.
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if importlib.util.find_spec("tinygrad_conv") is None:
    sys.path.insert(0, REPO_ROOT)

# Seconds of pause before each turn of a library: OpenBLAS's idle worker threads keep spinning for up to ~0.1 s after
# numpy's last BLAS call (then they sleep). Measured: a torch training epoch run 20 ms after one of ours took 55-114 ms,
# alone 26-40 ms; 200 ms after, 27-33 ms.
SETTLE = 0.2

# Environment variables that change numpy's or torch's speed. They are reported, never set, by these scripts.
PERF_ENV_VARS = (
    "OPENBLAS_CORETYPE",
    "OPENBLAS_L2_SIZE",
    "OPENBLAS_NUM_THREADS",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "MALLOC_TRIM_THRESHOLD_",
    "MALLOC_MMAP_THRESHOLD_",
)


def import_torch() -> Any | None:
    """torch, or None when it is not importable (the scripts then print ours only and say so)."""
    try:
        import torch
    except ImportError:
        return None
    return torch


def parse_args(description: str, interleave: bool = True,
               extra: Callable[[argparse.ArgumentParser], None] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="fewer repeats: a smoke test, not a measurement")
    if interleave:
        parser.add_argument("--interleave", choices=("block", "call"), default="block",
                            help="take turns in blocks of calls with a pause and warm-up (default), or alternate "
                                 "call by call (shows the two libraries' thread pools fighting over the 2 cores)")
    if extra is not None:
        extra(parser)
    return parser.parse_args()


# ---------------------------------------------------------------- timing


def time_once(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def time_median(fn: Callable[[], Any], repeats: int, warmup: int = 3) -> float:
    """Median seconds of `repeats` calls of fn after `warmup` unrecorded calls."""
    for _ in range(warmup):
        fn()
    return statistics.median(time_once(fn) for _ in range(repeats))


class Worker:
    """A child process of its own (spawned: a fresh interpreter) that builds functions and times them in turns, so
    PyTorch's OpenMP threads and allocator never share a process with numpy's OpenBLAS threads: interleaved in one
    process, torch's own conv steps were measured up to 2× slower than alone. Neither process changes malloc's
    settings: both libraries run with the allocator as the user's process would have it."""

    def __init__(self) -> None:
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        self.connection, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(child,), daemon=True)
        self.process.start()
        self.count = 0

    def function(self, factory: str, *args: Any) -> RemoteFunction:
        """factory "module:name" is imported in the worker and called with args; it returns the function to time."""
        self.count += 1
        self.ask("build", self.count, factory, args)
        return RemoteFunction(self, self.count)

    def ask(self, *command: Any) -> Any:
        self.connection.send(command)
        status, value = self.connection.recv()
        if status != "ok":
            raise RuntimeError(f"benchmark worker failed:\n{value}")
        return value

    def close(self) -> None:
        self.connection.send(("stop",))
        self.process.join(10)


class RemoteFunction:
    """A function living in a Worker: calling it returns its result as numpy arrays; `turn` times it there."""

    def __init__(self, worker: Worker, key: int) -> None:
        self.worker, self.key = worker, key

    def __call__(self) -> Any:
        return self.worker.ask("call", self.key)

    def turn(self, warmup: int, count: int) -> list[float]:
        return self.worker.ask("turn", self.key, warmup, count)

    def memory(self, calls: int) -> int | None:
        """peak_memory_growth of `calls` calls, measured in the worker."""
        return self.worker.ask("memory", self.key, calls)


def _serve(connection: Any) -> None:
    """The Worker's loop: build, call (results as numpy arrays), turn (warm-up calls, then timed calls), stop."""
    import importlib
    import traceback

    functions: dict[int, Callable[[], Any]] = {}
    while True:
        command, *params = connection.recv()
        if command == "stop":
            return
        try:
            if command == "build":
                key, factory, args = params
                module, name = factory.split(":")
                functions[key] = getattr(importlib.import_module(module), name)(*args)
                reply = None
            elif command == "memory":
                key, calls = params
                reply = peak_memory_growth(functions[key], calls)
            elif command == "call":
                result = functions[params[0]]()
                reply = tuple(_as_numpy(r) for r in result) if isinstance(result, tuple) else _as_numpy(result)
            else:  # turn
                key, warmup, count = params
                for _ in range(warmup):
                    functions[key]()
                reply = [time_once(functions[key]) for _ in range(count)]
            connection.send(("ok", reply))
        except Exception:
            connection.send(("error", traceback.format_exc()))


def _as_numpy(value: Any) -> Any:
    return value.detach().numpy() if hasattr(value, "detach") else value


def time_interleaved(
    fns: dict[str, Callable[[], Any]], repeats: int, warmup: int = 3, block: int = 10, settle: float = SETTLE
) -> dict[str, list[float]]:
    """Seconds of `repeats` recorded calls of each fn, the fns taking turns block by block; a RemoteFunction takes
    its turns in its own process (this one waits meanwhile), the others in this one.

    A turn: sleep `settle` seconds, `warmup` unrecorded calls, then up to `block` recorded calls; the order of the
    fns flips every round (ours, torch, torch, ours, ...). block=1, warmup=0, settle=0 alternates call by call.

    Why blocks: on these 2-core machines numpy's OpenBLAS threads and torch's OpenMP threads keep spinning for a
    while after each call. Alternating call by call puts the other library's spinning threads on the two cores
    during every measured call: both ran 1.5-10x slower than alone, with an interquartile range of 40-450% of the
    median (measured; run bench_conv.py --interleave call to see it). A pause (SETTLE) plus a few warm-up calls per
    turn gives each library its steady state, while drift on the shared machine still hits both.
    Returns {name: [seconds, ...]}.
    """
    names = list(fns)
    times: dict[str, list[float]] = {name: [] for name in names}
    round_ = 0
    while any(len(times[name]) < repeats for name in names):
        for name in names if round_ % 2 == 0 else reversed(names):
            if settle:
                time.sleep(settle)
            count = min(block, repeats - len(times[name]))
            if isinstance(fns[name], RemoteFunction):
                times[name].extend(fns[name].turn(warmup, count))
                continue
            for _ in range(warmup):
                fns[name]()
            for _ in range(count):
                times[name].append(time_once(fns[name]))
        round_ += 1
    return times


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def peak_memory_growth(fn: Callable[[], Any], calls: int) -> int | None:
    """Bytes by which the process's peak resident memory (VmHWM) rises above its resident size before the calls:
    everything fn allocates and keeps or frees (temporaries, gradients, caches, allocator slack), as the operating
    system sees it, whatever library allocated it. Linux only (None elsewhere): the peak is reset through
    /proc/self/clear_refs."""
    try:
        before = _status_kib("VmRSS")
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return None
    for _ in range(calls):
        fn()
    return 1024 * (_status_kib("VmHWM") - before)


def others_load(seconds: float = 1.0) -> float | None:
    """The fraction of all CPUs' time that other processes used while this one slept for `seconds`, from /proc/stat
    (None where there is none): 0 on a quiet machine, 0.5 when one of two cores is taken."""
    def snapshot() -> tuple[int, int]:
        with open("/proc/stat") as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
        idle = fields[3] + fields[4]  # idle + iowait
        return sum(fields[:8]) - idle, sum(fields[:8])
    try:
        busy0, total0 = snapshot()
        time.sleep(seconds)
        busy1, total1 = snapshot()
    except OSError:
        return None
    return (busy1 - busy0) / max(total1 - total0, 1)


def interleave_settings(mode: str, quick: bool) -> dict[str, Any]:
    """time_interleaved's keywords for --interleave block|call."""
    if mode == "call":
        return {"warmup": 0, "block": 1, "settle": 0.0}
    return {"warmup": 2 if quick else 3, "block": 5 if quick else 10, "settle": SETTLE}


def describe_interleave(mode: str, repeats: int, settings: dict[str, Any]) -> str:
    if mode == "call":
        return (f"timing: {repeats} recorded calls each, ours and torch alternating call by call (--interleave call: "
                "expect both slowed by the other's spinning threads); medians")
    return (f"timing: {repeats} recorded calls each, ours and torch interleaved in turns of {settings['block']} calls "
            f"(each turn: {1e3 * settings['settle']:.0f} ms pause + {settings['warmup']} warm-up calls; order flipped "
            "every round); medians")


def start_interleaved(doc: str, title: str, notes: Sequence[str]) -> tuple[argparse.Namespace, int, dict, Any]:
    """The opening of an ours-vs-torch timing script: parse --quick/--interleave, import torch, print the header.

    Returns (args, repeats, time_interleaved's settings, torch or None)."""
    args = parse_args(doc.splitlines()[0])
    repeats = 5 if args.quick else 30
    settings = interleave_settings(args.interleave, args.quick)
    torch = import_torch()
    print_header(title, torch, args.quick, [describe_interleave(args.interleave, repeats, settings), *notes])
    return args, repeats, settings, torch


def noise(times: dict[str, list[float]]) -> str:
    """Interquartile range / median of our recorded times, and of torch's when it ran: e.g. '5%/3%'."""
    return "/".join(pct(spread(times[name])) for name in ("ours", "torch") if name in times)


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def geomean(values: Sequence[float]) -> float:
    values = [v for v in values if v > 0 and math.isfinite(v)]
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else float("nan")


def spread(values: Sequence[float]) -> float:
    """Interquartile range / median: a noise indicator (0.1 = the middle half of the runs lies within ±5%)."""
    if len(values) < 4:
        return float("nan")
    q1, _, q3 = statistics.quantiles(values, n=4)
    return (q3 - q1) / statistics.median(values)


def matmul_seconds(a: np.ndarray, b: np.ndarray, repeats: int, warmup: int = 3) -> float:
    """Median seconds of numpy's `a @ b` (a and b may be transposed views: BLAS reads them without a copy)."""
    out = a @ b
    del out
    return time_median(lambda: a @ b, repeats, warmup)


def matmul_gflops(n: int, dtype: Any, repeats: int) -> float:
    """numpy's GFLOP/s of an n×n×n matmul (2n³ FLOPs), median of `repeats`."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n)).astype(dtype), rng.standard_normal((n, n)).astype(dtype)
    return 2 * n**3 / matmul_seconds(a, b, repeats, warmup=2) / 1e9


# ---------------------------------------------------------------- the header


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _blas_lines() -> list[str]:
    """numpy's BLAS as the process loaded it (threadpoolctl), else as numpy was built (numpy.show_config)."""
    lines = []
    try:
        import threadpoolctl

        for info in threadpoolctl.threadpool_info():
            if info.get("user_api") == "blas" or info.get("internal_api") in ("openblas", "mkl", "blis"):
                lines.append(
                    f"BLAS (threadpoolctl): {info.get('internal_api')} {info.get('version')}, "
                    f"kernels for {info.get('architecture', '?')}, {info.get('num_threads')} threads, "
                    f"{os.path.basename(info.get('filepath', ''))}"
                )
    except ImportError:
        lines.append("BLAS: threadpoolctl is not installed (pip install threadpoolctl shows which BLAS and kernels "
                     "numpy loaded)")
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        lines.append(f"BLAS (numpy build): {blas.get('name')} {blas.get('version')}; "
                     f"{blas.get('openblas configuration', '').strip()}")
    except Exception as error:  # the layout of show_config's dicts is not a stable API
        lines.append(f"BLAS (numpy build): unavailable ({type(error).__name__})")
    return lines


def print_header(title: str, torch: Any | None, quick: bool, notes: Sequence[str] = ()) -> None:
    """The machine and library facts that decide the numbers below, then the script's own notes."""
    print(f"== {title} ==")
    print(f"date: {time.strftime('%Y-%m-%d %H:%M:%S')}   mode: {'--quick (smoke test)' if quick else 'default'}")
    print(f"machine: {_cpu_model()}, {os.cpu_count()} logical CPUs, load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} (shared machine: expect ±10-30% noise)")
    print(f"python {platform.python_version()}, numpy {np.__version__}")
    for line in _blas_lines():
        print(line)
    print("env: " + ", ".join(f"{name}={os.environ.get(name, '<unset>')}" for name in PERF_ENV_VARS))
    if "OPENBLAS_CORETYPE" in os.environ:
        print("note: OPENBLAS_CORETYPE pins OpenBLAS to the kernels named above, not the ones it would pick for this "
              "CPU; for a current numpy's own, run with it and OPENBLAS_L2_SIZE unset: "
              "env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/<script>.py")
    print("allocator: malloc left at its defaults in both processes (ours reuses its large temporaries itself)")
    if torch is None:
        print("torch: NOT importable - PyTorch columns are left out")
    else:
        print(f"torch {torch.__version__}: {torch.get_num_threads()} intra-op threads (default, not changed)")
    for note in notes:
        print(note)
    print()


# ---------------------------------------------------------------- tables


def fmt(value: Any, digits: int = 2) -> str:
    """Numbers for a table: '-' for missing, fixed decimals for floats."""
    if value is None:
        return "-"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "-"
        return f"{value:.{digits}f}"
    return str(value)


def pct(fraction: float) -> str:
    """0.123 → '12%', nan → '-'."""
    return f"{100 * fraction:.0f}%" if math.isfinite(fraction) else "-"


def print_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None = None) -> None:
    """A plain-text table; the first column left-aligned, the others right-aligned. Cells are str (use fmt)."""
    cells = [[str(c) for c in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip()

    if title:
        print(title)
    print(line(cells[0]))
    print("  ".join("-" * w for w in widths))
    for row in cells[1:]:
        print(line(row))
    print()


# ---------------------------------------------------------------- timers around every primitive (ops.py)


def timing(function, seconds: dict[str, float], key: str, calls: dict[str, int] | None = None):
    """function, adding the seconds each call takes to seconds[key] (and counting calls[key])."""
    def timed_function(*args, **kwargs):
        started = time.perf_counter()
        result = function(*args, **kwargs)
        seconds[key] = seconds.get(key, 0.0) + time.perf_counter() - started
        if calls is not None:
            calls[key] = calls.get(key, 0) + 1
        return result

    return timed_function


class PrimitivePatch:
    """Replaces every primitive's forward and backward (ops.py) by make(method, 'Op.forward'); restore() undoes it."""

    def __init__(self) -> None:
        from tinygrad_conv import ops  # after the sys.path fallback above

        self.saved = [(cls, name, getattr(cls, name)) for cls in ops.Op.__subclasses__()
                      for name in ("forward", "backward")]

    def patch(self, make) -> None:
        """A backward rule runs other primitives' forwards (Unfold.backward runs Fold.forward): only the outermost
        primitive call is handed to make()'s wrapper, so no time is counted twice."""
        depth = [0]

        def outermost(method, wrapped):
            def call(*args, **kwargs):
                if depth[0]:
                    return method(*args, **kwargs)
                depth[0] += 1
                try:
                    return wrapped(*args, **kwargs)
                finally:
                    depth[0] -= 1
            return call

        for cls, name, method in self.saved:
            setattr(cls, name, outermost(method, make(method, f"{cls.__name__}.{name}")))

    def restore(self) -> None:
        for cls, name, method in self.saved:
            setattr(cls, name, method)


class OpTimers(PrimitivePatch):
    """Every primitive's forward and backward in a timer, as a context manager: seconds and calls per
    'Op.forward' / 'Op.backward'. Those bodies are the numpy kernels (plus numpy's per-call overhead)."""

    def __enter__(self) -> OpTimers:
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self.patch(lambda method, key: timing(method, self.seconds, key, self.calls))
        return self

    def __exit__(self, *exc: object) -> None:
        self.restore()
