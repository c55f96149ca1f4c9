"""Build script: compiles ``bocadillo_ws/_codec.pyx``, or nothing when asked not to.

Everything but the extension lives in ``pyproject.toml``. The build either
compiles the extension or fails; it makes a pure-Python package only when
``BOCADILLO_WS_NO_EXTENSIONS=1`` says so, on a non-CPython interpreter, or on
a free-threaded CPython (3.13t, 3.14t: the compiled module needs the GIL), and
its banner names which of these it was.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = Path(__file__).parent


def _load_env_module():
    # The package's own reading of the variable, without importing the package
    # (which needs starlette, absent from the build environment).
    spec = importlib.util.spec_from_file_location("_bocadillo_ws_env", HERE / "bocadillo_ws" / "_env.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_env = _load_env_module()
PURE_REASON = _env.pure_reason(os.environ)

OPT_OUT = (
    f"bocadillo_ws could not compile its Cython extension. Install a C compiler and the "
    f"Python headers, or build the pure-Python package explicitly with {_env.ENV_VAR}=1."
)


class LoudBuildExt(build_ext):
    """build_ext that names the opt-out when compiling fails, then fails anyway."""

    def run(self) -> None:
        try:
            super().run()
        except Exception:
            print(f"\n*** {OPT_OUT}\n", file=sys.stderr)
            raise

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception:
            print(f"\n*** {OPT_OUT}\n", file=sys.stderr)
            raise


def _extensions() -> list[Extension]:
    try:
        from Cython.Build import cythonize
    except ImportError as exc:  # pragma: no cover - build-system requires Cython
        raise SystemExit(f"Cython is needed to build bocadillo_ws. {OPT_OUT}") from exc
    return cythonize(
        [Extension("bocadillo_ws._codec", ["bocadillo_ws/_codec.pyx"], depends=["bocadillo_ws/_awaitable.h"])],
        compiler_directives={
            "language_level": 3,
            "embedsignature": True,
            "binding": True,
            "boundscheck": False,
            "wraparound": False,
        },
    )


def _banner(*lines: str) -> str:
    width = max(map(len, lines))
    rule = "*" * (width + 4)
    return "\n".join([rule, *(f"* {line:<{width}} *" for line in lines), rule])


if PURE_REASON is not None:
    # tools/release_check.py and the tests look for "* Pure Python build" and the reason.
    print(_banner("Pure Python build", f"because {PURE_REASON}"), file=sys.stderr)
    setup()
else:
    print("**********************\n* Accelerated build *\n**********************", file=sys.stderr)
    setup(ext_modules=_extensions(), cmdclass={"build_ext": LoudBuildExt})
