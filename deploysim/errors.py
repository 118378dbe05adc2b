"""The library's exceptions: one root, a few kinds, messages that say what to do.

Every error a user can meet derives from DeploysimError; the CLI prints its message as one line and
exits 2 (a traceback only with --verbose). The kinds also derive from the matching built-in, so
callers that catch ValueError or KeyError keep working.
"""

from __future__ import annotations


class DeploysimError(Exception):
    """The root of deploysim's errors."""


class ConfigError(DeploysimError, ValueError):
    """A setting or a candidate's configuration cannot be used (say which and how to fix it)."""


class InputError(DeploysimError, ValueError):
    """Input data (logs, labels, a taxonomy) cannot be read or used."""


class NotFound(DeploysimError, KeyError):
    """A named thing (a candidate, a behaviour) is not registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class MissingKey(ConfigError):
    """An API key's environment variable is not set (the message names the variable, never a value)."""


class Unavailable(DeploysimError, RuntimeError):
    """Something the run needs is not there or not usable: an endpoint, a model, the data directory."""
