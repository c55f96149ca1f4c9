"""compat/run.py's verdict on an upstream run: what fails the suite, what the excused list may hold.

The upstream suites themselves run in the tox envs compat-oldest and
compat-latest; this checks the judging on made-up reports, so a harness that
could never fail would fail here.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def run() -> ModuleType:
    spec = importlib.util.spec_from_file_location("compat_run", ROOT / "compat" / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def report(outcomes: dict[str, str]) -> dict[str, object]:
    """What the plugin writes, for tests of one module."""
    return {
        "backend": "cython",
        "versions": {"starlette": "9.9"},
        "outcomes": {f"tests/test_websockets.py::{name}": outcome for name, outcome in outcomes.items()},
    }


def test_the_excused_list_in_the_repository_parses(run: ModuleType) -> None:
    for excuse in run.read_excused(ROOT / "compat" / "excused.txt"):
        assert excuse.reason.strip()


def test_a_bad_line_is_an_error(run: ModuleType, tmp_path: Path) -> None:
    path = tmp_path / "excused.txt"
    path.write_text("starlette tests/test_x.py::test_y  (no reason)\n")
    with pytest.raises(SystemExit, match="expected 'framework node-id -- reason'"):
        run.read_excused(path)


def test_failures_not_excused_fail_the_run(run: ModuleType) -> None:
    line, problems = run.judge("starlette", "cython", report({"test_a": "passed", "test_b": "failed"}), [])
    assert "1 passed, 0 excused, 1 failed" in line
    assert problems == ["starlette/cython: failed and not excused: tests/test_websockets.py::test_b"]


def test_excused_failures_pass_and_are_counted(run: ModuleType) -> None:
    excuse = run.Excuse("starlette", "tests/test_websockets.py::test_b", "typed receive()")
    line, problems = run.judge(
        "starlette",
        "cython",
        report({"test_a": "passed", "test_b[asyncio]": "failed", "test_b[trio]": "failed"}),
        [excuse],
    )
    assert "1 passed, 2 excused, 0 failed" in line
    assert problems == []


def test_an_excused_test_that_passes_fails_the_run(run: ModuleType) -> None:
    excuse = run.Excuse("starlette", "tests/test_websockets.py::test_b", "typed receive()")
    _, problems = run.judge(
        "starlette", "python", report({"test_b[asyncio]": "failed", "test_b[trio]": "passed"}), [excuse]
    )
    assert problems == [
        "starlette/python: excused but passes (remove it from excused.txt): tests/test_websockets.py::test_b[trio]"
    ]


def test_an_excuse_is_per_framework(run: ModuleType) -> None:
    excuse = run.Excuse("fastapi", "tests/test_websockets.py::test_b", "typed receive()")
    _, problems = run.judge("starlette", "cython", report({"test_b": "failed"}), [excuse])
    assert problems == ["starlette/cython: failed and not excused: tests/test_websockets.py::test_b"]


def test_no_test_run_fails(run: ModuleType) -> None:
    _, problems = run.judge("starlette", "cython", report({}), [])
    assert problems == ["starlette/cython: no test ran"]
