"""Checkpoints: a state dict {name: ndarray} as an `.npz` archive, written atomically, read without pickle.

The file is numpy's .npz format (a zip of one `.npy` per array, named "<key>.npy"), so `np.load` reads it.
`save` writes the archive to a temporary file beside `path`, fsyncs it and renames it over `path`
(os.replace): a crash or an error mid-write leaves the previous checkpoint whole. `load` refuses anything
that is not such an archive of plain numeric arrays — a missing, truncated or corrupt file, a pickle, an
object array, a lone `.npy` — with one error type, CheckpointError.

Metadata (what the weights are for: data set, model, class names) rides along as JSON: `save(..., metadata={...})`
stores json.dumps(metadata) encoded as UTF-8 in one uint8 array under the reserved key METADATA_KEY, so the
archive still holds numeric arrays only. `load` returns the weights without it; `load_metadata` returns the dict
({} for a checkpoint saved without metadata).

Reliability: `atomic_write` (temporary file in the same directory, fsync, os.replace, fsync of the directory)
is what every output of a training run goes through. A temporary file left by a killed save (`.<name>.*.tmp`
beside the path) is removed by the next save of that path; SIGINT/SIGTERM arriving during a save are held
until the save has finished, so none leaves a temporary file. Keys that would not read back as themselves
(NUL, '/', 'a' beside 'a.npy') and arrays that are not bool/int/uint/float are refused before anything is
written, and again on load. `load` refuses non-regular files (a FIFO would hang) before opening them and caps
the declared uncompressed size (`max_bytes`, default max(64 MiB, 200 × the file's size)): a zip bomb is refused.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import signal
import stat
import tempfile
import threading
import zipfile
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np

ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip's first local header; an empty zip's end record
NPY_MAGIC = b"\x93NUMPY"
METADATA_KEY = "__metadata__"  # reserved: a state dict may not use it
NUMERIC_KINDS = "biuf"  # bool, signed and unsigned integers, floats: what a checkpoint may hold
MIN_MAX_BYTES = 64 * 1024 * 1024
SIZE_RATIO = 200  # load's default cap: max(MIN_MAX_BYTES, SIZE_RATIO × the file's size) uncompressed


class CheckpointError(ValueError):
    """The file at a path is not a checkpoint `load` can read; the message names the path and the problem."""


def save(state_dict: Mapping[str, np.ndarray], path: str | os.PathLike,
         metadata: Mapping[str, Any] | None = None) -> None:
    """Write `state_dict` to exactly `path` (no suffix is added) as an .npz archive, atomically.

    metadata: a JSON-serialisable mapping stored beside the arrays (read back with load_metadata), or None.
    """
    path = _path(path)
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"save expects a mapping of names to numpy arrays, got {type(state_dict).__name__}")
    for name, value in state_dict.items():
        if not isinstance(name, str) or not name:
            raise TypeError(f"state dict keys must be non-empty strings, got {name!r}")
        if name == METADATA_KEY:
            raise ValueError(f"state dict key {METADATA_KEY!r} is reserved for the checkpoint's metadata")
        if not isinstance(value, np.ndarray):
            raise TypeError(f"state dict value {name!r} must be a numpy array, got {type(value).__name__}")
        if value.dtype.hasobject:
            raise TypeError(f"state dict value {name!r} has dtype {value.dtype}: object arrays cannot be saved "
                            "without pickle")
        if value.dtype.kind not in NUMERIC_KINDS:
            raise TypeError(f"state dict value {name!r} has dtype {value.dtype}: a checkpoint holds bool, integer "
                            "and float arrays only")
    _check_keys(list(state_dict))
    arrays = dict(state_dict)
    if metadata is not None:
        arrays[METADATA_KEY] = _metadata_array(metadata)
    try:
        atomic_write(path, lambda file: _write_npz(file, arrays))
    except FileNotFoundError as error:
        if os.path.isdir(os.path.dirname(os.path.abspath(path))):
            raise
        raise FileNotFoundError(f"cannot save checkpoint {path!r}: directory "
                                f"{os.path.dirname(os.path.abspath(path))!r} does not exist") from error


def _check_keys(keys: list[str]) -> None:
    """Refuse keys that would not come back as themselves from np.load: zipfile cuts a name at NUL and treats
    '/' as a folder, and NpzFile looks "a.npy" up as the member of key "a"."""
    members = {}
    for key in keys:
        if "\0" in key or "/" in key:
            raise ValueError(f"state dict key {key!r} contains {'NUL' if chr(0) in key else '/'}: it would not "
                             "read back from an .npz archive as itself")
        member = zipfile.ZipInfo(key + ".npy").filename
        if member in members:
            raise ValueError(f"state dict keys {members[member]!r} and {key!r} are the same name in an .npz archive")
        members[member] = key
    for key in keys:
        if key in members and members[key] != key:  # key "a.npy" is the member name of key "a"
            raise ValueError(f"state dict keys {members[key]!r} and {key!r} collide in an .npz archive "
                             f"(np.load reads {key!r} as {members[key]!r}'s array)")


def atomic_write(path: str | os.PathLike, write: Callable[[Any], None]) -> None:
    """Call write(binary file) on a temporary file beside `path`, fsync it and rename it over `path`, then fsync
    the directory: `path` is the old file or the whole new one, never a mix. Temporary files a killed earlier
    write of `path` left behind are removed first; SIGINT/SIGTERM are held until the write has finished.
    OSError (a full disk, a read-only folder) propagates with `path` as its filename."""
    path = _path(path)
    directory = os.path.dirname(os.path.abspath(path))
    prefix = f".{os.path.basename(path)}."
    with signals_deferred():
        for stale in glob.glob(os.path.join(glob.escape(directory), glob.escape(prefix) + "*.tmp")):
            with contextlib.suppress(OSError):
                os.unlink(stale)
        try:
            fd, temporary = tempfile.mkstemp(prefix=prefix, suffix=".tmp", dir=directory)
        except OSError as error:
            raise _naming(error, path) from None
        try:
            with os.fdopen(fd, "wb") as file:
                write(file)
                file.flush()
                os.fsync(file.fileno())
            os.chmod(temporary, _file_mode(path))
            os.replace(temporary, path)
        except BaseException as error:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            if isinstance(error, OSError):
                raise _naming(error, path) from None
            raise
        _fsync_directory(directory)


def _naming(error: OSError, path: str) -> OSError:
    """The same OSError, but naming the file being written (not a temporary name)."""
    return type(error)(error.errno, error.strerror or str(error), path)


def _fsync_directory(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # e.g. a platform where directories cannot be opened
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems cannot fsync a directory; the rename itself is done
    finally:
        os.close(fd)


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM that arrive inside the block, then deliver them (to the handlers that were in
    place) when it ends: a file being written is finished, or cleaned up, before the process reacts.
    Only the main thread can set handlers; elsewhere this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []
    kinds = (signal.SIGINT, signal.SIGTERM)
    previous = {kind: signal.signal(kind, lambda signum, frame: pending.append(signum)) for kind in kinds}
    try:
        yield
    finally:
        for kind, handler in previous.items():
            signal.signal(kind, signal.SIG_DFL if handler is None else handler)  # None: set outside Python
        for signum in dict.fromkeys(pending):
            signal.raise_signal(signum)


def _metadata_array(metadata: Mapping[str, Any]) -> np.ndarray:
    if not isinstance(metadata, Mapping):
        raise TypeError(f"metadata must be a mapping (a dict), got {type(metadata).__name__}")
    try:
        text = json.dumps(dict(metadata), allow_nan=False, sort_keys=True)
    except (TypeError, ValueError) as error:
        raise TypeError(f"metadata must be JSON-serialisable: {error}") from None
    return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).copy()


def _path(path: Any) -> str:
    if isinstance(path, bytes) or not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}: {path!r:.60}")
    return os.fspath(path)


def _write_npz(file: Any, arrays: Mapping[str, np.ndarray]) -> None:
    """What np.savez writes, without its keyword clash (np.savez(f, **{"file": a}) fails, and a key named
    "allow_pickle" is silently dropped) and never pickling."""
    with zipfile.ZipFile(file, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for name, array in arrays.items():
            with archive.open(name + ".npy", mode="w", force_zip64=True) as entry:
                np.lib.format.write_array(entry, np.asanyarray(array), allow_pickle=False)


def _file_mode(path: str) -> int:
    """Permissions for the new file: the old file's if it exists, else what open() would give (0o666 − umask)."""
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def load(path: str | os.PathLike, max_bytes: int | None = None) -> dict[str, np.ndarray]:
    """Read every array of the .npz checkpoint at `path` into memory (its metadata left out); CheckpointError
    for anything else.

    max_bytes: the most uncompressed bytes the archive may declare (default max(64 MiB, 200 × its file size)).
    """
    arrays = _load_all(path, max_bytes)
    arrays.pop(METADATA_KEY, None)
    return arrays


