"""Whether a person watches the output: progress bars there, plain lines elsewhere."""

from __future__ import annotations

import sys

__all__ = ["interactive"]


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
