"""The one decision "compiled or pure", for the build and for the import.

Both the runtime selector (``_backend.py``) and ``setup.py`` load this file, so
``BOCADILLO_WS_NO_EXTENSIONS``, a non-CPython interpreter and a free-threaded
CPython mean the same thing when building and when importing.
"""

from __future__ import annotations

import sys
import sysconfig
from collections.abc import Mapping

ENV_VAR = "BOCADILLO_WS_NO_EXTENSIONS"

# "0"/"false"/"no"/"off" mean "extensions wanted", like an unset variable: a
# user who writes BOCADILLO_WS_NO_EXTENSIONS=0 expects the compiled path.
_FALSY = frozenset({"", "0", "false", "no", "off"})


def extensions_disabled(environ: Mapping[str, str]) -> bool:
    """Whether the pure-Python backend was asked for explicitly."""
    return environ.get(ENV_VAR, "").strip().lower() not in _FALSY


def free_threaded() -> bool:
    """Whether this is a free-threaded CPython build (3.13t, 3.14t, ...).

    The compiled module keeps module state (caches, globals) that is only safe
    under the GIL, and CPython would re-enable the GIL for the whole process on
    importing it, so such a build gets the pure twin instead.
    """
    return bool(sysconfig.get_config_var("Py_GIL_DISABLED"))


def pure_reason(environ: Mapping[str, str]) -> str | None:
    """Why this interpreter gets the pure-Python backend, or None for the compiled one."""
    if extensions_disabled(environ):
        return f"{ENV_VAR}={environ[ENV_VAR].strip()} asks for it"
    if sys.implementation.name != "cpython":
        return f"{sys.implementation.name} is not CPython"
    if free_threaded():
        return (
            "this CPython is free-threaded (Py_GIL_DISABLED): the compiled module's state "
            "needs the GIL, so the pure-Python twin serves this build"
        )
    return None
