"""`ifhelpers run` / `sweep` on a tiny chapter written in the test (papermill runs it for real)."""

from __future__ import annotations

import pandas as pd
import pytest

from ifhelpers import cli

CHAPTER = """---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
    format_version: 0.13
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---

# A tiny chapter

```{code-cell} ipython3
:tags: [parameters]
models = ["gemma-3-270m", "smollm2-135m-instruct"]
roles = {}
seed = 0
n_items = 3
results_dir = None
```

```{code-cell} ipython3
import pandas as pd
import ifhelpers as ifh
specs = ifh.model.registry.specs(models, roles)
frame = pd.DataFrame({"model": [s.name for s in specs], "role": [s.role for s in specs], "n_items": n_items})
ifh.results.save_table(frame, "tiny_summary", results_dir)
```
"""


@pytest.fixture
def chapter(tmp_path):
    path = tmp_path / "99_tiny.md"
    path.write_text(CHAPTER)
    return path


def test_parse_models_and_overrides(chapter):
    models, roles = cli.parse_models("base=org/base-model,ift=smollm2-135m-instruct")
    assert models == ["org/base-model", "smollm2-135m-instruct"] and roles == {"org/base-model": "base"}
    assert cli.parse_models("pair=pocket")[0] == ["gemma-3-270m", "smollm2-135m-instruct"]
    valid = cli.notebook_parameters(chapter)
    assert valid["n_items"] == 3
    assert cli.parse_overrides(["n_items=5", "seed=1"], valid) == {"n_items": 5, "seed": 1}
    with pytest.raises(SystemExit, match="Unknown parameter 'n_iterms'.*n_items"):
        cli.parse_overrides(["n_iterms=5"], valid)
    with pytest.raises(SystemExit, match="--models"):
        cli.parse_models("gemma-3-270m")


def test_run_executes_the_chapter_and_writes_tidy_results(chapter, tmp_path):
    out = cli.run_chapter(str(chapter), ["org/base-model", "smollm2-135m-instruct"], {"org/base-model": "base"},
                          {"n_items": 7}, name="mine", runs_dir=tmp_path / "runs", progress=False)
    table = pd.read_csv(out / "tiny_summary.csv")
    assert table.to_dict("list") == {"model": ["org/base-model", "smollm2-135m-instruct"],
                                     "role": ["base", "instruction-tuned"], "n_items": [7, 7]}
    assert (out / "99_tiny.ipynb").exists()


def test_bad_models_fail_before_execution(chapter, tmp_path):
    from ifhelpers.model.registry import UnknownModelError

    with pytest.raises(UnknownModelError, match="Known models"):
        cli.run_chapter(str(chapter), ["no-such-model"], {}, name="bad", runs_dir=tmp_path / "runs")
    assert not (tmp_path / "runs" / "bad").exists()


def test_sweep_through_submitit_debug_executor(chapter, tmp_path):
    outs = cli.sweep([str(chapter)], ["pocket", "smollm2"], executor="debug", runs_dir=tmp_path / "runs")
    assert sorted(o.name for o in outs) == ["pocket", "smollm2"]
    from ifhelpers.results import load_tables

    gathered = load_tables(tmp_path / "runs", "tiny_summary")
    assert set(gathered["run"]) == {"pocket", "smollm2"} and len(gathered) == 4


def test_chapters_ship_in_the_wheel(tmp_path):
    """`pip install .` (not only -e) gets the chapters as package data, where the CLI looks for them."""
    import subprocess
    import sys
    import zipfile

    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(cli.Path(
        cli.__file__).parents[1]), "-w", str(tmp_path)], check=True, capture_output=True, cwd=tmp_path)
    (wheel,) = tmp_path.glob("ifhelpers-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    stems = [p.name for p in cli.chapters().values()]
    assert stems and all(f"ifhelpers/notebooks/{s}" in names for s in stems)
    assert {"ifhelpers/notebooks/smoke.yaml", "ifhelpers/model/models.yaml", "ifhelpers/paper_tables/table2.csv"} <= names
