"""``notebook_launcher`` as a notebook cell calls it: ``train`` in 2 processes from one.

``python notebook_launch_child.py PORT TRAIN_ARGS...`` runs accelerate's
``notebook_launcher(train, num_processes=2, use_port=PORT)``, where ``train`` is
``python -m emo_utils train TRAIN_ARGS`` in-process (the function a notebook passes).
Started by ``tests/test_distributed.py`` with no GPU visible (``gloo`` on CPU).
"""

from __future__ import annotations

import sys

from accelerate import notebook_launcher

from emo_utils.cli import main


def train(*args: str) -> None:
    """The notebook's training function: one process of the launch."""
    code = main(list(args))
    if code:
        raise SystemExit(code)


if __name__ == "__main__":
    notebook_launcher(train, args=tuple(sys.argv[2:]), num_processes=2, use_port=sys.argv[1])
