"""docs/contract.md §7: which backend is live, how it is chosen, how it is built."""

from __future__ import annotations

import inspect
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
from starlette.websockets import WebSocket as StarletteWebSocket

import bocadillo_ws
from bocadillo_ws._env import ENV_VAR, extensions_disabled, free_threaded

ROOT = Path(__file__).resolve().parent.parent


def run_python(code: str, **env: str) -> str:
    """``python -I -c code`` in a clean environment (no BOCADILLO_WS_* from the caller)."""
    environ = {k: v for k, v in os.environ.items() if k != ENV_VAR}
    environ.update(env)
    # -I: the source tree (cwd) must not shadow the installed, compiled package.
    result = subprocess.run(
        [sys.executable, "-I", "-c", code], env=environ, capture_output=True, text=True, timeout=60, check=True
    )
    return result.stdout.strip()


CHECK = "import bocadillo_ws as b; print(b.BACKEND, b._backend.WebSocketCore.__module__)"


@pytest.mark.c_extension
def test_compiled_backend_is_preferred_by_default() -> None:
    assert run_python(CHECK) == "cython bocadillo_ws._codec"


@pytest.mark.c_extension
def test_live_backend_in_this_process_is_compiled() -> None:
    assert bocadillo_ws.BACKEND == "cython"
    core = bocadillo_ws._backend.WebSocketCore
    assert core.__module__ == "bocadillo_ws._codec"
    # The compiled design: C coroutine methods (_awaitable.h) standing for
    # _codec_methods' coroutine functions, right over the C core; receives
    # are the Python coroutines themselves on 3.12+ (see _C_RECEIVES).
    (c_core,) = core.__bases__
    assert type(c_core).__module__ == "builtins" and c_core.__module__ == "bocadillo_ws._codec"
    c_methods = ["send_text", "send_bytes", "send_json", "send_event", "send"]
    if sys.version_info < (3, 12):
        c_methods += ["receive_text", "receive_bytes", "receive_json", "receive_event", "receive"]
    for name in c_methods:
        method = core.__dict__[name]
        assert type(method).__name__ == "CoroutineMethod", name
        assert inspect.unwrap(method).__module__ == "bocadillo_ws._codec_methods"
        call = method(bocadillo_ws.WebSocket.__new__(bocadillo_ws.WebSocket), *([0] * name.startswith("send")))
        assert type(call).__name__ == "MethodAwaitable"
        call.close()  # never started: no warning
    for name in ("receive_text", "send_text"):
        method = getattr(bocadillo_ws.WebSocket, name)
        assert method is core.__dict__[name] and method.__module__ == "bocadillo_ws._codec_methods"
        assert inspect.iscoroutinefunction(method)
    assert bocadillo_ws.WebSocket.mro().index(core) < bocadillo_ws.WebSocket.mro().index(StarletteWebSocket)


@pytest.mark.parametrize("value", ["1", "yes", "true", "Y", " on "])
def test_env_var_forces_pure_python(value: str) -> None:
    assert run_python(CHECK, **{ENV_VAR: value}) == "python bocadillo_ws._codec_py"


@pytest.mark.c_extension
@pytest.mark.parametrize("value", ["0", "", "false", "no", "off"])
def test_env_var_falsy_values_keep_the_extension(value: str) -> None:
    assert run_python(CHECK, **{ENV_VAR: value}) == "cython bocadillo_ws._codec"


def test_non_cpython_gets_pure_python() -> None:
    code = "import sys; sys.implementation.name = 'pypy'; " + CHECK
    assert run_python(code) == "python bocadillo_ws._codec_py"


# Makes this process look like a free-threaded CPython build to sysconfig.
FAKE_FREE_THREADED = (
    "import sysconfig; _get = sysconfig.get_config_var; "
    "sysconfig.get_config_var = lambda name: 1 if name == 'Py_GIL_DISABLED' else _get(name)\n"
)


def test_free_threaded_cpython_gets_pure_python() -> None:
    # Faked here; `tox -e freethreaded` runs the same on a real python3.13t.
    code = FAKE_FREE_THREADED + CHECK + "; import bocadillo_ws._backend as be; print(be.PURE_REASON)"
    backend, reason = run_python(code).splitlines()
    assert backend == "python bocadillo_ws._codec_py"
    assert reason.startswith("this CPython is free-threaded (Py_GIL_DISABLED)")


@pytest.mark.c_extension
def test_gil_build_has_no_pure_reason() -> None:
    code = "import sysconfig, bocadillo_ws._backend as be; print(sysconfig.get_config_var('Py_GIL_DISABLED'), be.PURE_REASON)"
    assert run_python(code) in ("0 None", "None None")


def test_env_parsing_is_one_function() -> None:
    assert extensions_disabled({ENV_VAR: "1"}) and not extensions_disabled({})
    # setup.py reads the variable through the same file.
    assert "_env.py" in (ROOT / "setup.py").read_text()


def test_twins_are_imported_only_by_the_selector() -> None:
    for path in (ROOT / "bocadillo_ws").glob("*.py"):
        if path.name != "_backend.py":
            source = path.read_text()
            assert "import _codec" not in source and "from ._codec" not in source, path.name


# --------------------------------------------------------------------------- the twins agree


