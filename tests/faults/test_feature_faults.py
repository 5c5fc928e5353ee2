"""kill -9 of a real `audioml features` while it extracts: the rerun completes, nothing lost.

The first process is SIGKILLed once it has flushed at least one pack of results and is still
extracting; its worker processes must go with it. The rerun of the same command must reuse
every flushed pack, extract only the rest, and the cache must hold exactly the features a
fresh extraction gives.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from features import build_table, decode_audio, extract_signal
from features._atomic import TEMP_PREFIX
from features.build import FLUSH_EVERY
from runner.config.loading import load_spec
from runner.data.sources import load_source
from tests.runner._audio_fixtures import make_folder_dataset

REPO = Path(__file__).resolve().parents[2]
N_PER_CLASS = FLUSH_EVERY * 3 // 2  # two classes: three packs' worth of clips
SPEC = """\
name: feature-faults
task: classification
data: {{source: folder, root: {root}}}
features:
  sample_rate: 8000
  extractors: [rms, zcr]
  stats: [mean, std]
  cache_dir: {cache}
  n_jobs: 1
"""


def children_of(pid: int) -> list[int]:
    found = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            if f"PPid:\t{pid}\n" in Path(f"/proc/{entry}/status").read_text():
                found.append(int(entry))
        except OSError:
            continue
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0]
    except OSError:
        return False
    return state != "Z"


def features_cmd(spec: Path) -> list[str]:
    return [sys.executable, "-m", "runner", "features", str(spec), "-q"]


@pytest.mark.slow
def test_sigkill_during_extraction_then_rerun(tmp_path: Path) -> None:
    root = make_folder_dataset(tmp_path / "corpus", ["lo", "hi"], N_PER_CLASS, 8000, 0.5)
    cache = tmp_path / "cache"
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC.format(root=root, cache=cache))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    # Packs in place, not a writer's temporary file (pathlib's glob matches dotfiles): the
    # kill must come after a pack is complete and visible, as the assertions below assume.
    packs = lambda: sorted(  # noqa: E731
        p for p in cache.glob("v1/*/packs/*.parquet") if not p.name.startswith(TEMP_PREFIX)
    )

    proc = subprocess.Popen(features_cmd(spec), env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)  # fmt: skip
    deadline = time.monotonic() + 240
    while not packs() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    workers = children_of(proc.pid)
    assert proc.poll() is None, "extraction ended before the kill: " + proc.stdout.read().decode()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    proc.stdout.close()
    kept = packs()
    assert len(kept) >= 1 and len(kept) < 3
    assert workers, "no worker process was running"
    deadline = time.monotonic() + 15
    while any(alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(alive(w) for w in workers), "a feature worker outlived its killed parent"
    flushed = sum(pq.read_metadata(p).num_rows for p in kept)
    assert flushed >= FLUSH_EVERY

    rerun = subprocess.run(features_cmd(spec), env=env, cwd=tmp_path, capture_output=True,
                           text=True, timeout=300)  # fmt: skip
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "Traceback" not in rerun.stderr
    numbers = dict(re.findall(r"(\w+)=(\d+)", rerun.stdout))
    total = 2 * N_PER_CLASS
    assert numbers["rows"] == str(total) and numbers["skipped"] == "0", rerun.stdout
    assert int(numbers["cache_hits"]) >= flushed  # the killed run's packs were reused
    assert int(numbers["extracted"]) == total - int(numbers["cache_hits"])

    # The cache is valid: every pack reads, and a third build is all hits with true values.
    for pack in packs():
        pq.read_table(pack)
    loaded = load_spec(spec, [])
    clips = load_source(loaded, base=tmp_path).clips
    table = build_table(clips, loaded.features, loaded.segments, cache_dir=cache, progress=False)
    assert table.stats["cache_hits"] == total and table.stats["extracted"] == 0
    for i in (0, FLUSH_EVERY - 1, FLUSH_EVERY, total - 1):  # flushed, then rerun clips
        clip = clips.iloc[i]
        y = decode_audio(clip["path"], 8000)
        want = extract_signal(y, 8000, loaded.features, loaded.segments)[0].to_numpy()[0]
        got = table.frame.loc[table.frame["clip_id"] == clip["clip_id"], table.feature_columns]
        np.testing.assert_allclose(got.to_numpy()[0], want, rtol=1e-12)
