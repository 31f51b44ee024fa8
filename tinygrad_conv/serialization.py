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
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import zipfile
from collections.abc import Mapping
from typing import Any

import numpy as np

ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip's first local header; an empty zip's end record
NPY_MAGIC = b"\x93NUMPY"
METADATA_KEY = "__metadata__"  # reserved: a state dict may not use it


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
    arrays = dict(state_dict)
    if metadata is not None:
        arrays[METADATA_KEY] = _metadata_array(metadata)

    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"cannot save checkpoint {path!r}: directory {directory!r} does not exist")
    fd, temporary = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as file:
            _write_npz(file, arrays)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, _file_mode(path))
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


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


def load(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read every array of the .npz checkpoint at `path` into memory (its metadata left out); CheckpointError
    for anything else."""
    arrays = _load_all(path)
    arrays.pop(METADATA_KEY, None)
    return arrays


def load_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The metadata dict saved with the checkpoint at `path`, {} if it has none; CheckpointError if unreadable."""
    path = _path(path)
    stored = _load_all(path).get(METADATA_KEY)
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


def _load_all(path: str | os.PathLike) -> dict[str, np.ndarray]:
    path = _path(path)
    try:
        with open(path, "rb") as file:
            head = file.read(len(NPY_MAGIC))
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path!r} not found") from None
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
        with np.load(path, allow_pickle=False) as archive:
            for name in archive.files:
                try:
                    array = archive[name]
                except ValueError as error:
                    if "allow_pickle" in str(error):
                        raise CheckpointError(f"{path!r}: array {name!r} is an object array (stored with pickle); "
                                              "refused") from None
                    raise
                if not isinstance(array, np.ndarray):  # np.load gives a zip member that is no .npy as bytes
                    raise CheckpointError(f"{path!r}: member {name!r} of the archive is not a numpy array")
                arrays[name] = array
    except CheckpointError:
        raise
    except Exception as error:  # zipfile.BadZipFile, EOFError, zlib.error, ValueError from a bad .npy header…
        raise CheckpointError(f"{path!r} is a truncated or corrupt .npz checkpoint: "
                              f"{type(error).__name__}: {error}") from error
    return arrays


__all__ = ["CheckpointError", "METADATA_KEY", "save", "load", "load_metadata"]
