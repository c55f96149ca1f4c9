"""How a FastAPI connection gets its ``bocadillo_ws.WebSocket``: at request time.

- ``Recipe``: a bocadillo class with its options. It builds the object once
  per connection (``from_starlette`` on FastAPI's own object) and gives that
  one to every parameter asking for the same recipe, through an ``Annotated``
  alias (``Recipe.provide``, a dependency) or through ``install``.
- ``register``: ``install(app)``'s conversion. FastAPI gives a parameter
  annotated with any Starlette ``WebSocket`` subclass its own object
  (``Dependant.websocket_param_name``); on a connection served by an
  installed app, a parameter annotated with a bocadillo class gets the
  recipe's object instead.

Where the conversion hooks in, and why there. FastAPI has no public hook
between routing and the call of a route's dependencies. Converting the
routes (as this module once did) misses what FastAPI builds later: 0.165
builds the routes of an included router lazily, on a request, from the
original router, and a dependency override gets a dependant built afresh on
every request. ``app.dependency_overrides`` is read on a request, but only
for dependencies (never the endpoint's own parameters) and only when
non-empty. An ASGI middleware runs before routing, so it cannot know the
route. The one point every dependant passes through on a request, whoever
built it, is ``fastapi.dependencies.utils.solve_dependencies``: called by
that name from ``fastapi.routing`` for the route, and recursively for each
dependency and override. ``register`` wraps it, once per process, under
both names. The wrapper changes nothing FastAPI built and runs FastAPI's own
call unchanged; after it, it replaces one value, and only when the
connection's app (``scope["app"]``, which Starlette sets to the app serving
it) called ``install`` and the dependant's WebSocket parameter is annotated
with a bocadillo class. Other apps in the process behave exactly as before;
they pay one extra function call per dependant solved
(``benchmarks/bench_fastapi_install.py`` measures it).
"""

from __future__ import annotations

import functools
import inspect
import typing
import weakref
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import fastapi.dependencies.utils
import fastapi.routing
from fastapi import FastAPI
from fastapi.dependencies.utils import get_typed_signature
from starlette.websockets import WebSocket as StarletteWebSocket

from . import _websocket

# Where a connection keeps the objects built for it (ASGI scope keys are namespaced).
_BUILT_KEY = "bocadillo_ws.fastapi.websockets"

Provider = Callable[[StarletteWebSocket], Awaitable[_websocket.WebSocketAPI]]


class Recipe:
    """A bocadillo class and its options: one object per connection."""

    __slots__ = ("options", "provide", "websocket_class")

    def __init__(self, websocket_class: type[_websocket.WebSocketAPI], options: dict[str, Any]) -> None:
        websocket_class._check_options(options)
        self.websocket_class = websocket_class
        self.options = options
        build = self.build

        async def provide_websocket(websocket: StarletteWebSocket) -> _websocket.WebSocketAPI:
            return build(websocket)

        provide_websocket.__qualname__ = f"provide_{websocket_class.__name__}"
        self.provide: Provider = provide_websocket  # the dependency FastAPI calls

    def build(self, websocket: StarletteWebSocket) -> _websocket.WebSocketAPI:
        """This connection's object for this recipe, made on first use."""
        built: dict[Recipe, _websocket.WebSocketAPI] = websocket.scope.setdefault(_BUILT_KEY, {})
        try:
            return built[self]
        except KeyError:
            made = built[self] = self.websocket_class.from_starlette(websocket, **self.options)
            return made


# One recipe per (class, options), so that an alias and ``install`` asking for the
# same thing share one object per connection (options that cannot be hashed,
# such as a codec object, get a recipe of their own).
_recipes: dict[tuple[type[_websocket.WebSocketAPI], tuple[tuple[str, Any], ...]], Recipe] = {}


def recipe(websocket_class: type[_websocket.WebSocketAPI], options: dict[str, Any]) -> Recipe:
    key = (websocket_class, tuple(sorted(options.items(), key=lambda item: item[0])))
    try:
        return _recipes[key]
    except KeyError:
        made = _recipes[key] = Recipe(websocket_class, dict(options))
        return made
    except TypeError:  # an unhashable option
        return Recipe(websocket_class, dict(options))


class Installation:
    """``install(app, **options)``: the recipe for each bocadillo class the app's routes ask for."""

    __slots__ = ("_recipes", "options")

    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        self._recipes: dict[type[_websocket.WebSocketAPI], Recipe] = {}

    def recipe_for(self, websocket_class: type[_websocket.WebSocketAPI]) -> Recipe:
        try:
            return self._recipes[websocket_class]
        except KeyError:
            made = self._recipes[websocket_class] = recipe(websocket_class, self.options)
            return made


