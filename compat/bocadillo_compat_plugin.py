"""pytest plugin: Starlette's and FastAPI's own tests with ``bocadillo_ws.WebSocket``.

Loaded with ``-p bocadillo_compat_plugin`` by ``compat/run.py``, before any
conftest or test module is imported. It

- checks that the backend is the one the run asked for (``COMPAT_BACKEND``),
- imports every submodule of starlette and fastapi, then rebinds every
  module-level name that refers to Starlette's ``WebSocket`` class to ours
  (found at run time, not from a list), and fails the run if one is left;
- checks on a real route that Starlette and FastAPI hand our class over;
- keeps only the WebSocket tests (module or test named after websockets), and
  marks the excused ones (``COMPAT_EXCUSES``, from run.py) strict xfail, so a
  failure there reads "xfailed" and a pass fails the run;
- writes each test's outcome to ``COMPAT_REPORT`` (JSON) for run.py.
"""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest
import starlette.websockets

import bocadillo_ws

try:  # FastAPI's tests are run only where it is installed (it is in the test extra)
    import fastapi
except ImportError:  # pragma: no cover
    fastapi = None  # type: ignore[assignment]

ORIGINAL = starlette.websockets.WebSocket


def _with_default_value_type(value_type: str) -> type[Any]:
    """Our class with another default ``value_type``: the check that the excused
    tests fail only because ``receive()``/``send()`` are typed by default."""

    class WebSocket(bocadillo_ws.WebSocket):
        def __init__(self, scope: Any, receive: Any, send: Any, **options: Any) -> None:
            options.setdefault("value_type", value_type)
            super().__init__(scope, receive, send, **options)

    WebSocket.__module__ = __name__
    return WebSocket


OURS: type[Any] = (
    _with_default_value_type(os.environ["COMPAT_VALUE_TYPE"])
    if os.environ.get("COMPAT_VALUE_TYPE")
    else bocadillo_ws.WebSocket
)
FRAMEWORKS = ("starlette", "fastapi")
_PACKAGE = "bocadillo_ws"


def _import_everything(package_name: str) -> None:
    """Import every submodule, so none binds the original class after we patch."""
    try:
        package = importlib.import_module(package_name)
    except ImportError:
        return
    for info in pkgutil.walk_packages(package.__path__, package_name + "."):
        if info.name.endswith((".__main__", ".cli")):
            continue  # command-line entry points: nothing to patch, and they print
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # deprecated modules warn on import
                importlib.import_module(info.name)
        except Exception:  # an optional dependency is missing: nothing to patch there
            continue


def _framework_modules() -> list[Any]:
    return [
        module for name, module in list(sys.modules.items()) if module is not None and name.split(".")[0] in FRAMEWORKS
    ]


def substitute() -> list[str]:
    """Rebind every module-level reference to Starlette's class; return the names rebound."""
    rebound = []
    for module in _framework_modules():
        for attribute, value in list(vars(module).items()):
            if value is ORIGINAL:
                setattr(module, attribute, OURS)
                rebound.append(f"{module.__name__}.{attribute}")
    return rebound


def leftovers() -> list[str]:
    """Module-level names anywhere (frameworks, their tests) still bound to the original class."""
    return [
        f"{name}.{attribute}"
        for name, module in list(sys.modules.items())
        if module is not None and name.split(".")[0] != _PACKAGE and name != __name__
        for attribute, value in list(vars(module).items())
        if value is ORIGINAL
    ]


_report: dict[str, Any] = {"outcomes": {}}


def pytest_configure(config: pytest.Config) -> None:
    expected = os.environ.get("COMPAT_BACKEND")
    if expected and bocadillo_ws.BACKEND != expected:
        raise pytest.UsageError(f"run for backend {expected!r}, but bocadillo_ws.BACKEND={bocadillo_ws.BACKEND!r}")
    for framework in FRAMEWORKS:
        _import_everything(framework)
    rebound = substitute()
    if "starlette.websockets.WebSocket" not in rebound or "starlette.routing.WebSocket" not in rebound:
        raise pytest.UsageError(f"substitution incomplete: rebound only {rebound}")
    _report["backend"] = bocadillo_ws.BACKEND
    _report["value_type"] = os.environ.get("COMPAT_VALUE_TYPE") or "default"
    _report["rebound"] = sorted(rebound)
    _report["versions"] = {name: sys.modules[name].__version__ for name in FRAMEWORKS if name in sys.modules}