def _public_api(module: Any) -> dict[str, Any]:
    api: dict[str, Any] = {"make_json_codec": module.make_json_codec}
    for cls_name in ("WebSocketCore", "JSONCodec", "UJSONCodec", "StdlibJSONCodec", "OrjsonCodec", "CustomJSONCodec"):
        cls = getattr(module, cls_name)
        api[cls_name] = cls
        # Over the MRO: on 3.12+ the compiled WebSocketCore is the C core plus
        # a Python subclass with the message methods.
        members: dict[str, Any] = {}
        for klass in reversed(cls.__mro__[:-1]):
            members.update(vars(klass))
        for name, value in members.items():
            if name.startswith("__") and name not in ("__aiter__", "__anext__"):
                continue
            # Special methods are C slots in the extension: compare presence only.
            api[f"{cls_name}.{name}"] = "special method" if name.startswith("__") else value
    return api


def _shape(obj: Any, annotated: bool = True) -> Any:
    if isinstance(obj, property) or type(obj).__name__ == "getset_descriptor":
        return "attribute"
    if isinstance(obj, type):
        return "class"
    if isinstance(obj, str):
        return obj
    try:
        signature = inspect.signature(obj)
    except (TypeError, ValueError):
        return "attribute"  # member descriptors (C fields / __slots__)
    if not annotated:
        return [(p.name, p.kind, p.default) for p in signature.parameters.values()]
    # Annotations and coroutine-ness too: IDEs, type checkers and frameworks read them.
    parameters = [(p.name, p.kind, p.default, p.annotation) for p in signature.parameters.values()]
    return parameters, signature.return_annotation, inspect.iscoroutinefunction(obj)


@pytest.mark.c_extension
def test_twins_have_the_same_public_api_and_signatures(both_impls: list[Any]) -> None:
    compiled, pure = (_public_api(impl.module) for impl in both_impls)
    # Names: every public name of one exists in the other.
    public = lambda api: {k for k in api if not k.split(".")[-1].startswith("_") or k.endswith("__")}  # noqa: E731
    assert public(compiled) == public(pure)
    for name in sorted(public(pure)):
        # The connection's methods in full; the codecs' (internal, cpdef in C) by parameters.
        annotated = name.startswith("WebSocketCore.")
        assert _shape(compiled[name], annotated) == _shape(pure[name], annotated), name


@pytest.mark.c_extension
def test_public_websocket_methods_have_the_same_signatures(both_impls: list[Any]) -> None:
    compiled, pure = (impl.WebSocket for impl in both_impls)
    names = [n for n in dir(pure) if not n.startswith("_") and callable(getattr(pure, n))]
    assert "receive_json" in names and "send" in names and "accept" in names
    for name in names:
        assert _shape(getattr(compiled, name)) == _shape(getattr(pure, name)), name
    assert inspect.signature(compiled.__init__) == inspect.signature(pure.__init__)


# --------------------------------------------------------------------------- the build


def _copy_source(tmp_path: Path) -> Path:
    source = tmp_path / "src"
    source.mkdir()
    for name in ("setup.py", "pyproject.toml", "README.md", "MANIFEST.in"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "bocadillo_ws", source / "bocadillo_ws", ignore=shutil.ignore_patterns("*.so", "*.c"))
    return source


def _build(source: Path, *pip_args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != ENV_VAR}
    environ.update(env)
    command = [sys.executable, "-m", "pip", "wheel", *pip_args, "--no-deps", "--no-build-isolation", "-w", "dist", "."]
    return subprocess.run(command, cwd=source, env=environ, capture_output=True, text=True, timeout=300)


@pytest.mark.slow  # builds a wheel: once, not on every Python
def test_pure_build_is_explicit_and_makes_a_pure_wheel(tmp_path: Path) -> None:
    source = _copy_source(tmp_path)
    result = _build(source, **{ENV_VAR: "1"})
    assert result.returncode == 0, result.stderr
    (wheel,) = (source / "dist").glob("*.whl")
    assert wheel.name.endswith("-py3-none-any.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "bocadillo_ws/_codec_py.py" in names and "bocadillo_ws/py.typed" in names
    assert not [n for n in names if n.endswith((".so", ".pyd", ".c", ".pyx"))]


@pytest.mark.slow  # builds a wheel: once, not on every Python
@pytest.mark.skipif(free_threaded(), reason="free-threaded CPython builds pure, compiles nothing (tested below)")
def test_build_that_cannot_compile_fails_loudly(tmp_path: Path) -> None:
    source = _copy_source(tmp_path)
    result = _build(source, CC="false", LDSHARED="false", CFLAGS="")
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "could not compile its Cython extension" in output
    assert f"{ENV_VAR}=1" in output
    assert not list(source.glob("dist/*.whl"))


@pytest.mark.slow  # builds a wheel: once, not on every Python
def test_free_threaded_build_is_pure_and_says_why(tmp_path: Path) -> None:
    # setup.py run (by pip's build hook, in a subprocess) as if on a free-threaded
    # CPython: a sitecustomize fakes sysconfig there. The real build on a real
    # python3.13t is `tox -e freethreaded`.
    fake = tmp_path / "fake"
    fake.mkdir()
    (fake / "sitecustomize.py").write_text(FAKE_FREE_THREADED)
    source = _copy_source(tmp_path)
    result = _build(source, "-v", PYTHONPATH=str(fake))
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    assert "* Pure Python build" in output and "Accelerated build" not in output
    assert "because this CPython is free-threaded (Py_GIL_DISABLED)" in output
    (wheel,) = (source / "dist").glob("*.whl")
    assert wheel.name.endswith("-py3-none-any.whl")
    assert not [n for n in zipfile.ZipFile(wheel).namelist() if n.endswith((".so", ".pyd"))]
