"""Chooses the compiled or the pure-Python backend, once, at import time.

Nothing else in the package imports ``_codec`` or ``_codec_py`` directly.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Literal

from ._env import extensions_disabled

NO_EXTENSIONS = extensions_disabled(os.environ) or sys.implementation.name != "cpython"

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

__all__ = ["BACKEND", "NO_EXTENSIONS", "JSONCodec", "WebSocketCore", "fan_out", "make_json_codec"]
