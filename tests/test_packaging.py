"""Packaging: the sdist carries everything its own test suite needs, the wheel built from that sdist carries the
package with its data (digits.npz, py.typed) and the licence, and the metadata says MIT by SPDX expression.

Both are built with setuptools' PEP 517 backend in a subprocess, from a copy of the project (so the checkout
gets no build/ or egg-info), the wheel from the unpacked sdist as `python -m build` does: about a second.
"""

import email
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NOT_SOURCE = shutil.ignore_patterns(".venv*", ".git", "runs", "build", "dist", "*.egg-info", "__pycache__",
                                    ".pytest_cache", ".ruff_cache", ".hypothesis", "*.gv")
BUILD = "import sys; from setuptools import build_meta; print(getattr(build_meta, sys.argv[1])(sys.argv[2]))"


def _build(kind: str, source: Path, out: Path) -> Path:
    done = subprocess.run([sys.executable, "-c", BUILD, kind, str(out)], cwd=source, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, f"{kind} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return out / done.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def dists(build_backend, tmp_path_factory):
    """(sdist path, wheel path): the sdist from a copy of the project, the wheel from the unpacked sdist."""
    work = tmp_path_factory.mktemp("packaging")
    source = work / "source"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCE)
    sdist = _build("build_sdist", source, work / "dist")
    with tarfile.open(sdist) as archive:
        safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}  # Python ≥ 3.10.12 / 3.11.4
        archive.extractall(work / "unpacked", **safe)
    (unpacked,) = (work / "unpacked").iterdir()
    wheel = _build("build_wheel", unpacked, work / "dist")
    return sdist, wheel


def sdist_files(sdist: Path) -> set[str]:
    with tarfile.open(sdist) as archive:
        return {member.name.split("/", 1)[1] for member in archive.getmembers() if member.isfile()}


def test_the_sdist_holds_the_tests_and_everything_they_read(dists):
    files = sdist_files(dists[0])
    for name in ["LICENSE", "NOTICE", "README.md", "pyproject.toml", "MANIFEST.in", "tests/conftest.py",
                 "tinygrad_conv/digits.npz", "tinygrad_conv/py.typed"]:
        assert name in files, name
    for folder in ["tests", "docs", "demos", "benchmarks", "scripts", "tinygrad_conv"]:
        expected = {path.relative_to(ROOT).as_posix() for path in (ROOT / folder).rglob("*")
                    if path.is_file() and "__pycache__" not in path.parts and path.suffix not in (".pyc", ".gv")}
        assert expected and expected <= files, f"{folder}/ files missing from the sdist: {sorted(expected - files)}"
    assert not [name for name in files if "__pycache__" in name or name.endswith(".pyc") or name.startswith(".")]


def test_the_wheel_holds_the_package_its_data_and_the_licence(dists):
    with zipfile.ZipFile(dists[1]) as archive:
        names = set(archive.namelist())
        (metadata_name,) = [name for name in names if name.endswith(".dist-info/METADATA")]
        metadata = email.message_from_bytes(archive.read(metadata_name))
        licence = archive.read(metadata_name.replace("METADATA", "licenses/LICENSE")).decode()
    modules = {f"tinygrad_conv/{path.name}" for path in (ROOT / "tinygrad_conv").glob("*.py")}
    assert modules | {"tinygrad_conv/digits.npz", "tinygrad_conv/py.typed"} <= names
    assert not [name for name in names if name.startswith(("tests/", "demos/", "benchmarks/", "scripts/", "docs/"))]
    assert metadata["License-Expression"] == "MIT" and metadata["License-File"] == "LICENSE"
    assert "Copyright (c) 2026 tinygrad_conv contributors" in licence
    assert metadata["Author"] == "tinygrad_conv contributors"
    assert "Typing :: Typed" in metadata.get_all("Classifier")
    assert not [c for c in metadata.get_all("Classifier") if c.startswith("License ::")]  # the SPDX field says it
    requires = metadata.get_all("Requires-Dist")
    assert {r.split(">")[0] for r in requires if "extra ==" not in r} == {"numpy", "graphviz", "tqdm", "matplotlib"}
