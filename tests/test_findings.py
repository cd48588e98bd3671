"""Headline rows (ifhelpers.findings), the verdict rule (stats.verdict) and where results.save_headlines writes them."""

from __future__ import annotations

import time

import numpy as np
import pytest

from ifhelpers import findings, results, stats


@pytest.mark.parametrize(("diff", "low", "high", "sign", "expected"), [
    (0.1, 0.05, 0.15, 1, "yes"),
    (-0.1, -0.15, -0.05, 1, "no"),
    (0.1, -0.05, 0.25, 1, "n.s. (same sign)"),
    (-0.1, -0.25, 0.05, 1, "n.s. (opposite sign)"),
    (-0.1, -0.15, -0.05, -1, "yes"),  # the paper's claim is "tuned lower"
    (float("nan"), float("nan"), float("nan"), 1, "not defined"),
])
def test_verdict_reads_the_interval_against_the_papers_direction(diff, low, high, sign, expected):
    assert stats.verdict(diff, low, high, paper_sign=sign) == expected
    assert expected in findings.DIRECTION_VALUES


def test_combine_cells():
    assert findings.combine(["yes", "n.s. (same sign)"]) == "yes"
    assert findings.combine(["yes", "no"]) == "mixed"
    assert findings.combine(["n.s. (opposite sign)", "n.s. (opposite sign)", "n.s. (same sign)"]) == "n.s. (opposite sign)"
    assert findings.combine([]) == "not defined"




def test_save_headlines_goes_to_the_book_build_folder(tmp_path, monkeypatch):
    book = tmp_path / "book"
    (book / "notebooks").mkdir(parents=True)
    (book / "_toc.yml").write_text("root: intro\n")
    monkeypatch.delenv("IFHELPERS_HEADLINES", raising=False)
    monkeypatch.chdir(book / "notebooks")  # where jupyter-book runs a chapter
    from ifhelpers.model import cache as activation_cache

    monkeypatch.setattr(activation_cache, "PARTS_WRITTEN", 0)  # nothing computed yet in this process
    monkeypatch.setattr(activation_cache, "CHECKPOINTS_WRITTEN", 0)
    started = time.time()
    rows = [findings.row("§2", "a result", "paper text", "ours text", "yes", estimate=1.0, low=0.5, high=1.5)]
    frame = results.save_headlines(rows, "01_test", None, started=started)
    assert list(frame.columns) == findings.HEADLINE_COLUMNS
    assert frame["cache"].iloc[0].startswith("warm")
    written = results.load_headlines(book / "_build" / "headlines")
    assert written[["chapter", "result", "direction_holds"]].values.tolist() == [["01_test", "a result", "yes"]]
    assert results.load_headlines().shape[0] == 1  # found from the working directory, as the summary page does

    monkeypatch.setattr(activation_cache, "PARTS_WRITTEN", 3)  # forward passes computed in this process
    state = results.save_headlines(rows, "01_test", None, started=started)["cache"].iloc[0]
    assert state == "cold or partly cold (3 batches of forward passes computed)"

    runs = tmp_path / "runs" / "r"
    results.save_headlines(rows, "01_test", runs, started=started)
    assert (runs / "headlines_01_test.csv").exists()

    monkeypatch.setenv("IFHELPERS_HEADLINES", str(tmp_path / "elsewhere"))
    results.save_headlines(rows, "02_test", None, started=started)
    assert (tmp_path / "elsewhere" / "02_test.csv").exists()
    assert not (book / "_build" / "headlines" / "02_test.csv").exists()


def test_no_book_root_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.delenv("IFHELPERS_HEADLINES", raising=False)
    monkeypatch.chdir(tmp_path)
    if results.book_root() is not None:  # a _toc.yml above the temporary folder: nothing to test
        pytest.skip("a book root above the temporary folder")
    frame = results.save_headlines([findings.row("§2", "r", "p", "o", "yes")], "01_test", None)
    assert np.isnan(frame["elapsed_s"].iloc[0]) and results.load_headlines().empty


def test_row_stores_the_minimum_detectable_effect_or_reads_it_from_the_interval():
    assert np.isnan(findings.row("§2", "r", "p", "o", "yes")["mde"])  # no interval: no MDE
    row = findings.row("§2", "r", "p", "o", "yes", estimate=1.0, low=0.5, high=1.5, mde=0.8)
    assert row["mde"] == 0.8 and "mde" in findings.HEADLINE_COLUMNS  # the chapter's own
    # [0.5, 1.5] at 95%: SE = 1 / (2 x 1.959964) = 0.255107; MDE = (1.959964 + 0.841621) x SE = 0.714703
    row = findings.row("§2", "r", "p", "o", "yes", estimate=1.0, low=0.5, high=1.5)
    assert row["mde"] == pytest.approx(0.714703, abs=1e-6)
    assert np.isnan(findings.row("§2", "r", "p", "o", "yes", estimate=1.0, low=0.5)["mde"])
