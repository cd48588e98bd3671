"""Two processes that need the same cache item make it once (filelock), and the second reads it.

Each case starts two real Python processes that wait for each other at a barrier, so that both ask
for the item before either has made it; the work inside is slowed down so that they overlap.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

TESTS = Path(__file__).resolve().parent

PRELUDE = """
import os, sys, time
from pathlib import Path
sys.path.insert(0, {tests!r})
work = Path({work!r})
def barrier():
    (work / f"ready-{{os.getpid()}}").touch()
    while len(list(work.glob("ready-*"))) < 2:
        time.sleep(0.01)
"""


def run_twice(tmp_path: Path, body: str) -> list[str]:
    """Run ``body`` in two processes at once (same cache); their stdout."""
    script = tmp_path / "worker.py"
    script.write_text(PRELUDE.format(tests=str(TESTS), work=str(tmp_path)) + textwrap.dedent(body))
    env = {**os.environ, "IFHELPERS_CACHE": str(tmp_path / "cache")}
    procs = [subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
    return [out for out, _ in outs]


def test_cache_lock_makes_an_item_once_and_the_other_process_waits(tmp_path):
    outs = run_twice(tmp_path, """
        from ifhelpers.data.sources import cache_lock
        target = work / "item.txt"
        barrier()
        with cache_lock(target, "the item"):
            if not target.exists():
                time.sleep(1.0)
                with open(work / "made.log", "a") as log:
                    log.write(f"{os.getpid()}\\n")
                target.write_text("done")
        print("read", target.read_text())
    """)
    assert len((tmp_path / "made.log").read_text().split()) == 1
    assert all("read done" in out for out in outs)
    assert sum("Another process is making the item; waiting" in out for out in outs) == 1


def test_two_processes_compute_the_same_forward_passes_once(tmp_path):
    outs = run_twice(tmp_path, """
        import numpy as np
        from conftest import make_tiny_llama, make_tiny_tokenizer
        from ifhelpers.model import cache, engine
        from ifhelpers.model.models import wrap
        lm = wrap(make_tiny_llama(), make_tiny_tokenizer(), "tiny-llama")
        slow = engine._run_plan
        def slowed(*args, **kwargs):  # the first process is still computing when the second asks
            time.sleep(1.5)
            return slow(*args, **kwargs)
        engine._run_plan = slowed
        texts = [f"the capital of france is paris {'a ' * i}" for i in range(24)]
        barrier()
        out = engine.run(lm, texts, engine.Request(resid=True), cache=True, max_batch_size=4)
        print("parts", cache.PARTS_WRITTEN, "sum", float(np.asarray(out["resid"]).sum()))
    """)
    found = [re.search(r"parts (\d+) sum (\S+)", out).groups() for out in outs]
    written = [int(parts) for parts, _ in found]
    sums = {total for _, total in found}
    assert sum("Another process is making forward passes" in out for out in outs) == 1
    assert sorted(written)[0] == 0 and sorted(written)[1] > 0, written  # one process computed, the other read
    assert len(sums) == 1  # and both got the same passes
    parts = list((tmp_path / "cache" / "activations").rglob("part-*.npz"))
    assert len(parts) == max(written)


def test_two_processes_that_need_one_tuned_model_train_it_once(tmp_path):
    outs = run_twice(tmp_path, """
        from ifhelpers.model.tuned import Recipe, folders
        from ifhelpers.train import tuning
        def fake_training(recipe, pool, work_dir, target, progress, data_dir):  # the real one takes minutes
            time.sleep(1.0)
            with open(work / "trained.log", "a") as log:
                log.write(f"{os.getpid()}\\n")
            import torch
            from safetensors.torch import save_file
            target.mkdir(parents=True)  # a whole stored adapter: a damaged one is trained again
            save_file({"lora": torch.zeros(2)}, str(target / "adapter_model.safetensors"))
            for name in ("adapter_config.json", "ifhelpers_provenance.json"):
                (target / name).write_text("{}")
            (target / "chat_template.jinja").write_text("")
            return target
        tuning._train_and_store = fake_training
        recipe = Recipe(name="tiny-ift", base="gemma-3-270m", mixture="templates-1", n_examples=10)
        barrier()
        print("stored", tuning.train(recipe, progress=False) == folders(recipe)[1])
    """)
    assert len((tmp_path / "trained.log").read_text().split()) == 1
    assert all("stored True" in out for out in outs)
