"""Chooses the compiled or the pure-Python backend, once, at import time.

Nothing else in the package imports ``_codec`` or ``_codec_py`` directly.
Pure when ``_env.pure_reason`` gives a reason: the opt-out variable, a
non-CPython interpreter, or a free-threaded CPython.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Literal

from ._env import pure_reason

PURE_REASON = pure_reason(os.environ)
NO_EXTENSIONS = PURE_REASON is not None

BACKEND: Literal["cython", "python"]
if TYPE_CHECKING or NO_EXTENSIONS:
    from ._codec_py import JSONCodec, WebSocketCore, fan_out, make_json_codec

    BACKEND = "python"
else:
    try:
        from ._codec import JSONCodec, WebSocketCore, fan_out, make_json_codec
    except ImportError:  # pragma: no cover - a source tree that was never built
        # The build never installs a pure package silently (setup.py fails
        # instead); this only happens when importing from an unbuilt
        # checkout. BACKEND says so, and the cython test envs fail on it.
        from ._codec_py import JSONCodec, WebSocketCore, fan_out, make_json_codec

        BACKEND = "python"
    else:
        BACKEND = "cython"

__all__ = ["BACKEND", "NO_EXTENSIONS", "PURE_REASON", "JSONCodec", "WebSocketCore", "fan_out", "make_json_codec"]
