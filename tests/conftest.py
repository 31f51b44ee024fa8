"""Shared fixtures: the optional oracles (PyTorch, graphviz's `dot`) and hypothesis profiles.

Users without torch or dot see skips whose reason is the command that installs the missing tool; each
reason is one fixed string raised from one line, so pytest's -ra summary shows one line per missing tool.
CI sets TGC_REQUIRE_ORACLES=1, under which a missing oracle is a failure, so the oracle, rendering and
packaging tests can never be skipped silently.
"""

import importlib
import importlib.metadata
import os
import re
import shutil

import pytest
from hypothesis import settings

REQUIRE_ORACLES = os.environ.get("TGC_REQUIRE_ORACLES") == "1"

NO_TORCH = ("PyTorch (the oracle) is not installed: pip install torch==2.13.0 "
            "(the CPU wheel; any other version may pull a multi-GB CUDA build)")
NO_DOT = "graphviz's `dot` is not on PATH: apt install graphviz / brew install graphviz"
NO_SETUPTOOLS = "setuptools>=77 (the build backend) is not installed: pip install 'setuptools>=77'"

settings.register_profile("ci", max_examples=40, derandomize=True, deadline=None, print_blob=True)
settings.register_profile("dev", max_examples=40, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") or REQUIRE_ORACLES else "dev")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A skip for a missing tool is reported at this file rather than at each test, so pytest's summary folds
    them all into one line per tool: "SKIPPED [N] tests/conftest.py: PyTorch … is not installed: pip install …"."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and isinstance(report.longrepr, tuple) and len(report.longrepr) == 3:
        reason = report.longrepr[2]
        if reason.removeprefix("Skipped: ") in (NO_TORCH, NO_DOT, NO_SETUPTOOLS):
            report.longrepr = (__file__, None, reason)


def _missing(reason: str) -> None:
    if REQUIRE_ORACLES:
        pytest.fail(f"{reason} (TGC_REQUIRE_ORACLES=1: oracle tests must run, not skip)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def torch():
    """The PyTorch oracle, in float64."""
    try:
        module = importlib.import_module("torch")
    except ImportError:
        _missing(NO_TORCH)
    module.set_default_dtype(module.float64)
    return module


@pytest.fixture(scope="session")
def dot() -> str:
    """Path of graphviz's `dot` executable."""
    path = shutil.which("dot")
    if path is None:
        _missing(NO_DOT)
    return path


@pytest.fixture(scope="session")
def build_backend() -> str:
    """setuptools' version, when it is new enough (77) to build this project's sdist and wheel."""
    try:
        version = importlib.metadata.version("setuptools")
    except importlib.metadata.PackageNotFoundError:
        _missing(NO_SETUPTOOLS)
    major = re.match(r"\d+", version)
    if major is None or int(major.group()) < 77:
        _missing(NO_SETUPTOOLS)
    return version
