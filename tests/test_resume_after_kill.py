"""Nothing computed is lost: a chapter run killed with SIGKILL mid-way reuses every finished batch.

``ifhelpers run predictions`` (tiny local models, smoke sizes) is killed, kernel and all, once some
batches of forward passes are on disk. Each batch is slowed down in the kernel (a ``sitecustomize``
on its ``PYTHONPATH``) so that the kill lands while passes are still being computed. The re-run must
leave every part file written before the kill untouched (reused, counted), compute only the rest,
and give the same headlines as an uninterrupted run in a fresh cache. Then half the part files are cut
short (as a full disk or a crash of the machine leaves them): the same command says so for each, computes
them again and gives the same headlines.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from conftest import save_tiny_family, smoke_settings

SLOW_WRITES = """
import time
from ifhelpers.model import cache
_write = cache.ActivationStore.write
def _slow_write(self, keys, arrays):
    time.sleep(0.3)
    return _write(self, keys, arrays)
cache.ActivationStore.write = _slow_write
"""
VOLATILE = ["elapsed_s", "executed_at", "cache", "cpus"]


def command(models: str, name: str) -> list[str]:
    return [sys.executable, "-m", "ifhelpers.cli", "run", "predictions", "--models", models,
            *smoke_settings("02_predictions"), "--name", name]


def parts(cache: Path) -> dict[Path, float]:
    return {p: p.stat().st_mtime_ns for p in (cache / "activations").rglob("part-*.npz")}


def headlines(run: Path) -> pd.DataFrame:
    return pd.read_csv(run / "headlines_02_predictions.csv").drop(columns=VOLATILE)


def test_a_killed_run_resumes_from_its_finished_batches_and_a_damaged_cache_is_computed_again(tmp_path):
    base = save_tiny_family(tmp_path / "tiny-base", "llama")
    tuned = save_tiny_family(tmp_path / "tiny-it", "qwen2", tuned=True, seed=1)
    models = f"base={base},ift={tuned}"
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(SLOW_WRITES)
    cache = tmp_path / "cache"
    env = {**os.environ, "IFHELPERS_CACHE": str(cache), "IFHELPERS_BATCH_TOKENS": "64",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(hooks), os.environ.get("PYTHONPATH")]))}
    run = subprocess.Popen(command(models, "killed"), cwd=tmp_path, env=env, start_new_session=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 300
    while len(parts(cache)) < 4 and run.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    os.killpg(run.pid, signal.SIGKILL)  # papermill and its kernel
    run.wait()
    before = parts(cache)
    assert run.returncode == -signal.SIGKILL and len(before) >= 4, run.stderr.read().decode()[-2000:]

    env["PYTHONPATH"] = os.environ.get("PYTHONPATH", "")  # the same code, without the slowing hook
    subprocess.run(command(models, "resumed"), cwd=tmp_path, env=env, check=True, capture_output=True)
    after = parts(cache)
    assert all(after.get(p) == mtime for p, mtime in before.items())  # every finished batch reused, not rewritten
    assert len(after) > len(before)  # the kill was mid-way: the re-run computed the rest
    subprocess.run(command(models, "uninterrupted"), cwd=tmp_path, check=True, capture_output=True,
                   env={**env, "IFHELPERS_CACHE": str(tmp_path / "fresh-cache")})
    pd.testing.assert_frame_equal(headlines(tmp_path / "runs" / "resumed"), headlines(tmp_path / "runs" / "uninterrupted"))
    print(f"reused {len(before)} of {len(after)} batches")
    # a full disk or a crash of the machine cuts part files short: the same command computes them again
    damaged = sorted(after)[::2]
    for part in damaged:
        part.write_bytes(part.read_bytes()[: part.stat().st_size // 2])
    subprocess.run(command(models, "repaired"), cwd=tmp_path, env=env, check=True, capture_output=True)
    pd.testing.assert_frame_equal(headlines(tmp_path / "runs" / "repaired"), headlines(tmp_path / "runs" / "uninterrupted"))
    executed = (tmp_path / "runs" / "repaired" / "02_predictions.ipynb").read_text()
    assert executed.count("does not read back whole") == len(damaged) and all(str(p) in executed for p in damaged)
