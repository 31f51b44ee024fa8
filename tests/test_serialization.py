"""serialization: exact round trips, atomic writes, and one clear error for every kind of bad file."""

import os
import pathlib
import pickle
import re
import signal
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from tinygrad_conv import Tensor, nn, serialization
from tinygrad_conv.serialization import CheckpointError


def sample_state():
    rng = np.random.default_rng(0)
    return {
        "0.weight": rng.standard_normal((4, 1, 3, 3)).astype(np.float32),
        "0.bias": np.array([np.nan, np.inf, -0.0, 1e-45], np.float32),
        "block.1.scale": rng.standard_normal(()),
        "counts": np.arange(6, dtype=np.int64).reshape(2, 3),
        "half": np.array([1.5, -2.25], np.float16),
        "mask": np.array([True, False]),
        "empty": np.zeros((0, 3)),
        "file": np.ones(2),  # names np.savez would choke on or silently drop
        "allow_pickle": np.ones(1),
        "transposed": rng.standard_normal((3, 5)).T,
    }


def assert_same_state(loaded, expected):
    assert list(loaded) == list(expected)
    for name, value in expected.items():
        assert loaded[name].dtype == value.dtype and loaded[name].shape == value.shape, name
        assert np.array_equal(loaded[name], value, equal_nan=value.dtype.kind == "f"), name


# ---------------------------------------------------------------- round trips


def test_round_trip_keeps_names_dtypes_and_values_exactly(tmp_path):
    state = sample_state()
    serialization.save(state, tmp_path / "model.npz")
    assert_same_state(serialization.load(tmp_path / "model.npz"), state)
    assert np.signbit(serialization.load(str(tmp_path / "model.npz"))["0.bias"][2])


def test_save_writes_exactly_to_the_path_given(tmp_path):
    path = tmp_path / "weights.ckpt"
    serialization.save({"w": np.ones(3)}, str(path))
    assert sorted(os.listdir(tmp_path)) == ["weights.ckpt"]
    assert np.array_equal(serialization.load(path)["w"], np.ones(3))
    assert set(np.load(path)) == {"w"}  # plain numpy reads it too


def test_save_replaces_an_existing_checkpoint(tmp_path):
    path = tmp_path / "model.npz"
    serialization.save({"a": np.zeros(2)}, path)
    serialization.save({"b": np.ones(3)}, path)
    assert_same_state(serialization.load(path), {"b": np.ones(3)})


def test_load_reads_everything_eagerly(tmp_path):
    path = tmp_path / "model.npz"
    serialization.save({"a": np.arange(3.0)}, path)
    state = serialization.load(path)
    path.unlink()
    assert isinstance(state, dict) and np.array_equal(state["a"], [0.0, 1.0, 2.0])


def test_a_model_loaded_from_a_checkpoint_gives_identical_outputs(tmp_path):
    def model(seed):
        rng = np.random.default_rng(seed)
        return nn.Sequential(nn.Conv2d(1, 3, 3, padding=1, rng=rng), nn.ReLU(), nn.Flatten(), nn.Linear(48, 4, rng=rng))

    trained, fresh = model(0), model(1)
    serialization.save(trained.state_dict(), tmp_path / "model.npz")
    fresh.load_state_dict(serialization.load(tmp_path / "model.npz"))
    x = Tensor(np.random.default_rng(2).standard_normal((2, 1, 4, 4)).astype(np.float32))
    assert np.array_equal(fresh(x).data, trained(x).data)


# ---------------------------------------------------------------- atomicity


def fail(*args, **kwargs):
    raise OSError("disk full (simulated)")


