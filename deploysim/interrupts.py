"""Which stop signal (Ctrl-C's SIGINT, SIGTERM) a command received, whoever handled it.

Dagster and the event loop install their own handlers while they run, so the CLI cannot rely on its
own. `watch()` points the interpreter's wakeup file descriptor at a pipe: every signal writes its
number there, whatever Python handler runs, and `received()` reads it back.
"""

from __future__ import annotations

import os
import signal
import threading

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_state: dict = {"signum": None, "fd": None, "w": None}


def watch() -> None:
    """Start noting stop signals (main thread only; later calls do nothing)."""
    if _state["fd"] is not None or threading.current_thread() is not threading.main_thread():
        return
    r, w = os.pipe()
    os.set_blocking(r, False)
    os.set_blocking(w, False)
    signal.set_wakeup_fd(w, warn_on_full_buffer=False)
    _state["fd"], _state["w"] = r, w


def rewatch() -> None:
    """Point the wakeup descriptor back at our pipe (an event loop may have reset it)."""
    if _state["w"] is not None and threading.current_thread() is threading.main_thread():
        signal.set_wakeup_fd(_state["w"], warn_on_full_buffer=False)


def note(signum: int) -> None:
    _state["signum"] = signum


def received() -> int | None:
    """The last stop signal received since watch() (or noted), else None."""
    fd = _state["fd"]
    if fd is not None:
        try:
            data = os.read(fd, 512)
        except BlockingIOError:
            data = b""
        for b in data:
            if b in STOP_SIGNALS:
                _state["signum"] = b
    return _state["signum"]


def reset() -> None:
    received()
    _state["signum"] = None
