"""A full disk: one clear :class:`~emo_utils.errors.DiskFullError`, nothing partial, resume.

Two ways to run out of room without root:

* a real full file system: a small tmpfs mounted in a private mount namespace
  (``unshare -rm``, unprivileged user namespaces; skipped where the system forbids them).
  Writes fail with ``ENOSPC`` as on a full disk, and a memory-mapped write past the end of
  the space is a bus error, which is how assembling ``frames.npy`` used to end;
* the file size limit ``ulimit -f`` (``RLIMIT_FSIZE``, any POSIX system): a write past it
  fails with ``EFBIG``, which the package treats like ``ENOSPC``.  This reaches every kind
  of write (reports, CSVs, ``torch.save``, ``np.save``) in one process, and a whole
  ``train`` command whose checkpoint does not fit.

Nothing is monkeypatched: the errors come from the kernel.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from emo_utils.config import Config
from emo_utils.data.competition import load_competition
from emo_utils.datasets import make_demo_dataset
from emo_utils.features import build_cache

resource = pytest.importorskip("resource")

TESTS = Path(__file__).parent
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}


@pytest.fixture(scope="module")
def demo_data(tmp_path_factory) -> Path:
    return make_demo_dataset(
        tmp_path_factory.mktemp("disk_full") / "data", n_train=40, n_test=6, progress=False
    )


def _can_mount_tmpfs(tmp_path: Path) -> bool:
    if shutil.which("unshare") is None or not sys.platform.startswith("linux"):
        return False
    probe = subprocess.run(
        ["unshare", "-rm", "sh", "-c", 'mount -t tmpfs -o size=64k none "$0"', str(tmp_path)],
        capture_output=True,
    )
    return probe.returncode == 0


def test_a_full_file_system_stops_the_cache_cleanly_and_the_rerun_resumes(demo_data, tmp_path):
    """ENOSPC on a chunk, then on ``frames.npy`` (no bus error), then resume after freeing."""
    mount = tmp_path / "small_disk"
    mount.mkdir()
    if not _can_mount_tmpfs(mount):
        pytest.skip("no unprivileged mount namespace here (unshare -rm) for a small tmpfs")
    sys.path.insert(0, str(TESTS))
    try:
        from full_disk_child import CHUNK, CONFIG
    finally:
        sys.path.remove(str(TESTS))
    comp = load_competition(demo_data, CONFIG.data)
    ref = build_cache(comp, "train", config=CONFIG, cache_dir=tmp_path / "reference", n_jobs=1,
                      progress=False, chunk_size=CHUNK)  # fmt: skip
    frames = ref.directory / "frames.npy"
    sha = hashlib.sha256(frames.read_bytes()).hexdigest()
    script = 'mount -t tmpfs -o size=4m none "$0" && exec "$@"'
    child = [sys.executable, str(TESTS / "full_disk_child.py"), str(demo_data), str(mount), sha,
             str(frames.stat().st_size)]  # fmt: skip
    proc = subprocess.run(
        ["unshare", "-rm", "sh", "-c", script, str(mount), *child],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]  # 135 was the bus error
    steps = json.loads(proc.stdout.strip().splitlines()[-1])

    chunk = steps["one_chunk"]
    assert "/chunks/chunk-" in chunk["path"]
    assert chunk["path"].endswith(".npz")
    assert "no space left on device (needs " in chunk["error"]
    assert chunk["needed"] > chunk["free"]
    assert (chunk["temp_files"], chunk["final_files"], chunk["chunks"]) == ([], [], 1)

    assembly = steps["no_room_for_frames"]
    assert assembly["path"].endswith("/train/frames.npy")
    assert assembly["needed"] == frames.stat().st_size  # the space it needs, exactly
    assert assembly["free"] < assembly["needed"]
    assert f"{assembly['path']}: cannot be written, no space left on device" in assembly["error"]
    assert "rerun the same command" in assembly["error"]
    assert (assembly["temp_files"], assembly["final_files"]) == ([], [])
    assert assembly["chunks"] == -(-len(comp.train) // CHUNK)  # every chunk kept

    freed = steps["space_freed"]
    assert freed["stats"] == {"clips": len(comp.train), "computed": 0, "reused": len(comp.train)}
    assert freed["temp_files"] == []
    assert freed["chunks"] == 0
    assert steps["same_frames"]


WRITES = r"""
import json, os, sys
import numpy as np, pandas as pd, torch, resource
from emo_utils.errors import DiskFullError
from emo_utils.fileio import atomic_path, write_csv, write_json, write_text

