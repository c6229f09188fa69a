"""The task registry: single-label classification and multi-label tagging.

SED and verification plug in here too (see :mod:`emo_utils.tasks._registry`).

May import: ``config``, ``errors``, ``metrics``, ``data``.  Never fastai at import time.
"""

from . import (
    classification,  # noqa: F401  (registers "classification")
    multilabel,  # noqa: F401  (registers "multilabel")
)
from ._registry import TASKS, Task, get_task, register_task

__all__ = ["TASKS", "Task", "get_task", "register_task"]
