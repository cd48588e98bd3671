"""The reproduction summary page's pieces, on hand-made headlines and a hand-made book folder."""

import pandas as pd

from ifhelpers import findings, summary


def _headlines():
    rows = [findings.row("§2", "gap", "paper says | more", "+0.1 [0.0, 0.2]", "yes", base="gemma-3-270m",
                         tuned="smollm2-135m-instruct", note="8 sets"),
            findings.row("§3", "acc", "p", "o", "n.s. (same sign)", base="gemma-3-270m",
                         tuned="smollm2-135m-instruct")]
    frame = pd.DataFrame(rows)
    frame["chapter"] = ["01_a", "02_b"]
    frame["elapsed_s"], frame["cache"], frame["executed_at"], frame["cpus"] = [60.0, 120.0], "warm", "t", 2
    return frame


def test_results_tables_escape_pipes_and_tally():
    text = summary.results_tables(_headlines())
    assert "| 1 | §2 | gap | paper says \\| more | +0.1 [0.0, 0.2] | **yes** |" in text
    assert "*Notes.* (1) 8 sets." in text
    assert text.endswith("Tally over the 2 results: **yes** 1; **n.s. (same sign)** 1.")


def test_model_pairs_warn_about_different_families():
    (line,) = summary.model_pairs(_headlines())
    assert "**gemma-3-270m** (base) against **smollm2-135m-instruct**" in line and "different families" in line
    same = _headlines().assign(tuned="gemma-3-270m-ift-free-form")
    assert "same family" in summary.model_pairs(same)[0]


def test_missing_and_silent_chapters(tmp_path):
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "_toc.yml").write_text("parts:\n  - chapters:\n      - file: notebooks/01_a\n"
                                       "      - file: notebooks/03_c\n      - file: notebooks/04_d\n")
    (tmp_path / "notebooks" / "01_a.md").write_text("ifh.book.finish(ch, rows)")
    (tmp_path / "notebooks" / "03_c.md").write_text("ifh.book.finish(ch, rows)")
    (tmp_path / "notebooks" / "04_d.md").write_text("no headlines here")
    notes = summary.missing_notes(_headlines(), tmp_path, "F")
    assert len(notes) == 2 and "Missing: no headlines from {doc}`03_c`" in notes[0] and "`04_d` records no" in notes[1]
    assert summary.chapter_times(_headlines())["minutes"].tolist() == [1.0, 2.0]
