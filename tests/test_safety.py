"""Safety of long runs on real data: file permissions, blown-up training, plain logs.

Files written atomically get the permissions a plain ``open`` would give (umask-aware); a
NaN/inf training loss stops the fold with a :class:`~emo_utils.errors.TrainingError` and
leaves it not done; a model at or below the majority-class baseline is warned about; where
stdout is not a terminal, training prints one plain line per epoch and no bar redraws.
"""

from __future__ import annotations

import os
import stat

import pytest
import torch

from emo_utils.fileio import atomic_path, write_json, write_text


@pytest.fixture
def umask():
    """Set the process umask for one test; restore it afterwards."""
    old = os.umask(0o022)
    os.umask(old)
    yield lambda mask: os.umask(mask)
    os.umask(old)


@pytest.mark.parametrize(
    ("mask", "file_mode", "dir_mode"), [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700)]
)
def test_written_files_and_folders_respect_the_umask(tmp_path, umask, mask, file_mode, dir_mode):
    umask(mask)
    write_text(tmp_path / "sub" / "a.txt", "x")
    write_json(tmp_path / "b.json", {"a": 1})
    with atomic_path(tmp_path / "c.pth") as tmp:
        torch.save({"a": 1}, tmp)
    for name in ("sub/a.txt", "b.json", "c.pth"):
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == file_mode, name
    assert stat.S_IMODE(os.stat(tmp_path / "sub").st_mode) == dir_mode
    assert not list(tmp_path.glob("**/.tmp-*"))
