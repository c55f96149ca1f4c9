"""Test facade over both backends (the multidict/propcache pattern).

Every test that takes ``impl`` or ``WebSocket`` runs once per backend: ids
``c`` and ``py``. The ``c`` leg is marked ``c_extension`` and fails (it does
not skip) when the extension is missing, unless ``--no-c-extensions`` says
the run is pure on purpose (the tox ``pure`` envs).
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from functools import cached_property
from types import ModuleType
from typing import Any

import pytest
from hypothesis import settings
from starlette.websockets import WebSocket as StarletteWebSocket

import bocadillo_ws
from bocadillo_ws._websocket import WebSocketAPI

# HYPOTHESIS_PROFILE picks one: "dev" (default, quick), "ci" (tox), "long".
# dev: a quick local run; ci: every hypothesis test in every tox env;
# differential: the twins compared on 10,000 examples per test (tox envs
# "differential-py311/-py313"); long: 1,000,000 per test, for a soak of the twins.
settings.register_profile("dev", max_examples=200)
settings.register_profile("ci", max_examples=1_000)
settings.register_profile("differential", max_examples=10_000)
settings.register_profile("long", max_examples=1_000_000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--c-extensions",
        action="store_true",
        default=True,
        help="run the compiled-backend legs too (default)",
    )
    parser.addoption(
        "--no-c-extensions",
        action="store_false",
        dest="c_extensions",
        help="deselect the compiled-backend legs (pure-Python runs)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("c_extensions"):
        return
    kept = [item for item in items if item.get_closest_marker("c_extension") is None]
    deselected = [item for item in items if item.get_closest_marker("c_extension") is not None]
    config.hook.pytest_deselected(items=deselected)
    items[:] = kept


@dataclass(frozen=True)
class Implementation:
    """One backend: its module and a public ``WebSocket`` class built on it."""

    tag: str  # "c" or "py"

    @property
    def module_name(self) -> str:
        return "bocadillo_ws._codec" if self.tag == "c" else "bocadillo_ws._codec_py"

    @cached_property
    def module(self) -> ModuleType:
        return importlib.import_module(self.module_name)

    @cached_property
    def WebSocket(self) -> type[Any]:
        if self.module.WebSocketCore is bocadillo_ws._backend.WebSocketCore:
            return bocadillo_ws.WebSocket
        # The other backend: the same public class, on this backend's core.
        return type("WebSocket", (WebSocketAPI, self.module.WebSocketCore, StarletteWebSocket), {"__module__": __name__})

    def __str__(self) -> str:
        return self.tag


IMPLEMENTATIONS = [
    pytest.param(Implementation("c"), id="c", marks=pytest.mark.c_extension),
    pytest.param(Implementation("py"), id="py"),
]


@pytest.fixture(scope="session", params=IMPLEMENTATIONS)
def impl(request: pytest.FixtureRequest) -> Implementation:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def WebSocket(impl: Implementation) -> type[Any]:
    return impl.WebSocket


@pytest.fixture(scope="session")
def both_impls(pytestconfig: pytest.Config) -> list[Implementation]:
    """Both backends at once, for differential tests (the compiled one must exist)."""
    return [Implementation("c"), Implementation("py")]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