def load_metadata(path: str | os.PathLike, max_bytes: int | None = None) -> dict[str, Any]:
    """The metadata dict saved with the checkpoint at `path`, {} if it has none; CheckpointError if unreadable."""
    path = _path(path)
    stored = _load_all(path, max_bytes).get(METADATA_KEY)
    if stored is None:
        return {}
    try:
        if stored.dtype != np.uint8 or stored.ndim != 1:
            raise ValueError(f"expected a 1-D uint8 array, got {stored.dtype} {stored.shape}")
        metadata = json.loads(stored.tobytes().decode("utf-8"))
        if not isinstance(metadata, dict):
            raise ValueError(f"expected a JSON object, got {type(metadata).__name__}")
    except ValueError as error:  # UnicodeDecodeError and json.JSONDecodeError are ValueErrors
        raise CheckpointError(f"{path!r}: its metadata ({METADATA_KEY!r}) is not UTF-8 JSON of an object: "
                              f"{error}") from None
    return metadata


def _load_all(path: str | os.PathLike, max_bytes: int | None = None) -> dict[str, np.ndarray]:
    path = _path(path)
    try:
        info = os.stat(path)  # before opening: open() on a FIFO would wait for a writer forever
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path!r} not found") from None
    except OSError as error:
        raise CheckpointError(f"cannot read checkpoint {path!r}: {error.strerror or error}") from None
    if stat.S_ISDIR(info.st_mode):
        raise CheckpointError(f"cannot read checkpoint {path!r}: it is a directory")
    if not stat.S_ISREG(info.st_mode):
        raise CheckpointError(f"cannot read checkpoint {path!r}: not a regular file (a FIFO, socket or device)")
    if max_bytes is None:
        max_bytes = max(MIN_MAX_BYTES, SIZE_RATIO * info.st_size)
    try:
        with open(path, "rb", opener=lambda name, flags: os.open(name, flags | getattr(os, "O_NONBLOCK", 0))) as file:
            head = file.read(len(NPY_MAGIC))
    except OSError as error:
        raise CheckpointError(f"cannot read checkpoint {path!r}: {error.strerror or error}") from None
    if not head:
        raise CheckpointError(f"checkpoint {path!r} is an empty file")
    if head.startswith(NPY_MAGIC):
        raise CheckpointError(f"{path!r} is a single .npy array, not an .npz checkpoint of named arrays")
    if len(head) > 1 and head[0] == 0x80 and 2 <= head[1] <= 5:  # pickle's PROTO opcode, protocols 2–5
        raise CheckpointError(f"{path!r} is a Python pickle, not an .npz checkpoint; refused (unpickling "
                              "can run arbitrary code)")
    if not head.startswith(ZIP_MAGIC):
        raise CheckpointError(f"{path!r} is not an .npz checkpoint (it does not start like a zip archive: "
                              f"{head!r})")

    arrays = {}
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            declared = sum(member.file_size for member in members)
            if declared > max_bytes:
                raise CheckpointError(f"{path!r} declares {declared:,} bytes of arrays uncompressed, more than the "
                                      f"{max_bytes:,} allowed (a zip bomb?); pass load(..., max_bytes=) to allow it")
            for member in members:
                name = member.filename[:-4] if member.filename.endswith(".npy") else member.filename
                if not member.filename.endswith(".npy"):
                    raise CheckpointError(f"{path!r}: member {name!r} of the archive is not a numpy array")
                with archive.open(member) as entry:
                    _check_header(path, name, entry, member.file_size)
                with archive.open(member) as entry:
                    arrays[name] = np.lib.format.read_array(entry, allow_pickle=False)
    except CheckpointError:
        raise
    except Exception as error:  # zipfile.BadZipFile, EOFError, zlib.error, ValueError from a bad .npy header…
        raise CheckpointError(f"{path!r} is a truncated or corrupt .npz checkpoint: "
                              f"{type(error).__name__}: {error}") from error
    return arrays


def _check_header(path: str, name: str, entry: Any, member_size: int) -> None:
    """Refuse a member whose .npy header declares an object or non-numeric dtype, or more data than it holds."""
    version = np.lib.format.read_magic(entry)
    read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, _, dtype = read_header(entry)
    if dtype.hasobject:
        raise CheckpointError(f"{path!r}: array {name!r} is an object array (stored with pickle); refused")
    if dtype.kind not in NUMERIC_KINDS:
        raise CheckpointError(f"{path!r}: array {name!r} has dtype {dtype}; a checkpoint holds bool, integer and "
                              "float arrays only")
    if int(np.prod(shape, dtype=np.int64)) * dtype.itemsize > member_size:
        raise CheckpointError(f"{path!r}: array {name!r} declares shape {shape} of {dtype}, more than its "
                              f"{member_size:,} bytes in the archive (a truncated or corrupt .npz checkpoint)")


__all__ = ["CheckpointError", "METADATA_KEY", "atomic_write", "save", "load", "load_metadata", "signals_deferred"]
