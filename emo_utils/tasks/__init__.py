"""The task registry: single-label classification, multi-label tagging, verification.

SED and verification plug in here too (see :mod:`emo_utils.tasks._registry`).

May import: ``config``, ``errors``, ``metrics``, ``data``.  Never fastai at import time.
"""

from . import (
    classification,  # noqa: F401  (registers "classification")
    multilabel,  # noqa: F401  (registers "multilabel")
    verification,  # noqa: F401  (registers "verification")
)
from ._registry import TASKS, Task, get_task, register_task

__all__ = ["TASKS", "Task", "get_task", "register_task"]