# By id(app), for a lookup as cheap as a dict's on every connection; an entry
# leaves with its app (weakref.finalize), before the id can be reused.
_installations: dict[int, Installation] = {}


def installation(app: FastAPI) -> Installation | None:
    return _installations.get(id(app))


def register(app: FastAPI, options: dict[str, Any]) -> None:
    """Convert for ``app`` from now on (the caller checked it is not installed yet)."""
    made = Installation(options)
    _wrap_solve_dependencies()
    _installations[id(app)] = made
    weakref.finalize(app, _installations.pop, id(app), None)


# ---------------------------------------------------------------- the request-time hook

_SOLVE = "solve_dependencies"
_WRAPPED = "_bocadillo_ws_converts"


def _wrap_solve_dependencies() -> None:
    # Both names FastAPI calls it by: fastapi.routing's (the route's dependant)
    # and its own module's (the recursion: dependencies, overrides).
    for module in (fastapi.dependencies.utils, fastapi.routing):
        solve = getattr(module, _SOLVE, None)
        if solve is None:
            raise RuntimeError(
                f"bocadillo_ws.fastapi.install does not support this FastAPI ({fastapi.__version__}): "
                f"{module.__name__}.{_SOLVE} is gone"
            )
        if not getattr(solve, _WRAPPED, False):
            setattr(module, _SOLVE, _converting(solve))


def _converting(solve: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(solve)
    async def solve_dependencies(*args: Any, **kwargs: Any) -> Any:
        solved = await solve(*args, **kwargs)
        dependant: Any = kwargs.get("dependant")
        name = getattr(dependant, "websocket_param_name", None)
        if name is None:  # every HTTP dependant, and most of a WebSocket route's
            return solved
        installed = _installation_for(kwargs.get("request"))
        if installed is None:
            return solved
        wanted = _requested_class(dependant.call, name)
        if wanted is None:  # Starlette's or FastAPI's own WebSocket: left alone
            return solved
        values = _values_of(solved)
        given = values.get(name)  # FastAPI's own object, when it gave one
        if isinstance(given, StarletteWebSocket) and not isinstance(given, _websocket.WebSocketAPI):
            values[name] = installed.recipe_for(wanted).build(given)
        return solved

    setattr(solve_dependencies, _WRAPPED, True)
    return solve_dependencies


def _installation_for(request: Any) -> Installation | None:
    try:
        app = request.scope["app"]
    except (AttributeError, KeyError, TypeError):  # not a connection an app serves
        return None
    return _installations.get(id(app))


def _values_of(solved: Any) -> dict[str, Any]:
    # Newer FastAPI returns a SolvedDependency; 0.111 returns a tuple led by the values.
    values = getattr(solved, "values", None)
    if isinstance(values, dict):
        return values
    if isinstance(solved, tuple) and solved and isinstance(solved[0], dict):
        return solved[0]
    raise RuntimeError(
        f"bocadillo_ws.fastapi.install does not support this FastAPI ({fastapi.__version__}): "
        f"solve_dependencies() returned a {type(solved).__name__}"
    )


class _CallIdentity:
    """A dependency's callable as a cache key: by identity (callable instances may not hash)."""

    __slots__ = ("call",)

    def __init__(self, call: Callable[..., Any]) -> None:
        self.call = call

    def __hash__(self) -> int:
        return id(self.call)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _CallIdentity) and other.call is self.call


def _requested_class(call: Callable[..., Any] | None, name: str) -> type[_websocket.WebSocketAPI] | None:
    if call is None:
        return None
    return _requested_class_cached(_CallIdentity(call), name)


# Bounded: overrides made afresh per test would otherwise pile up.
@functools.lru_cache(maxsize=1024)
def _requested_class_cached(call: _CallIdentity, name: str) -> type[_websocket.WebSocketAPI] | None:
    # The annotation as FastAPI itself read it (string annotations resolved the same way).
    try:
        parameter = get_typed_signature(call.call).parameters.get(name)
    except Exception:  # FastAPI read this signature already; a failure here means "not ours"
        return None
    if parameter is None:
        return None
    annotation = parameter.annotation
    if type(annotation).__name__ == "TypeAliasType":  # `type Alias = ...` (PEP 695)
        annotation = annotation.__value__
    if typing.get_origin(annotation) is Annotated:
        annotation = typing.get_args(annotation)[0]
    if inspect.isclass(annotation) and issubclass(annotation, _websocket.WebSocketAPI):
        return annotation
    return None
