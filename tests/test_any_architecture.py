"""Every chapter runs end to end through ``ifhelpers run`` for models the book has never seen.

A researcher's models arrive as local folders written by ``save_pretrained``. Here they are tiny
random-weight decoders of four families (Llama, Qwen2, Gemma 3 with a sliding window, OLMo 2) with
a byte-level BPE tokenizer (the tuned ones with a chat template), run at the smoke sizes of
``notebooks/smoke.yaml``. Random weights make the statistics degenerate (no positive separation,
no extraction event, constant layers): a chapter must then say that a statistic is not defined,
and not crash. Chapters 1-4 run with a Gemma 3 base and three tuned families; chapter 5 tunes a
base of each of three families; chapter 6 runs like chapters 1-4 (without chapter 5's arms: training is
chapter 5's test). Every chapter's run, repeated in a fresh cache, gives byte-identical
result tables (the columns a run may change, its wall time and cache state, left out).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import TINY_FAMILIES, save_tiny_family, smoke_settings
from ifhelpers import cli

REPO = Path(__file__).resolve().parents[1]
SMOKE = yaml.safe_load((REPO / "notebooks" / "smoke.yaml").read_text())
VOLATILE_COLUMNS = ("elapsed_s", "executed_at", "cache", "cpus",  # headlines: when, how long, how cold
                    "minutes", "tokens_per_s", "evaluation_min", "training_min", "peak_memory_gib")


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """``{(family, tuned): folder}`` for every tiny family, base and tuned (different seeds)."""
    root = tmp_path_factory.mktemp("tiny-families")
    return {(family, tuned): save_tiny_family(root / f"tiny-{family}-{'it' if tuned else 'base'}", family, tuned,
                                              seed=2 * i + tuned)
            for i, family in enumerate(TINY_FAMILIES) for tuned in (False, True)}


#: Settings beyond the smoke sizes: chapter 6 without chapter 5's arms (training is chapter 5's test).
EXTRA_SETTINGS = {"sensitivity": ["--set", "tuned_arms=null"]}


def run(chapter: str, models: str, runs_dir: Path, cache: Path) -> Path:
    """``ifhelpers run CHAPTER --models MODELS`` at smoke sizes with its own cache; the run folder."""
    with pytest.MonkeyPatch.context() as patch:  # the chapter's kernel inherits the environment
        patch.setenv("IFHELPERS_CACHE", str(cache))
        code = cli.main(["run", chapter, "--models", models, *smoke_settings(cli.chapter_path(chapter).stem),
                         *EXTRA_SETTINGS.get(chapter, []), "--name", "tiny", "--runs-dir", str(runs_dir)])
    assert code == 0
    return runs_dir / "tiny"


def tables(folder: Path) -> dict[str, bytes]:
    """Every result table of a run, with the columns a run may change (its wall time, cache state) dropped."""
    out = {}
    for path in sorted(folder.glob("*.csv")):
        frame = pd.read_csv(path)
        out[path.name] = frame.drop(columns=[c for c in frame if c in VOLATILE_COLUMNS]).to_csv(index=False).encode()
    return out


@pytest.mark.parametrize("chapter", ["vector_space", "predictions", "becel", "mechanisms", "sensitivity"])
def test_chapters_1_to_4_and_6_run_for_four_families(folders, tmp_path, chapter):
    models = ",".join([f"base={folders['gemma3', False]}",
                       *(f"ift={folders[family, True]}" for family in ("llama", "qwen2", "olmo2"))])
    out = run(chapter, models, tmp_path / "runs", tmp_path / "cache")
    assert (out / f"{cli.chapter_path(chapter).stem}.ipynb").exists()
    found = tables(out)
    assert found, "the chapter wrote no result table"
    text = b"".join(found.values()).decode()
    assert all(folders[family, family != "gemma3"].name in text for family in TINY_FAMILIES)
    headlines = pd.read_csv(out / f"headlines_{cli.chapter_path(chapter).stem}.csv")
    assert not headlines["ours"].astype(str).str.contains("nan").any()  # undefined is said, not printed as nan
    if chapter == "mechanisms":  # 3 layers: no MHSA layer lies in the paper's span of Table 7
        table7 = headlines[headlines["paper_section"] == "§4, Table 7"].iloc[0]
        assert table7["direction_holds"] == "not defined" and "paper's span" in table7["note"]
    again = run(chapter, models, tmp_path / "again", tmp_path / "fresh-cache")
    assert tables(again) == found  # same input, same bytes: a second cold run in a fresh cache


@pytest.mark.parametrize("family", ["llama", "qwen2", "gemma3"])
def test_chapter_5_tunes_a_base_of_each_family(folders, tmp_path, family):
    out = run("tune_it_yourself", f"base={folders[family, False]}", tmp_path / "runs", tmp_path / "cache")
    training = pd.read_csv(out / "tune_training.csv")
    assert len(training) == len(SMOKE["05_tune_it_yourself"]["arms"]) * len(SMOKE["05_tune_it_yourself"]["seeds"])
    assert (out / "tune_dose_response.csv").exists()
    if family == "llama":  # training included: a second cold run trains the same models to the same bytes
        again = run("tune_it_yourself", f"base={folders[family, False]}", tmp_path / "again", tmp_path / "fresh")
        assert tables(again) == tables(out)