@pytest.mark.parametrize("target", ["replace", "write"])
def test_a_failed_save_leaves_the_old_file_and_no_temporary_file(tmp_path, monkeypatch, target):
    path = tmp_path / "model.npz"
    serialization.save({"old": np.arange(4.0)}, path)
    before = path.read_bytes()
    if target == "replace":
        monkeypatch.setattr(os, "replace", fail)
    else:
        def write_half_then_fail(file, arrays):
            file.write(b"PK\x03\x04 half an archive")
            fail()

        monkeypatch.setattr(serialization, "_write_npz", write_half_then_fail)
    with pytest.raises(OSError, match="simulated"):
        serialization.save({"new": np.ones(1000)}, path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["model.npz"]


def test_a_new_file_gets_ordinary_permissions(tmp_path):
    path = tmp_path / "model.npz"
    serialization.save({"a": np.zeros(1)}, path)
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


@pytest.mark.parametrize(
    ("state", "match"),
    [
        ({"a": [1.0, 2.0]}, "'a' must be a numpy array, got list"),
        ({"a": Tensor([1.0])}, "'a' must be a numpy array, got Tensor"),
        ({"a": np.array([{}, 1], dtype=object)}, "object"),
        ({1: np.zeros(1)}, "keys must be non-empty strings"),
        ([("a", np.zeros(1))], "mapping"),
    ],
)
def test_save_refuses_what_it_cannot_store_without_pickle(tmp_path, state, match):
    with pytest.raises(TypeError, match=match):
        serialization.save(state, tmp_path / "model.npz")
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------- bad files


def good_bytes(tmp_path):
    serialization.save({"0.weight": np.arange(100, dtype=np.float32), "0.bias": np.ones(4)}, tmp_path / "good.npz")
    return (tmp_path / "good.npz").read_bytes()


def write_bad_file(tmp_path, kind):
    path = tmp_path / f"{kind}.npz"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind.startswith("truncated"):
        raw = good_bytes(tmp_path)
        path.write_bytes(raw[: int(len(raw) * float(kind.split("-")[1]))])
    elif kind == "corrupt":
        raw = bytearray(good_bytes(tmp_path))
        raw[raw.index(np.float32(50).tobytes())] ^= 0xFF  # one flipped byte inside an array's data
        path.write_bytes(bytes(raw))
    elif kind == "pickle":
        path.write_bytes(pickle.dumps({"0.weight": np.zeros(3)}))
    elif kind == "pickled-npy":
        with open(path, "wb") as file:
            np.save(file, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    elif kind == "npy":
        with open(path, "wb") as file:
            np.save(file, np.zeros(3))
    elif kind == "object-array":
        with open(path, "wb") as file:
            np.savez(file, weight=np.zeros(2), meta=np.array([{"lr": 0.1}], dtype=object))
    elif kind == "foreign-zip":
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("README.txt", "not an array")
    elif kind == "text":
        path.write_text("0.weight = [1, 2, 3]\n")
    elif kind == "directory":
        path.mkdir()
    return path


@pytest.mark.parametrize(
    ("kind", "match"),
    [
        ("empty", "empty file"),
        ("truncated-0.3", "truncated or corrupt"),
        ("truncated-0.9", "truncated or corrupt"),
        ("truncated-0.999", "truncated or corrupt"),
        ("corrupt", "truncated or corrupt.*CRC"),
        ("pickle", "pickle"),
        ("pickled-npy", r"\.npy"),
        ("npy", r"single \.npy array"),
        ("object-array", "'meta' is an object array"),
        ("foreign-zip", "'README.txt' of the archive is not a numpy array"),
        ("text", "not an .npz checkpoint"),
        ("directory", "cannot read"),
    ],
)
def test_bad_files_are_refused_with_a_checkpoint_error_naming_the_path(tmp_path, kind, match):
    path = write_bad_file(tmp_path, kind)
    with pytest.raises(CheckpointError, match=match) as info:
        serialization.load(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_a_missing_file_is_a_checkpoint_error_saying_not_found(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        serialization.load(pathlib.Path(tmp_path) / "nowhere.npz")


def test_top_level_save_load_and_gradcheck_are_the_librarys(tmp_path):
    import tinygrad_conv

    tinygrad_conv.save({"w": np.arange(3.0)}, tmp_path / "m.npz")
    np.testing.assert_array_equal(tinygrad_conv.load(tmp_path / "m.npz")["w"], np.arange(3.0))
    x = tinygrad_conv.Tensor(np.array([0.5, -1.5]), requires_grad=True)
    tinygrad_conv.gradcheck(lambda t: (t * t).sum(), [x])


# ---------------------------------------------------------------- metadata


def test_metadata_round_trips_and_load_returns_only_the_arrays(tmp_path):
    path = tmp_path / "model.npz"
    metadata = {"model": "lenet5", "classes": ["chat", "chien", "été"], "image_size": [28, 28], "ink_box": None}
    serialization.save({"w": np.ones(3, np.float32)}, path, metadata=metadata)
    assert serialization.load_metadata(path) == metadata
    assert list(serialization.load(path)) == ["w"]
    with zipfile.ZipFile(path) as archive:  # stored as a numeric array: uint8 UTF-8 bytes of JSON
        assert sorted(archive.namelist()) == [serialization.METADATA_KEY + ".npy", "w.npy"]
    stored = np.load(path, allow_pickle=False)[serialization.METADATA_KEY]
    assert stored.dtype == np.uint8 and stored.ndim == 1


def test_a_checkpoint_without_metadata_has_empty_metadata(tmp_path):
    serialization.save({"w": np.ones(3)}, tmp_path / "model.npz")
    assert serialization.load_metadata(tmp_path / "model.npz") == {}


@pytest.mark.parametrize(("metadata", "error", "message"), [
    ({"f": object()}, TypeError, "metadata must be JSON-serialisable"),
    ({"x": float("nan")}, TypeError, "metadata must be JSON-serialisable"),
    (["not", "a", "dict"], TypeError, "metadata must be a mapping"),
])
def test_save_refuses_metadata_json_cannot_hold(tmp_path, metadata, error, message):
    with pytest.raises(error, match=message):
        serialization.save({"w": np.ones(1)}, tmp_path / "model.npz", metadata=metadata)
    assert not (tmp_path / "model.npz").exists()


def test_save_refuses_the_reserved_metadata_key(tmp_path):
    with pytest.raises(ValueError, match="is reserved for the checkpoint's metadata"):
        serialization.save({serialization.METADATA_KEY: np.ones(1)}, tmp_path / "model.npz")


def test_load_metadata_refuses_metadata_that_is_not_json(tmp_path):
    path = tmp_path / "model.npz"
    np.savez(path, **{serialization.METADATA_KEY: np.frombuffer(b"\xff{oops", np.uint8)})
    with pytest.raises(CheckpointError, match="is not UTF-8 JSON of an object"):
        serialization.load_metadata(path)


# ---------------------------------------------------------------- reliability, round two (issue 15)


def test_a_temporary_file_left_by_a_killed_save_is_removed_by_the_next_save(tmp_path):
    path = tmp_path / "model.npz"
    stale = tmp_path / ".model.npz.abc123.tmp"
    stale.write_bytes(b"half a checkpoint")
    other = tmp_path / ".other.npz.abc123.tmp"  # another path's temporary file is not ours to remove
    other.write_bytes(b"")
    serialization.save({"a": np.zeros(2)}, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.npz.abc123.tmp", "model.npz"]


def test_sigterm_during_a_save_is_held_until_the_file_is_whole(tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    real_write = serialization._write_npz
    received = []

    def write_and_get_terminated(file, arrays):
        os.kill(os.getpid(), signal.SIGTERM)
        real_write(file, arrays)

    class Terminated(Exception):
        pass

    def handler(signum, frame):
        received.append(signum)
        raise Terminated

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        monkeypatch.setattr(serialization, "_write_npz", write_and_get_terminated)
        with pytest.raises(Terminated):
            serialization.save({"a": np.arange(3.0)}, path)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert received == [signal.SIGTERM]
    assert [p.name for p in tmp_path.iterdir()] == ["model.npz"]
    assert serialization.load(path)["a"].tolist() == [0.0, 1.0, 2.0]


def test_a_process_killed_by_sigterm_mid_save_leaves_no_temporary_file(tmp_path):
    script = (
        "import os, signal, sys, numpy as np\n"
        "from tinygrad_conv import serialization\n"
        "real = serialization._write_npz\n"
        "def write(file, arrays):\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "    real(file, arrays)\n"
        "serialization._write_npz = write\n"
        "serialization.save({'a': np.ones(1000)}, sys.argv[1])\n"
        "print('not reached')\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "model.npz")], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == -signal.SIGTERM and "not reached" not in done.stdout
    assert [p.name for p in tmp_path.iterdir()] == ["model.npz"]  # finished before the signal took effect
    assert serialization.load(tmp_path / "model.npz")["a"].sum() == 1000


def test_the_directory_is_fsynced_after_the_rename(tmp_path, monkeypatch):
    calls = []
    real_replace, real_fsync = os.replace, os.fsync
    monkeypatch.setattr(os, "replace", lambda *a: (calls.append("replace"), real_replace(*a))[1])
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append("dir" if os.path.isdir(f"/proc/self/fd/{fd}")
                                                              else "file"), real_fsync(fd))[1])
    serialization.save({"a": np.zeros(1)}, tmp_path / "model.npz")
    assert calls == ["file", "replace", "dir"]


@pytest.mark.parametrize(("keys", "match"), [
    (["a", "a.npy"], "collide"),
    (["a\0b"], "NUL"),
    (["layer/weight"], "contains /"),
])
def test_keys_that_would_not_read_back_are_refused_before_writing(tmp_path, keys, match):
    with pytest.raises(ValueError, match=match):
        serialization.save({key: np.zeros(1) for key in keys}, tmp_path / "model.npz")
    assert os.listdir(tmp_path) == []


def test_a_key_ending_in_npy_alone_round_trips(tmp_path):
    serialization.save({"b.npy": np.ones(2), "a": np.zeros(1)}, tmp_path / "model.npz")
    loaded = serialization.load(tmp_path / "model.npz")
    assert loaded["b.npy"].tolist() == [1.0, 1.0] and loaded["a"].tolist() == [0.0]


@pytest.mark.parametrize("array", [np.array(["x"]), np.array([b"x"]), np.array(["2024-01-01"], "datetime64[D]"),
                                   np.array([1], "timedelta64[s]"), np.array([1 + 2j])])
def test_non_numeric_arrays_are_refused_on_save_and_on_load(tmp_path, array):
    with pytest.raises(TypeError, match="bool, integer and float"):
        serialization.save({"a": array}, tmp_path / "model.npz")
    assert os.listdir(tmp_path) == []
    np.savez(tmp_path / "foreign.npz", a=array)
    with pytest.raises(CheckpointError, match=re.escape(f"'a' has dtype {array.dtype}")):
        serialization.load(tmp_path / "foreign.npz")


def test_a_fifo_is_refused_without_hanging(tmp_path):
    fifo = tmp_path / "model.npz"
    os.mkfifo(fifo)
    with pytest.raises(CheckpointError, match="not a regular file"):
        serialization.load(fifo)
    with pytest.raises(CheckpointError, match="not a regular file"):
        serialization.load_metadata(fifo)


def _bomb(path, megabytes: int) -> None:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        with archive.open("w.npy", "w", force_zip64=True) as entry:
            np.lib.format.write_array_header_1_0(entry, {"descr": "<f4", "fortran_order": False,
                                                         "shape": (megabytes * 2**18,)})
            zeros = bytes(2**20)
            for _ in range(megabytes):
                entry.write(zeros)


def test_a_zip_bomb_is_refused_by_its_declared_size(tmp_path):
    path = tmp_path / "bomb.npz"
    _bomb(path, 65)  # 65 MiB of zeros in about 65 KB; the same holds for 1 GiB in 1 MB
    assert path.stat().st_size < 200_000
    with pytest.raises(CheckpointError, match="declares 68,157,[0-9]{3} bytes .* more than the 67,108,864 allowed"):
        serialization.load(path)
    small = tmp_path / "small.npz"
    _bomb(small, 2)
    with pytest.raises(CheckpointError, match="max_bytes"):
        serialization.load(small, max_bytes=2**20)
    assert serialization.load(small)["w"].shape == (2 * 2**18,)


def test_an_array_header_larger_than_its_member_is_refused(tmp_path):
    path = tmp_path / "liar.npz"
    with zipfile.ZipFile(path, "w") as archive:
        with archive.open("w.npy", "w") as entry:
            np.lib.format.write_array_header_1_0(entry, {"descr": "<f8", "fortran_order": False, "shape": (2**40,)})
    with pytest.raises(CheckpointError, match="declares shape"):
        serialization.load(path)
