"""Child process of ``tests/test_disk_full.py``: the feature cache on a full file system.

Run as ``python full_disk_child.py DATA CACHE REFERENCE_SHA`` where ``CACHE`` lies on a small
file system of its own (a tmpfs mounted in a private mount namespace by the test).  A filler
file leaves room for part of the work only:

1. room for one chunk: the second chunk fails with a DiskFullError naming it;
2. room for every chunk but not ``frames.npy``: its assembly fails at once, naming the space
   it needs (it used to be a memory-mapped write, which ended in a bus error);
3. the filler removed: the rerun resumes (every chunk reused) and ``frames.npy`` equals the
   reference cache's.

After each step nothing partial may be left: no temporary file, no ``frames.npy`` or
manifest.  Prints one JSON object with what it saw.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import warnings
from pathlib import Path

from emo_utils.config import Config
from emo_utils.data.competition import load_competition
from emo_utils.errors import DiskFullError
from emo_utils.features import build_cache
from emo_utils.fileio import free_bytes

CONFIG = Config().override(
    {"audio.duration": 2.0, "audio.max_duration": 2.0, "features.n_mels": 32}
)
CHUNK = 16


def _fill(cache: Path, leave: int) -> None:
    """Make ``cache / "filler"`` so that about ``leave`` bytes stay free."""
    filler = cache / "filler"
    filler.unlink(missing_ok=True)
    size = max(0, free_bytes(cache) - leave)
    with open(filler, "wb") as fh:
        fh.write(b"\0" * size)


def _attempt(comp, cache: Path) -> dict:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            store = build_cache(
                comp, "train", config=CONFIG, cache_dir=cache, n_jobs=1, progress=False,
                chunk_size=CHUNK,
            )  # fmt: skip
    except DiskFullError as exc:
        out = {"error": str(exc), "path": exc.path, "needed": exc.needed, "free": exc.free}
    else:
        out = {"stats": {k: v for k, v in store.stats.items() if k != "seconds"}}
    split = cache / CONFIG.feature_hash() / "train"
    out["temp_files"] = [p.name for p in cache.rglob(".tmp-*")]
    out["final_files"] = sorted(
        p.name for p in split.glob("*") if p.name in ("frames.npy", "manifest.json")
    )
    out["chunks"] = len(list(split.glob("chunks/chunk-*.npz")))
    return out


def main() -> None:
    data, cache, reference = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    frames_bytes = int(sys.argv[4])
    comp = load_competition(data, CONFIG.data)
    chunk_bytes = frames_bytes * CHUNK // len(comp.train)
    steps = {}
    _fill(cache, leave=int(1.5 * chunk_bytes))
    steps["one_chunk"] = _attempt(comp, cache)
    _fill(cache, leave=int(0.5 * frames_bytes) + 2 * chunk_bytes)
    steps["no_room_for_frames"] = _attempt(comp, cache)
    (cache / "filler").unlink()
    steps["space_freed"] = _attempt(comp, cache)
    frames = cache / CONFIG.feature_hash() / "train" / "frames.npy"
    steps["same_frames"] = hashlib.sha256(frames.read_bytes()).hexdigest() == reference
    print(json.dumps(steps))
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