folder = sys.argv[1]
LIMIT = 64 * 1024
resource.setrlimit(resource.RLIMIT_FSIZE, (LIMIT, resource.RLIM_INFINITY))
big = "x" * (4 * LIMIT)

def checkpoint(path):
    with atomic_path(path) as tmp:
        torch.save({"w": torch.zeros(4 * LIMIT)}, tmp)

def array(path):
    with atomic_path(path) as tmp:
        np.save(tmp, np.zeros(4 * LIMIT))

def reserved(path):
    with atomic_path(path, size=4 * LIMIT) as tmp:
        raise AssertionError("the space must be refused before the write")

writes = {
    "report.md": lambda p: write_text(p, big),
    "report.json": lambda p: write_json(p, {"x": big}),
    "submission.csv": lambda p: write_csv(p, pd.DataFrame({"filename": [big], "label": ["a"]})),
    "checkpoint.pth": checkpoint,
    "frames.npy": array,
    "reserved.bin": reserved,
}
out = {}
for name, write in writes.items():
    path = os.path.join(folder, name)
    with open(path, "w") as fh:
        fh.write("old")
    try:
        write(path)
    except DiskFullError as exc:
        out[name] = {"type": "DiskFullError", "path": exc.path, "needed": exc.needed,
                     "free": exc.free, "message": str(exc)}
    except BaseException as exc:
        out[name] = {"type": type(exc).__name__, "message": str(exc)}
    with open(path) as fh:
        out[name]["content"] = fh.read()
out["files"] = sorted(os.listdir(folder))
print(json.dumps(out))
"""


def test_every_kind_of_write_past_the_file_size_limit_is_one_clear_error(tmp_path):
    proc = subprocess.run([sys.executable, "-c", WRITES, str(tmp_path)], capture_output=True,
                          text=True, env=ENV, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    names = ["report.md", "report.json", "submission.csv", "checkpoint.pth", "frames.npy",
             "reserved.bin"]  # fmt: skip
    assert out.pop("files") == sorted(names)  # no temporary file left
    for name in names:
        got = out[name]
        assert got["type"] == "DiskFullError", (name, got)
        assert got["path"] == str(tmp_path / name)
        assert got["message"].startswith(f"{tmp_path / name}: cannot be written, file too large")
        assert "the file size limit (`ulimit -f`) is 65536 bytes" in got["message"]
        assert got["content"] == "old", name  # the destination is untouched
    assert out["reserved.bin"]["needed"] == 4 * 64 * 1024
    assert "needs 256.0 KiB" in out["reserved.bin"]["message"]


def _limit_file_size(limit: int):
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))


def test_a_checkpoint_past_the_limit_stops_training_with_one_error_and_the_rerun_resumes(
    demo_data, tmp_path
):
    config = Config().override(
        {
            "audio.duration": 2.0, "audio.max_duration": 2.0, "features.n_mels": 32,
            "train.architectures": ["test_resnet"], "train.pretrained": False,
            "train.n_folds": 2, "train.epochs": 1, "train.batch_size": 16,
        }
    )  # fmt: skip
    config.save(tmp_path / "config.json")
    run, cache = tmp_path / "run", tmp_path / "cache"
    args = [sys.executable, "-m", "emo_utils", "train", "--data", str(demo_data), "--run", str(run),
            "--cache", str(cache), "--config", str(tmp_path / "config.json"), "--jobs", "1"]  # fmt: skip
    # The cache (under 1 MiB per file) fits; the weights of test_resnet (1.5 MB) do not.
    limited = subprocess.run(args, capture_output=True, text=True, env=ENV, timeout=600,
                             preexec_fn=_limit_file_size(1 << 20))  # fmt: skip
    assert limited.returncode == 2, limited.stderr[-3000:]
    errors = [line for line in limited.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, limited.stderr[-3000:]
    assert re.search(r"error: \S+/fold0/(model|checkpoint)\.pth: cannot be written, file too large",
                     errors[0])  # fmt: skip
    assert "Traceback" not in limited.stderr
    assert list(run.rglob(".tmp-*")) == []
    assert list(cache.rglob(".tmp-*")) == []
    assert not list(run.rglob("done.json"))
    (frames,) = cache.rglob("frames.npy")  # the cache was finished before training
    built = frames.stat().st_mtime_ns
    done = subprocess.run(args, capture_output=True, text=True, env=ENV, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(list(run.rglob("done.json"))) == 2
    assert frames.stat().st_mtime_ns == built  # reused, not rebuilt
