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


def _forest_headlines():
    """Three chapters: differences with intervals (two with an MDE, one of them without an interval),
    a paper claim of no direction, and a row with no number."""
    def r(chapter, section, verdict, estimate=float("nan"), low=float("nan"), high=float("nan"),
          mde=float("nan"), ours="o", base="gemma-3-270m", tuned="smollm2-135m-instruct"):
        return {**findings.row(section, f"result {section}", "p", ours, verdict, estimate=estimate, low=low,
                               high=high, mde=mde, base=base, tuned=tuned), "chapter": chapter}

    rows = [r("01_a", "§2", "yes", 0.05, 0.02, 0.08, mde=0.03),
            r("01_a", "§2", "no", -0.2, -0.3, -0.1),
            r("02_b", "§3", "n.s. (opposite sign)", -2.0, -5.0, 1.0, mde=4.0),
            r("02_b", "§3", "not defined", 1.0, -1.0, 3.0),
            r("02_b", "§3", "not testable", 2.0, mde=1.0, ours="base 1.7, tuned 3.9"),  # no interval: no point
            r("05_c", "§3 (extension)", "yes", -1.5, -2.0, -1.0, base="gemma-3-270m", tuned="gemma-3-270m-ift-free-form"),
            r("05_c", "§1 (posited, not tested)", "n.s. (same sign)", 4.4, -1.7, 9.6, ours="+4.4 pts [-1.7, +9.6]",
              base="gemma-3-270m", tuned="gemma-3-270m-ift-free-form")]
    return pd.DataFrame(rows).reindex(columns=findings.HEADLINE_COLUMNS)


def _artists(fig, gid):
    return [a for ax in fig.axes for a in [*ax.lines, *ax.collections, *ax.patches, *ax.texts] if a.get_gid() == gid]


def test_paper_side_is_read_back_from_the_verdict():
    assert summary.paper_side("yes", 0.05, 0.02, 0.08) == 1
    assert summary.paper_side("yes", -1.5, -2.0, -1.0) == -1  # the paper's claim is "tuned lower"
    assert summary.paper_side("no", -0.2, -0.3, -0.1) == 1
    assert summary.paper_side("n.s. (opposite sign)", -2.0, -5.0, 1.0) == 1
    assert summary.paper_side("not defined", 1.0, -1.0, 3.0) == 0
    assert summary.paper_side("yes", 0.05, -0.02, 0.08) == 0  # a verdict this interval does not give
    assert summary.paper_side("no", float("nan"), float("nan"), float("nan")) == 0


def test_forest_plot_draws_every_headline_by_chapter():
    import matplotlib.pyplot as plt

    headlines = _forest_headlines()
    rows = summary.forest_rows(headlines)
    assert rows["drawn"].tolist() == [True, True, True, True, False, True, True]
    assert rows["side"].tolist() == [1, 1, 1, 0, 0, -1, 1]
    fig = summary.plot_headline_forest(headlines)
    assert [ax.get_title(loc="left") for ax in fig.axes] == ["01_a", "02_b", "05_c"]
    assert len(_artists(fig, "estimate")) == 6 and len(_artists(fig, "interval")) == 6
    mde = _artists(fig, "mde")  # the finite MDEs of drawn rows only: 0.03 and 4.0, at ± each
    assert sorted(tuple(line.get_xdata()) for line in mde) == [(-4.0, 4.0), (-0.03, 0.03)]
    assert len(_artists(fig, "paper side")) == 5
    (note,) = _artists(fig, "not drawn")
    assert "not testable" in note.get_text() and "base 1.7, tuned 3.9" in note.get_text()
    assert [len(ax.get_yticks()) for ax in fig.axes] == [2, 3, 2]
    for ax in fig.axes:  # each chapter on its own axis, symmetric about zero
        low, high = ax.get_xlim()
        assert low == -high
    assert fig.axes[0].get_xlim()[1] < 1 < fig.axes[1].get_xlim()[1]
    assert fig.get_suptitle() == "2 of 7 headlines go the paper's way, 1 against it, 2 are not significant"
    plt.close(fig)
    no_mde = summary.plot_headline_forest(headlines.assign(mde=float("nan")))
    assert not _artists(no_mde, "mde") and "minimum detectable" not in str(no_mde.legends[0].get_texts())
    plt.close(no_mde)
    plt.close(summary.plot_headline_forest(headlines.iloc[:0]))


def test_front_page_text_counts_the_headlines_and_reads_the_own_experiment():
    headlines = _forest_headlines()
    assert summary.verdict_tally(headlines) == {"holds": 2, "against": 1, "n.s.": 2, "mixed": 0, "cannot tell": 2,
                                                "total": 7}
    text = summary.front_page_text(headlines)
    assert text.startswith("Of the 7 headline results of this build, 2 go the paper's way")
    assert "1 goes against it, 2 are not significant (the interval contains zero) and 2 cannot be read" in text
    assert " 5 of the 7 compare models from different families" in text
    assert text.endswith("but does not test: result §1 (posited, not tested). Ours: +4.4 pts [-1.7, +9.6], in "
                         "the claimed direction, but its 95% interval contains zero (not significant).")
    assert "{" not in text and "*" not in text  # plain text: the front page pastes it with {glue:text}
    without_own = summary.front_page_text(headlines.iloc[:5])
    assert without_own.endswith("The book's own experiment (chapter 5) has recorded no result in this build.")
    assert summary.front_page_text(headlines.iloc[:0]).startswith("No chapter has recorded its headlines")


def test_results_beyond_the_paper_are_tallied_apart():
    paper_rows = _forest_headlines()
    beyond = paper_rows.iloc[:3].assign(chapter="06_sensitivity", paper_section="beyond the paper",
                                        base="gemma-3-270m", tuned="gemma-3-270m-ift-templates-1-seed0",
                                        note="same family; 20 questions")
    headlines = pd.concat([paper_rows, beyond], ignore_index=True)
    text = summary.front_page_text(headlines)
    assert text.startswith("Of the 7 headline results of this build that reproduce the paper, 2 go the paper's way")
    t = summary.verdict_tally(beyond)
    assert text.endswith(f"Beyond the paper (chapter 6: the paper's claim measured as later work measures it), of 3 "
                         f"results {t['holds']} side with the paper, {t['against']} with the findings against it and "
                         f"{3 - t['holds'] - t['against']} with neither.")
    lines = summary.beyond_text(headlines)
    assert lines.startswith("- **gemma-3-270m-ift-templates-1-seed0 − gemma-3-270m** (same family): of 3 results")
    assert summary.beyond_text(paper_rows).startswith("*No result beyond the paper")
