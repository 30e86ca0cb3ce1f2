"""llama.cpp's native log: routed to Python logging, and collected while a :class:`LlamaLogCapture` is open.

llama.cpp has one log callback per process (``llama_log_set``). llama-cpp-python's own decodes each piece as
UTF-8 and raises inside the ctypes callback when llama.cpp splits a character across two calls; ours replaces the
partial bytes instead and logs at DEBUG on the ``llama_cpp.native`` logger.
"""

from __future__ import annotations

import ctypes
import functools
import logging
from typing import Self

native_log = logging.getLogger("llama_cpp.native")


def _log_callback(collected: list[str] | None):
    """A ctypes log callback that logs each piece (and appends it to ``collected`` when given)."""
    import llama_cpp

    @llama_cpp.llama_log_callback
    def callback(level, text, user_data):
        decoded = text.decode("utf-8", errors="replace")
        if collected is not None:
            collected.append(decoded)
        native_log.debug(decoded.rstrip("\n"))

    return callback


@functools.cache
def _routing_callback():
    # Made once and kept by the cache for the life of the process: ctypes keeps no reference to a callback it
    # hands to C, and llama.cpp calling a collected one crashes.
    return _log_callback(None)


def route_llama_logs() -> None:
    """Send llama.cpp's native log lines to Python logging (DEBUG), decoded leniently."""
    import llama_cpp

    llama_cpp.llama_log_set(_routing_callback(), ctypes.c_void_p(0))


class LlamaLogCapture:
    """Collects llama.cpp's log text while the ``with`` block runs; the lines still reach Python logging.

    Entering installs this capture's own callback (kept on the object while llama.cpp may call it), leaving puts
    the plain routing back; captures do not nest.
    """

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._callback = None

    def __enter__(self) -> Self:
        import llama_cpp

        self._callback = _log_callback(self.lines)
        llama_cpp.llama_log_set(self._callback, ctypes.c_void_p(0))
        return self

    def __exit__(self, *exc_info) -> None:
        route_llama_logs()
        self._callback = None

    @property
    def text(self) -> str:
        return "".join(self.lines)
