"""The one reading of ``BOCADILLO_WS_NO_EXTENSIONS``.

Both the runtime selector (``_backend.py``) and ``setup.py`` load this file, so
the variable means the same thing when building and when importing.
"""

from __future__ import annotations

from collections.abc import Mapping

ENV_VAR = "BOCADILLO_WS_NO_EXTENSIONS"

# "0"/"false"/"no"/"off" mean "extensions wanted", like an unset variable: a
# user who writes BOCADILLO_WS_NO_EXTENSIONS=0 expects the compiled path.
_FALSY = frozenset({"", "0", "false", "no", "off"})


def extensions_disabled(environ: Mapping[str, str]) -> bool:
    """Whether the pure-Python backend was asked for explicitly."""
    return environ.get(ENV_VAR, "").strip().lower() not in _FALSY
