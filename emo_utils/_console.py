"""Whether a person watches the output (bars or plain lines), and how much to say.

Two switches decide what the package prints:

* :func:`interactive` -- progress bars where a person watches (a terminal, Jupyter), one
  plain line per epoch, fold and stage elsewhere;
* the verbosity (:func:`set_verbosity`), set by the command line's ``--quiet`` /
  ``--verbose``: ``"quiet"`` turns progress off (the command line passes
  ``progress=False`` to every stage) so only warnings, errors and the final summary are
  left; ``"verbose"`` adds :func:`debug` lines (every cache chunk, locks taken and
  released).  Library calls keep ``"normal"`` unless they set it.
"""

from __future__ import annotations

import sys

__all__ = ["VERBOSITIES", "debug", "interactive", "set_verbosity", "verbosity"]

#: The verbosity levels, least to most output.
VERBOSITIES = ("quiet", "normal", "verbose")

_level = "normal"


def interactive() -> bool:
    """Whether progress bars should be drawn: stdout is a terminal, or we run in Jupyter.

    Where stdout is a file or a pipe (CI, ``nohup``, Kaggle's saved log) bars would be
    stored as thousands of carriage-return redraws; callers print one plain line per
    epoch, fold and stage instead.

    Returns
    -------
    bool
    """
    shell = sys.modules.get("IPython")
    if shell is not None:
        ip = shell.get_ipython() if hasattr(shell, "get_ipython") else None
        if ip is not None and type(ip).__name__ == "ZMQInteractiveShell":
            return True
    isatty = getattr(sys.stdout, "isatty", None)
    return bool(isatty is not None and isatty())


def set_verbosity(level: str) -> str:
    """Set how much the package prints; return the previous level.

    Parameters
    ----------
    level : {"quiet", "normal", "verbose"}

    Returns
    -------
    str
        The level before the call (to restore it).
    """
    global _level
    if level not in VERBOSITIES:
        raise ValueError(f"verbosity must be one of {VERBOSITIES}, got {level!r}")
    previous, _level = _level, level
    return previous


def verbosity() -> str:
    """The current level: ``"quiet"``, ``"normal"`` or ``"verbose"``."""
    return _level


def debug(message: str) -> None:
    """Print ``message`` (to stdout) only at the ``"verbose"`` level."""
    if _level == "verbose":
        print(message, flush=True)