def _served_class() -> dict[str, str]:
    """The class a Starlette route and a FastAPI route are actually given."""
    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute
    from starlette.testclient import TestClient

    seen: dict[str, str] = {}

    def name(websocket: Any) -> str:
        return f"{type(websocket).__module__}.{type(websocket).__qualname__}"

    async def starlette_endpoint(websocket: Any) -> None:
        seen["starlette"] = name(websocket)
        await websocket.accept()
        await websocket.send_text("ok")
        await websocket.close()

    apps: list[tuple[str, Any]] = [("starlette", Starlette(routes=[WebSocketRoute("/ws", starlette_endpoint)]))]
    if fastapi is not None:
        app = fastapi.FastAPI()

        @app.websocket("/ws")
        async def fastapi_endpoint(websocket: fastapi.WebSocket) -> None:
            seen["fastapi"] = name(websocket)
            await websocket.accept()
            await websocket.send_text("ok")
            await websocket.close()

        apps.append(("fastapi", app))
    for framework, application in apps:
        try:
            with TestClient(application) as client, client.websocket_connect("/ws") as websocket:
                if websocket.receive_text() != "ok":
                    seen[framework] = "(wrong message)"
        except Exception as exc:
            seen[framework] = f"{seen.get(framework)} (connection failed: {exc!r})"
        seen.setdefault(framework, "(endpoint not called)")
    return seen


def _excuses() -> dict[str, str]:
    """Node id (or one without its [parameters]) -> reason, for this framework."""
    path = os.environ.get("COMPAT_EXCUSES")
    return json.loads(Path(path).read_text()) if path else {}


def _excuse(nodeid: str, excuses: dict[str, str]) -> str | None:
    for node, reason in excuses.items():
        if nodeid == node or nodeid.startswith(node + "["):
            return reason
    return None


_excused: set[str] = set()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    excuses = _excuses()
    kept: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        module_name = item.path.name.lower()
        in_ws_module = "websocket" in module_name or module_name.startswith("test_ws_")
        test_part = item.nodeid.split("::", 1)[-1].lower()
        (kept if in_ws_module or "websocket" in test_part else dropped).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
    items[:] = kept
    for item in kept:
        reason = _excuse(item.nodeid, excuses)
        if reason is not None:
            item.add_marker(pytest.mark.xfail(reason=f"excused: {reason}", strict=True))
            _excused.add(item.nodeid)


def pytest_collection_finish(session: pytest.Session) -> None:
    # Test modules are imported now: any of them that bound the class before
    # the patch (none should) would show here, as would a lazily imported
    # framework module; patch those too, then insist nothing is left.
    substitute()
    left = leftovers()
    served = _served_class()
    ours = f"{OURS.__module__}.{OURS.__qualname__}"
    _report["served"] = served
    _report["leftovers"] = left
    if left or any(value != ours for value in served.values()):
        raise pytest.UsageError(f"substitution failed: left bound to Starlette's class: {left}; served: {served}")


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    outcomes: dict[str, str] = _report["outcomes"]
    previous = outcomes.get(report.nodeid)
    excused = report.nodeid in _excused
    if report.failed:
        passed_anyway = excused and str(report.longrepr).startswith("[XPASS(strict)]")
        outcomes[report.nodeid] = "excused but passed" if passed_anyway else "failed"
    elif report.skipped and previous is None:
        if hasattr(report, "wasxfail"):
            outcomes[report.nodeid] = "excused" if excused else "xfailed"
        else:
            outcomes[report.nodeid] = "skipped"
    elif report.when == "call" and report.passed and previous is None:
        outcomes[report.nodeid] = "xpassed" if hasattr(report, "wasxfail") else "passed"


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if report.failed:
        _report["outcomes"][report.nodeid or "<collection>"] = "collection error"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    path = os.environ.get("COMPAT_REPORT")
    if path:
        Path(path).write_text(json.dumps(_report, indent=1, sort_keys=True))
