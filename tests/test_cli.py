"""`ifhelpers run` / `sweep` on a tiny chapter written in the test (papermill runs it for real)."""

from __future__ import annotations

import os

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
models = ["gemma-3-270m", "smollm2-135m-instruct"]  # [list of str]
roles = {}  # [dict]
seed = 0  # [int ≥ 0]
n_items = 3  # items to list [int ≥ 1]
results_dir = None  # [str or None]
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


def test_run_executes_the_chapter_and_writes_tidy_results(chapter, tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # Hub ids only named, never loaded (offline: refused)
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


@pytest.mark.parametrize("args, message", [
    (["--models", "gemma-3-270m"], "ifhelpers: --models takes base=ID,ift=ID"),
    (["--models", "pair=pocket", "--set", "n_items"], "ifhelpers: --set takes name=value"),
    (["--models", "pair=pocket", "--set", "n_iterms=3"], "ifhelpers: Unknown parameter 'n_iterms'"),
    (["--models", "pair=pocket", "--set", "roles={}"], "ifhelpers: roles is set by `ifhelpers run` itself"),
])
def test_malformed_arguments_print_one_line_and_exit_2(chapter, args, message, capsys):
    assert cli.main(["run", str(chapter), *args]) == 2
    assert capsys.readouterr().err.startswith(message)


def test_sweep_through_submitit_debug_executor(chapter, tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # Hub ids only named, never loaded (offline: refused)
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


def fake_cache(root):
    import json

    (root / "models" / "tiny-base").mkdir(parents=True)
    (root / "models" / "tiny-base" / "model.safetensors").write_bytes(b"x" * 2048)
    for i, model in enumerate(["tiny-base@v1|float32", "tiny-tuned@v1|float32", "tiny-base@v1|float32"]):
        folder = root / "activations" / f"m{model[:6]}" / f"request{i}"
        folder.mkdir(parents=True)
        (folder / "about.json").write_text(json.dumps({"model": model, "request": f"request{i}"}))
        (folder / "part-0.npz").write_bytes(b"y" * 1024)
    (root / "tuning" / "ckpt").mkdir(parents=True)
    (root / "tuning" / "ckpt" / "state.bin").write_bytes(b"z")
    return root


def test_cache_shows_models_forward_passes_by_model_and_checkpoints(tmp_path):
    rows = cli.cache_contents(fake_cache(tmp_path))
    assert [r["part"] for r in rows] == ["models/tiny-base", "activations/tiny-base", "activations/tiny-tuned", "tuning"]
    (next((tmp_path / "activations").glob("mtiny-t*")) / "request1" / "about.json").write_text('{"mod')  # cut short
    assert [r["part"] for r in cli.cache_contents(tmp_path)][2] == "activations/unreadable-mtiny-t"
    assert rows[1]["what"] == "cached forward passes (2 requests)" and rows[1]["files"] == 4
    assert rows[0]["size_mb"] == 2048 / 2**20


def test_cache_removes_one_part_or_a_prefix_and_says_what_there_is(tmp_path):
    root = fake_cache(tmp_path)
    removed = cli.remove_from_cache("activations/tiny-base", root)
    assert len(removed) == 2 and not any(p.exists() for p in removed)
    assert [r["part"] for r in cli.cache_contents(root)] == ["models/tiny-base", "activations/tiny-tuned", "tuning"]
    cli.remove_from_cache("activations", root)
    assert [r["part"] for r in cli.cache_contents(root)] == ["models/tiny-base", "tuning"]
    with pytest.raises(ValueError, match="parts: models/tiny-base, tuning"):
        cli.remove_from_cache("activations/nothing", root)


def test_cache_command_asks_before_removing(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("IFHELPERS_CACHE", str(fake_cache(tmp_path)))
    assert cli.main(["cache"]) == 0 and "activations/tiny-tuned" in capsys.readouterr().out
    assert cli.main(["cache", "--remove", "tuning"]) == 0
    assert "Would remove tuning" in capsys.readouterr().out and (tmp_path / "tuning").exists()
    assert cli.main(["cache", "--remove", "tuning", "--yes"]) == 0 and not (tmp_path / "tuning").exists()
    assert cli.main(["cache", "--remove", "nothing"]) == 2
    capsys.readouterr()
    assert cli.main(["cache", "--remove", "", "--yes"]) == 2  # an empty part is not "everything"
    assert capsys.readouterr().err == ("ifhelpers: --remove is empty: give a part of the cache as `ifhelpers cache` "
                                       "lists it, e.g. --remove tuning\n")
    assert (tmp_path / "models").exists()


@pytest.mark.parametrize("args, message", [
    (["--name", "../../escape"], "ifhelpers: --name '../../escape' is not a plain name"),
    (["--name", "a/b"], "ifhelpers: --name 'a/b' is not a plain name"),
    (["--name", ".hidden"], "ifhelpers: --name '.hidden' is not a plain name"),
    (["--name", ""], "ifhelpers: --name '' is not a plain name"),
    (["--name", "x" * 201], "ifhelpers: --name 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx' is not a plain"),
    (["--name", "two words"], "ifhelpers: --name 'two words' is not a plain name"),
    (["--runs-dir", "{file}"], "ifhelpers: --runs-dir {file}: {file} is a file, not a folder"),
    (["--runs-dir", "{file}/sub"], "ifhelpers: --runs-dir {file}/sub: {file} is a file, not a folder"),
    (["--runs-dir", "/proc/runs"], "ifhelpers: --runs-dir /proc/runs: cannot write in /proc"),
    (["--name", "taken"], "ifhelpers: --runs-dir runs: {tmp}/runs/taken is a file, not a folder; give a folder (it is made if missing) or another --name."),
    (["--runs-dir", ""], "ifhelpers: --runs-dir is empty: give a folder (it is made if missing), e.g. --runs-dir runs."),
], ids=["escape", "slash", "hidden", "empty", "too-long", "space", "runs-dir-is-a-file", "under-a-file", "not-writable",
        "run-is-a-file", "empty-runs-dir"])
def test_a_bad_run_name_or_runs_folder_is_one_line_and_nothing_is_written(chapter, tmp_path, monkeypatch, capsys,
                                                                          args, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("x")
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "taken").write_text("x")
    args = [a.replace("{file}", str(tmp_path / "afile")) for a in args]
    assert cli.main(["run", str(chapter), "--models", "pair=pocket", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message.replace("{file}", str(tmp_path / "afile")).replace("{tmp}", str(tmp_path)))
    assert len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["99_tiny.md", "afile", "runs", "taken"]  # nothing written
    assert not (tmp_path.parent.parent / "escape").exists()


@pytest.mark.parametrize("models, message", [
    ("base=gemma-3-270m", "got no instruction-tuned model (gemma-3-270m (base))"),
    ("ift=smollm2-135m-instruct", "got no base model (smollm2-135m-instruct (instruction-tuned))"),
    ("base=gemma-3-270m,ift=gemma-3-270m", "gemma-3-270m is given twice"),
    ("base=org/m,ift=smollm2-135m-instruct,ift=org/m", "org/m is given twice"),
], ids=["base-only", "tuned-only", "same-model-twice", "hub-id-twice"])
def test_the_pair_needs_a_base_and_a_tuned_model_each_once(chapter, tmp_path, capsys, models, message):
    assert cli.main(["run", str(chapter), "--models", models, "--runs-dir", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ifhelpers: ") and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("args, message", [
    (["--models", ","], "ifhelpers: --models names no model (','); give base=ID,ift=ID[,ift=ID...] or pair=NAME"),
    (["--models", ""], "ifhelpers: --models names no model (''); give base=ID,ift=ID[,ift=ID...] or pair=NAME"),
    (["--models", "base=,ift=smollm2-135m-instruct"], "ifhelpers: --models takes base=ID,ift=ID[,ift=ID...] or "
                                                      "pair=NAME; got 'base='"),
    (["--models", "pair=pocket", "--set", "n_items=[1,"], "ifhelpers: --set value '[1,' is not valid YAML (expected "
                                                          "the node content, but found '<stream end>'); write a number"),
], ids=["only-a-comma", "empty", "empty-id", "unparsable-set"])
def test_an_empty_model_list_or_an_unparsable_value_is_one_line(chapter, tmp_path, capsys, args, message):
    assert cli.main(["run", str(chapter), *args, "--runs-dir", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()


def test_the_chapter_that_tunes_one_base_model_takes_exactly_one(capsys, tmp_path):
    assert cli.main(["run", "tune_it_yourself", "--models", "pair=pocket", "--runs-dir", str(tmp_path)]) == 2
    assert "This chapter tunes one base model: give exactly one" in capsys.readouterr().err


def test_a_missing_mirror_or_a_file_the_chapter_needs_is_said_before_any_kernel(chapter, tmp_path, monkeypatch,
                                                                                capsys):
    monkeypatch.setenv("IFHELPERS_DATA", str(tmp_path / "no-mirror"))
    assert cli.main(["run", str(chapter), "--models", "pair=pocket", "--runs-dir", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ifhelpers: The offline data mirror folder does not exist.") and "no-mirror" in err
    (tmp_path / "partial" / "mmlu").mkdir(parents=True)
    monkeypatch.setenv("IFHELPERS_DATA", str(tmp_path / "partial"))
    assert cli.main(["run", "predictions", "--models", "pair=pocket", "--runs-dir", str(tmp_path / "runs")]) == 2
    assert capsys.readouterr().err.startswith(
        f"ifhelpers: The offline data mirror at {tmp_path / 'partial'} lacks pararel/patterns, pararel/trex.")
    assert not (tmp_path / "runs").exists()


def test_no_mirror_and_no_network_is_one_line_before_any_kernel(chapter, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("IFHELPERS_DATA", raising=False)
    monkeypatch.setattr(cli, "online_reachable", lambda *a, **k: False)
    assert cli.main(["run", str(chapter), "--models", "pair=pocket", "--runs-dir", str(tmp_path / "runs")]) == 2
    assert capsys.readouterr().err == (
        "ifhelpers: No data mirror is set (IFHELPERS_DATA), so the run would read its data from the canonical "
        "online sources, but huggingface.co cannot be reached: set IFHELPERS_DATA to the offline mirror (a folder "
        "laid out as shared/data), as make book does.\n")
    assert not (tmp_path / "runs").exists()
    monkeypatch.setattr(cli, "online_reachable", lambda *a, **k: True)
    assert cli.check_data_source(("pararel/patterns",)) == "online"


def test_a_nearly_full_disk_is_one_line_before_any_kernel(chapter, tmp_path, monkeypatch, capsys):
    import shutil

    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: real(p)._replace(free=cli.MIN_FREE_BYTES - 1))
    assert cli.main(["run", str(chapter), "--models", "pair=pocket", "--runs-dir", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ifhelpers: the runs folder: only 2.0 GB free on the disk of ") and \
        "a run needs at least 2 GB" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()


def test_a_table_is_written_whole_or_not_at_all(tmp_path, monkeypatch):
    import errno

    import pandas as pd

    from ifhelpers import results

    results.save_table(pd.DataFrame({"a": [1, 2]}), "t", tmp_path)
    real = pd.DataFrame.to_csv

    def disk_full(frame, path, **kwargs):  # half the rows land on disk, then the disk is full
        real(frame.iloc[:1], path, **kwargs)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_csv", disk_full)
    with pytest.raises(OSError, match=r"No space left on device: the table .*t.csv was not written \(the previous"):
        results.save_table(pd.DataFrame({"a": [3, 4, 5]}), "t", tmp_path)
    assert pd.read_csv(tmp_path / "t.csv")["a"].tolist() == [1, 2]  # the previous table, whole
    assert [p.name for p in tmp_path.iterdir()] == ["t.csv"]  # no part file left behind


def test_the_library_raises_the_same_errors_and_a_sweep_submits_nothing(chapter, tmp_path):
    from ifhelpers.model.registry import RolesError

    tmp_path = tmp_path / "runs"
    tmp_path.mkdir()
    with pytest.raises(cli.RunError, match="not a plain name"):
        cli.run_chapter(str(chapter), ["gemma-3-270m", "smollm2-135m-instruct"], {}, name="../x", runs_dir=tmp_path)
    with pytest.raises(RolesError, match="no base model"):
        cli.run_chapter(str(chapter), ["smollm2-135m-instruct"], {}, name="x", runs_dir=tmp_path)
    with pytest.raises(RolesError, match="pair pocket, chapter 05_tune_it_yourself: This chapter tunes one base"):
        cli.sweep([str(chapter), "tune_it_yourself"], ["pocket"], executor="debug", runs_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_the_default_run_name_is_a_plain_name():
    assert cli.default_run_name(["./models/my-base", "org/tuned"]) == "models--my-base__org--tuned"
    assert cli.RUN_NAME.fullmatch(cli.default_run_name(["/abs/path with space/m", "~/x"]))
    assert cli.default_run_name(["a", "b"], "pair=paper-datasets") == "paper-datasets"  # a pair: its name
    many = [f"org/a-model-with-a-long-name-{i}" for i in range(12)]
    long, other = cli.default_run_name(many), cli.default_run_name(many[:-1] + ["org/another"])
    assert len(long) == cli.MAX_RUN_NAME and cli.RUN_NAME.fullmatch(long) and long != other  # kept apart by a hash
    assert long.startswith("org--a-model-with-a-long-name-0__")


def test_chapters_run_into_one_folder_keep_their_own_provenance(chapter, tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # Hub ids only named, never loaded (offline: refused)
    from ifhelpers import results

    other = tmp_path / "98_other.md"
    other.write_text(CHAPTER.replace("tiny_summary", "other_summary"))
    models, roles = ["org/base-model", "smollm2-135m-instruct"], {"org/base-model": "base"}
    runs = tmp_path / "runs"
    cli.run_chapter(str(chapter), models, roles, {"n_items": 2}, name="one", runs_dir=runs, progress=False)
    first = (runs / "one" / "99_tiny.provenance.yaml").read_text()
    cli.run_chapter(str(other), models, roles, {"n_items": 5}, name="one", runs_dir=runs, progress=False)
    assert (runs / "one" / "99_tiny.provenance.yaml").read_text() == first  # untouched by the second chapter
    found = results.provenances(runs / "one")
    assert sorted(found) == ["98_other", "99_tiny"]
    assert [found[c]["parameters"]["n_items"] for c in ("99_tiny", "98_other")] == [2, 5]
    assert all(found[c]["chapter"] == c and found[c]["wall_s"] is not None for c in found)
    assert found["99_tiny"]["data"] == os.environ["IFHELPERS_DATA"]  # where the run's data came from
    assert results.committed_runs(runs)["chapter"].tolist() == ["98_other", "99_tiny"]
    # the same chapter again under one name: the same settings re-run it; other settings are refused
    cli.run_chapter(str(chapter), models, roles, {"n_items": 2}, name="one", runs_dir=runs, progress=False)
    with pytest.raises(cli.RunError, match=r"already holds a run of 99_tiny with other settings \(n_items: 2 there, 3 here\)"):
        cli.run_chapter(str(chapter), models, roles, {"n_items": 3}, name="one", runs_dir=runs, progress=False)
    assert pd.read_csv(runs / "one" / "tiny_summary.csv")["n_items"].tolist() == [2, 2]
    (runs / "one" / "99_tiny.parameters.yaml").write_text("n_items: [2")  # cut short
    with pytest.raises(cli.RunError, match="99_tiny.parameters.yaml does not read back"):
        cli.run_chapter(str(chapter), models, roles, {"n_items": 2}, name="one", runs_dir=runs, progress=False)
    (runs / "one" / "98_other.provenance.yaml").write_text("chapter: [")  # the runs page still lists the run
    assert results.committed_runs(runs)["matches the code today"].tolist()[0] == "NO: no code commit recorded"


def test_a_run_of_the_older_layout_still_reads(tmp_path):
    from ifhelpers import results

    folder = tmp_path / "old"  # one provenance.yaml naming its chapter, as runs were written before
    folder.mkdir()
    (folder / "provenance.yaml").write_text(cli.yaml.safe_dump({"chapter": "05_tune_it_yourself", "code_commit": "abc",
                                                                "wall_s": 600.0}))
    (folder / "tune_dose_response.csv").write_text("arm,slope\ntemplates-1,0.5\n")
    assert results.read_provenance(folder)["chapter"] == "05_tune_it_yourself"
    assert list(results.provenances(folder)) == ["05_tune_it_yourself"]
    run = results.committed_run(folder, "tune_dose_response")
    assert run.summary.loc["wall time (min)", ""] == 10 and run.table["slope"].tolist() == [0.5]


def test_the_committed_run_reads_and_its_command_may_re_run_it_in_place():
    from ifhelpers import results

    folder = cli.Path(cli.__file__).parents[1] / "results" / "tune_it_yourself_full"
    assert list(results.provenances(folder)) == ["05_tune_it_yourself"]
    run = results.committed_run(folder, "tune_dose_response")
    assert run.summary.loc["wall time (min)", ""] > 0 and not run.table.empty
    params = cli.yaml.safe_load((folder / "05_tune_it_yourself.parameters.yaml").read_text())
    cli.check_same_settings(folder, "05_tune_it_yourself", {k: v for k, v in params.items() if k != "results_dir"})


def test_a_sweep_takes_set_checks_it_for_each_chapter_and_keeps_each_provenance(chapter, tmp_path, capsys):
    from ifhelpers import results

    other = tmp_path / "98_other.md"
    other.write_text(CHAPTER.replace("tiny_summary", "other_summary").replace("n_items", "n_other"))
    runs = tmp_path / "runs"
    outs = cli.sweep([str(chapter), str(other)], ["pocket"], executor="debug", runs_dir=runs, overrides={"n_items": 4})
    assert [o.name for o in outs] == ["pocket", "pocket"]
    found = results.provenances(runs / "pocket")
    assert found["99_tiny"]["parameters"]["n_items"] == 4 and "n_items" not in found["98_other"]["parameters"]
    assert pd.read_csv(runs / "pocket" / "tiny_summary.csv")["n_items"].tolist() == [4, 4]
    args = ["sweep", "--chapters", f"{chapter},{other}", "--pairs", "pocket", "--executor", "debug",
            "--runs-dir", str(tmp_path / "runs2")]
    assert cli.main([*args, "--set", "n_items=0"]) == 2
    assert capsys.readouterr().err.startswith("ifhelpers: 99_tiny: n_items=0 must be ≥ 1")
    assert cli.main([*args, "--set", "n_nothing=1"]) == 2
    assert "Unknown parameter 'n_nothing'. These chapters' parameters: seed" in capsys.readouterr().err
    assert not (tmp_path / "runs2").exists()


def test_a_run_says_what_it_will_do_and_roughly_how_long_before_it_starts(chapter, tmp_path, capsys):
    assert cli.main(["run", "predictions", "--models", "pair=pocket", "--set", "n_resamples=10000000000"]) == 2
    assert capsys.readouterr().err.startswith("ifhelpers: 02_predictions: n_resamples=10000000000 is above the ceiling")
    cli.run_chapter(str(chapter), ["gemma-3-270m", "smollm2-135m-instruct"], {}, {"n_items": 2}, name="plan",
                    runs_dir=tmp_path, progress=False)
    assert capsys.readouterr().out.startswith(
        f"Running 99_tiny for gemma-3-270m, smollm2-135m-instruct with n_items=2 into {tmp_path / 'plan'}: no time "
        f"estimate")


def test_the_rough_time_scales_the_smoke_time_by_models_sizes_and_cores():
    smoke = cli.yaml.safe_load((cli.NOTEBOOKS / "smoke.yaml").read_text())["02_predictions"]
    models = ["gemma-3-270m", "smollm2-135m-instruct"]
    minutes, uncounted = cli.rough_minutes("02_predictions", {**smoke, "models": models}, cpus=2)
    assert minutes == pytest.approx(14.6 / 60) and uncounted == []  # the smoke run itself: its measured time
    twice = {**smoke, "models": models, "n_resamples": smoke["n_resamples"] * 7}  # one of 6 sizes ×7: mean ×2
    assert cli.rough_minutes("02_predictions", twice, cpus=2)[0] == pytest.approx(2 * 14.6 / 60)
    assert cli.rough_minutes("02_predictions", {**smoke, "models": models * 2}, cpus=4)[0] == pytest.approx(14.6 / 60)
    assert cli.rough_minutes("02_predictions", {**smoke, "models": models, "pararel_relations": None}, cpus=2)[1] == \
        ["pararel_relations"]


def test_a_model_this_machine_cannot_get_is_one_line_before_any_kernel(chapter, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert cli.main(["run", str(chapter), "--models", "base=org/not-downloaded,ift=smollm2-135m-instruct",
                     "--runs-dir", str(tmp_path / "runs")]) == 2
    assert capsys.readouterr().err.startswith("ifhelpers: org/not-downloaded: org/not-downloaded is not in the "
                                              "Hugging Face cache and the Hub is off (HF_HUB_OFFLINE=1)")
    monkeypatch.delenv("IFHELPERS_LLAMA7B", raising=False)
    assert cli.main(["run", str(chapter), "--models", "base=gemma-3-270m,ift=sharegpt-7b", "--runs-dir",
                     str(tmp_path / "runs")]) == 2
    assert capsys.readouterr().err.startswith("ifhelpers: sharegpt-7b was released as a weight difference against "
                                              "llama-7b")
    monkeypatch.setenv("IFHELPERS_CACHE", str(tmp_path / "afile"))
    (tmp_path / "afile").write_text("x")
    assert cli.main(["run", str(chapter), "--models", "pair=pocket", "--runs-dir", str(tmp_path / "runs")]) == 2
    assert capsys.readouterr().err == (f"ifhelpers: IFHELPERS_CACHE={tmp_path / 'afile'}: {tmp_path / 'afile'} is a "
                                       f"file, not a folder; set IFHELPERS_CACHE to a folder.\n")
    assert not (tmp_path / "runs").exists()


def test_a_chapter_that_fails_or_is_interrupted_is_one_line(chapter, tmp_path, monkeypatch, capsys):
    from ifhelpers import results

    broken = tmp_path / "97_broken.md"
    broken.write_text(CHAPTER.replace('ifh.results.save_table(frame, "tiny_summary", results_dir)',
                                      'raise RuntimeError("the disk is full")'))
    args = ["run", str(broken), "--models", "pair=pocket", "--runs-dir", str(tmp_path / "runs"), "--name", "x"]
    assert cli.main(args) == 1  # cell numbers are execution counts of the executed notebook (papermill adds one)
    err = capsys.readouterr().err.splitlines()[-1] + "\n"  # after papermill's progress bar
    assert err == (f"ifhelpers: 97_broken stopped at cell 3 with RuntimeError: the disk is full; the executed notebook, "
                   f"traceback included, is {tmp_path / 'runs' / 'x' / '97_broken.ipynb'}.\n")
    assert results.read_provenance(tmp_path / "runs" / "x", "97_broken")["failed"] == "RuntimeError: the disk is full"

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("papermill.execute_notebook", interrupted)
    assert cli.main(["run", str(chapter), "--models", "pair=pocket", "--runs-dir", str(tmp_path / "runs")]) == 130
    assert capsys.readouterr().err.startswith("ifhelpers: interrupted. Every finished batch")


def fake_slurm(folder, sinfo_status=0, sbatch_status=1):
    """A PATH folder whose ``sinfo`` and ``sbatch`` exit with the given status, saying so on stderr."""
    folder.mkdir()
    for command, status in (("sinfo", sinfo_status), ("sbatch", sbatch_status)):
        script = folder / command
        script.write_text(f"#!/bin/sh\necho '{command}: fatal: the test says no' >&2\nexit {status}\n")
        script.chmod(0o755)
    return folder


@pytest.mark.parametrize("args, path, message", [
    (["--slurm", "bogus"], None, "ifhelpers: --slurm takes KEY=VALUE (a submitit Slurm parameter, e.g. "
                                 "slurm_partition=gpu); got 'bogus'"),
    ([], "empty", "ifhelpers: --executor slurm: Slurm is not installed here (no sinfo on PATH)"),
    ([], "down", "ifhelpers: --executor slurm: Slurm does not answer (sinfo exit status 1: sinfo: fatal: the test "
                 "says no); start slurmctld or use --executor local."),
    (["--slurm", "bogus_key=1"], "up", "ifhelpers: --slurm: Unknown executor 'bogus' in parameter 'bogus_key'."),
    ([], "up", "ifhelpers: Slurm refused the sweep (sbatch exit status 1: sbatch: fatal: the test says no); "
                 "nothing was submitted."),
], ids=["not-key-value", "no-slurm", "slurm-down", "unknown-parameter", "sbatch-refuses"])
def test_a_slurm_sweep_that_cannot_be_submitted_is_one_line(chapter, tmp_path, monkeypatch, capsys, args, path,
                                                             message):
    if path == "empty":
        (tmp_path / "empty").mkdir()
        monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    elif path is not None:
        folder = fake_slurm(tmp_path / path, sinfo_status=0 if path == "up" else 1)
        monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    assert cli.main(["sweep", "--chapters", str(chapter), "--pairs", "pocket", "--executor", "slurm", *args,
                     "--runs-dir", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err  # sbatch's own words may come first: submitit lets its stderr through
    assert err.strip().splitlines()[-1].startswith(message) and "Traceback" not in err
    assert not list((tmp_path / "runs").glob("*/*.ipynb"))  # no chapter ran
