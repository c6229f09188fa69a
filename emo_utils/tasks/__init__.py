"""The task registry: single-label classification today.

Multi-label tagging, SED and verification plug in here (see :mod:`emo_utils.tasks._registry`).

May import: ``config``, ``errors``, ``metrics``, ``data``.  Never fastai at import time.
"""

from . import classification  # noqa: F401  (registers "classification")
from ._registry import TASKS, Task, get_task, register_task

__all__ = ["TASKS", "Task", "get_task", "register_task"]
