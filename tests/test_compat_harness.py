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
    # The plugin marks excused tests strict xfail: a failure there is "excused".
    outcomes = {"test_a": "passed", "test_b[asyncio]": "excused", "test_b[trio]": "excused", "test_c": "xfailed"}
    line, problems = run.judge("starlette", "cython", report(outcomes), [])
    assert "2 passed, 2 excused, 0 failed" in line
    assert problems == []


def test_an_excused_test_that_passes_fails_the_run(run: ModuleType) -> None:
    outcomes = {"test_b[asyncio]": "excused", "test_b[trio]": "excused but passed"}
    _, problems = run.judge("starlette", "python", report(outcomes), [])
    assert problems == [
        "starlette/python: excused but passes (remove it from excused.txt): tests/test_websockets.py::test_b[trio]"
    ]


def test_collection_errors_and_xpasses_fail_the_run(run: ModuleType) -> None:
    outcomes = {"test_a": "collection error", "test_b": "xpassed"}
    _, problems = run.judge("starlette", "cython", report(outcomes), [])
    assert len(problems) == 2


def test_no_test_run_fails(run: ModuleType) -> None:
    _, problems = run.judge("starlette", "cython", report({}), [])
    assert problems == ["starlette/cython: no test ran"]


def test_the_plugin_matches_excuses_by_node_id_or_its_parametrisations() -> None:
    spec = importlib.util.spec_from_file_location(
        "compat_plugin_excuse", ROOT / "compat" / "bocadillo_compat_plugin.py"
    )
    assert spec is not None and spec.loader is not None
    plugin = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plugin)
    excuses = {"tests/t.py::test_b": "typed receive()"}
    assert plugin._excuse("tests/t.py::test_b[trio]", excuses) == "typed receive()"
    assert plugin._excuse("tests/t.py::test_b", excuses) == "typed receive()"
    assert plugin._excuse("tests/t.py::test_bc", excuses) is None
    assert plugin._excuse("tests/t.py::test_a", excuses) is None
