"""The reproduction summary page (``notebooks/summary.md``): gather what the chapters wrote.

Each chapter writes its headline rows in its last cell (:func:`ifhelpers.book.finish`); this module
reads them back for the summary page: what the book finds in one paragraph (:func:`front_page_text`,
pasted on the front page) and in one figure (:func:`plot_headline_forest`), which chapters are
missing (:func:`missing_notes`), which model pairs were compared and whether they share a family
(:func:`model_pairs`), the table of results per chapter (:func:`results_tables`) and the wall time of
each chapter (:func:`chapter_times`); and, for the runs committed with the book, what they find
(:func:`committed_run_text`) and our per-dataset effects beside the paper's (:func:`per_dataset_table`,
:func:`rank_agreement`). Book layer: text, tables and one figure of the chapters' numbers; the one
statistic computed here, the rank correlation of our per-dataset effects with the paper's, is scipy's.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from ifhelpers import stats
from ifhelpers.model import registry

#: A chapter that records headlines calls one of these in its source.
_WRITES_HEADLINES = ("book.finish(", "save_headlines(")


def book_chapters(root: Path | None) -> list[str]:
    """The numbered chapters of the book's ``_toc.yml`` (e.g. ``01_vector_space``), in order."""
    toc = yaml.safe_load((root / "_toc.yml").read_text()) if root else {}
    entries = [c["file"] for part in toc.get("parts", []) for c in part.get("chapters", []) if "file" in c]
    return [Path(f).name for f in entries if re.fullmatch(r"notebooks/\d\d_.*", f)]


def chapter_source(root: Path | None, chapter: str) -> str:
    """The text of a chapter's notebook (``.md`` or ``.ipynb``) in the book at ``root``; "" if absent."""
    found = [p for p in (root / "notebooks").glob(f"{chapter}.*") if p.suffix in (".md", ".ipynb")] if root else []
    return found[0].read_text() if found else ""


def missing_notes(headlines: pd.DataFrame, root: Path | None, folder) -> list[str]:
    """One sentence for each chapter whose headlines are missing, and for each that records none."""
    chapters = book_chapters(root)
    writes = {c: any(w in chapter_source(root, c) for w in _WRITES_HEADLINES) for c in chapters}
    lines = []
    if headlines.empty:
        lines.append(f"**No chapter has recorded its headlines yet** (looked in `{folder}`). Run `make book`: each "
                     "chapter writes its headlines when it is executed.")
    for c in chapters:
        if writes[c] and c not in set(headlines["chapter"]):
            lines.append(f"**Missing: no headlines from {{doc}}`{c}`** in `{folder}`. Its outputs came from the "
                         "Jupyter cache without re-executing it; run `make clean-book book` to execute every chapter again.")
        elif not writes[c]:
            lines.append(f"{{doc}}`{c}` records no headline finding of the paper.")
    return lines


def model_names(cell) -> list[str]:
    """The model names of a ``base`` / ``tuned`` cell (comma-separated; empty or NaN gives none)."""
    return [n.strip() for n in str(cell).split(",") if n.strip() and n.strip() != "nan"]


def different_families(base, tuned) -> bool | None:
    """Whether the registry puts the ``base`` model and the ``tuned`` cell's models in different
    families; None when it does not know one of them (a Hub id or a folder) or a name is missing."""
    names = model_names(base) + model_names(tuned)
    if len(names) < 2:
        return None
    try:
        return bool(registry.family_note(names))
    except (KeyError, ValueError):
        return None


def model_pairs(headlines: pd.DataFrame) -> list[str]:
    """One bullet per (base, tuned models) pair the chapters compared, saying where and whether the
    registry puts them in the same family."""
    pairs = (headlines.assign(base=headlines["base"].fillna(""), tuned=headlines["tuned"].fillna(""))
             .groupby(["base", "tuned"], sort=False)["chapter"].unique())
    lines = []
    for (base, tuned), where in pairs.items():
        if not base or not tuned:
            continue
        tuned_list = model_names(tuned)
        text = (f"* **{base}** (base) against **{', '.join(tuned_list)}** (instruction-tuned), in "
                f"{', '.join(f'{{doc}}`{c}`' for c in where)}.")
        if different_families(base, tuned):
            text += (" **They come from different families**, so a difference between them is *not* an effect of "
                     "instruction tuning: it mixes tuning with differences of architecture, training data and "
                     "tokenizer. The table says whether this pair's numbers point the paper's way, not whether "
                     "the paper is right.")
        else:
            text += " The registry puts them in the same family, so the comparison isolates instruction tuning."
        lines.append(text)
    return lines


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ") if pd.notna(text) else ""


def results_tables(headlines: pd.DataFrame) -> str:
    """The results of every chapter as Markdown tables (paper's number, ours, direction), with notes and a tally."""
    blocks = []
    for chapter, part in headlines.groupby("chapter", sort=True):
        rows = [f"**{{doc}}`{chapter}`**", "",
                "| | § | result | paper (Fierro et al. 2024) | ours (this build) | direction holds |",
                "|---|---|---|---|---|---|"]
        notes = []
        for i, (_, h) in enumerate(part.iterrows(), start=1):
            rows.append(f"| {i} | {_cell(h['paper_section'])} | {_cell(h['result'])} | {_cell(h['paper'])} | "
                        f"{_cell(h['ours'])} | **{_cell(h['direction_holds'])}** |")
            if _cell(h["note"]):
                notes.append(f"({i}) {_cell(h['note'])}.")
        rows += ["", "*Notes.* " + " ".join(notes) if notes else ""]
        blocks.append("\n".join(rows))
    if blocks:
        counts = headlines["direction_holds"].value_counts()
        blocks.append("Tally over the {} results: {}.".format(
            len(headlines), "; ".join(f"**{k}** {v}" for k, v in counts.items())))
    return "\n\n".join(blocks)


def chapter_times(headlines: pd.DataFrame) -> pd.DataFrame:
    """Minutes, cache state, time of execution and CPU cores of each chapter's execution."""
    if headlines.empty:
        return pd.DataFrame({"chapter": ["(none)"], "minutes": [float("nan")],
                             "cache": ["no chapter has recorded its time yet: run `make book`"]})
    times = (headlines.groupby("chapter", sort=True)
             .agg(minutes=("elapsed_s", "first"), cache=("cache", "first"), executed_at=("executed_at", "first"),
                  cpus=("cpus", "first"))
             .reset_index())
    times["minutes"] = (times["minutes"] / 60).round(1)
    return times.rename(columns={"executed_at": "executed at (UTC)", "cpus": "CPU cores"})


# --------------------------------------------------------------------------------------------------
# What the book finds, at a glance: the tally, the forest plot of every headline, the front page's paragraph

#: How the front page and the forest plot count each verdict of :data:`ifhelpers.findings.DIRECTION_VALUES`.
VERDICT_GROUPS = {"yes": "holds", "no": "against", "n.s. (same sign)": "n.s.", "n.s. (opposite sign)": "n.s.",
                  "n.s.": "n.s.", "mixed": "mixed", "not defined": "cannot tell", "not testable": "cannot tell"}
#: The colour of a headline's point in the forest plot, by verdict group; the paper's side is shaded green.
VERDICT_COLORS = {"holds": "#55A868", "against": "#C44E52", "n.s.": "0.3", "mixed": "#8172B3",
                  "cannot tell": "0.6"}
VERDICT_LABELS = {"holds": "the paper's direction holds", "against": "against the paper's direction",
                  "n.s.": "n.s. (interval contains 0)", "mixed": "mixed", "cannot tell": "not defined / not testable"}
PAPER_SIDE_COLOR = "#55A868"


def verdict_tally(headlines: pd.DataFrame) -> dict[str, int]:
    """How many headlines fall in each group of :data:`VERDICT_GROUPS` (``holds``, ``against``, ``n.s.``,
    ``mixed``, ``cannot tell``), and their ``total``: the counts the front page and the forest plot give."""
    groups = headlines["direction_holds"].map(VERDICT_GROUPS).fillna("cannot tell")
    return {**{g: int((groups == g).sum()) for g in VERDICT_COLORS}, "total": len(headlines)}


def paper_side(verdict: str, estimate: float, low: float, high: float) -> int:
    """The side of zero the paper predicts for a headline's difference (+1: tuned higher, -1: tuned
    lower), read back from its verdict and the sign of our estimate; 0 when it cannot be read.

    A headline stores the verdict (:func:`ifhelpers.stats.verdict`), not the paper's sign: "yes" and
    "n.s. (same sign)" put the paper on our estimate's side, "no" and "n.s. (opposite sign)" on the
    other. The side is kept only when :func:`~ifhelpers.stats.verdict` on the row's own interval gives
    its verdict back (so a verdict read from other cells, or from no interval, marks no side)."""
    if not (np.isfinite(estimate) and estimate != 0):
        return 0
    sign = int(np.sign(estimate))
    side = {"yes": sign, "n.s. (same sign)": sign, "no": -sign, "n.s. (opposite sign)": -sign}.get(verdict, 0)
    return side if side and stats.verdict(estimate, low, high, paper_sign=side) == verdict else 0


def _row_label(section, result, width: int = 58, lines: int = 2) -> str:
    text = f"{_cell(section)} · {_cell(result)}" if _cell(section) else _cell(result)
    return textwrap.fill(text, width, max_lines=lines, placeholder=" …")


def forest_rows(headlines: pd.DataFrame) -> pd.DataFrame:
    """The headlines as the forest plot draws them, in chapter order: ``chapter``, ``label`` (section and
    result), ``estimate``, ``low``, ``high``, ``mde``, ``verdict`` (``direction_holds``), its ``group``
    (of :data:`VERDICT_GROUPS`), ``ours`` (the text), ``side`` (:func:`paper_side`) and ``drawn``:
    whether the row has a difference with a finite 95% interval (the others keep their line in the
    plot, with their text, but get no point)."""
    frame = headlines.sort_values("chapter", kind="stable").reset_index(drop=True)
    number = {c: pd.to_numeric(frame[c], errors="coerce") if c in frame else pd.Series(np.nan, index=frame.index)
              for c in ("estimate", "low", "high", "mde")}
    out = pd.DataFrame({"chapter": frame["chapter"],
                        "label": [_row_label(s, r) for s, r in zip(frame["paper_section"], frame["result"])],
                        **number,
                        "verdict": frame["direction_holds"].map(_cell),
                        "group": frame["direction_holds"].map(VERDICT_GROUPS).fillna("cannot tell"),
                        "ours": frame["ours"].map(_cell)})
    out["side"] = [paper_side(v, e, lo, hi) for v, e, lo, hi in
                   zip(frame["direction_holds"], out["estimate"], out["low"], out["high"])]
    out["drawn"] = np.isfinite(out[["estimate", "low", "high"]]).all(axis=1)
    return out


def forest_title(headlines: pd.DataFrame) -> str:
    """The forest plot's title, its finding: how many headlines go the paper's way, against it, n.s."""
    t = verdict_tally(headlines)
    return (f"{t['holds']} of {t['total']} headlines go the paper's way, {t['against']} against it, "
            f"{t['n.s.']} are not significant")


def _forest_panel(ax, rows: pd.DataFrame) -> None:
    """One chapter's rows on an axis of its own, symmetric about zero (see :func:`plot_headline_forest`)."""
    ys = np.arange(len(rows))[::-1]
    drawn = rows[rows["drawn"]]
    extent = np.nanmax(np.abs(drawn[["estimate", "low", "high", "mde"]].to_numpy())) if len(drawn) else np.nan
    half = 1.15 * extent if np.isfinite(extent) and extent > 0 else 1.0
    for y, (_, row) in zip(ys, rows.iterrows()):
        if row["side"]:
            bars = ax.barh(y, row["side"] * half, left=0, height=0.8, color=PAPER_SIDE_COLOR, alpha=0.16,
                           linewidth=0, zorder=0)
            bars.patches[0].set_gid("paper side")
        if not row["drawn"]:
            text = f"no interval to draw; direction holds: {row['verdict']}; ours: {row['ours'] or 'n/a'}"
            ax.text(0, y, textwrap.shorten(text, 90, placeholder=" …"), ha="center", va="center", fontsize=8,
                    style="italic", color="0.35", gid="not drawn")
            continue
        color = VERDICT_COLORS[row["group"]]
        ax.hlines(y, row["low"], row["high"], color=color, linewidth=2, gid="interval", zorder=3)
        ax.plot([row["estimate"]], [y], "o", color=color, markersize=7, gid="estimate", zorder=4)
        if np.isfinite(row["mde"]):
            ax.plot([-row["mde"], row["mde"]], [y, y], linestyle="none", marker="|", markersize=14,
                    markeredgewidth=1.6, color="black", gid="mde", zorder=5)
    ax.axvline(0, color="black", linewidth=0.8, zorder=1)
    ax.set_xlim(-half, half)
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.set_yticks(ys, rows["label"], fontsize=8)
    ax.tick_params(axis="x", labelsize=8)
    ax.grid(axis="y", visible=False)


def plot_headline_forest(headlines: pd.DataFrame, title: str | None = None):
    """Every headline of the book in one figure: our difference (tuned − base) with its 95% interval,
    one panel per chapter, the side of zero the paper predicts shaded (:func:`paper_side`), and ±MDE
    ticks where the headline has a minimum detectable effect (``mde`` of :func:`ifhelpers.findings.row`).

    The headlines are on different scales (percentage points, cosine gaps), so each chapter's panel
    has its own axis, symmetric about zero; within a panel the rows are read in the units their
    results name. A headline without a finite interval gets no point but keeps its line, with our
    text. The point's colour is its verdict (:data:`VERDICT_COLORS`), as in the table below the
    figure on the summary page. Returns the figure.
    """
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    rows = forest_rows(headlines)
    chapters = list(dict.fromkeys(rows["chapter"]))
    if not chapters:
        fig, ax = plt.subplots(figsize=(8, 1.2))
        ax.text(0.5, 0.5, "No chapter has recorded its headlines yet.", ha="center", va="center")
        ax.set_axis_off()
        return fig
    sizes = [int((rows["chapter"] == c).sum()) for c in chapters]
    height = 1.6 + 0.5 * len(rows) + 0.45 * len(chapters)  # inches: the legend and the axis label take 1
    fig, axes = plt.subplots(len(chapters), 1, figsize=(10, height), gridspec_kw={"height_ratios": sizes},
                             squeeze=False)
    for ax, chapter in zip(axes[:, 0], chapters):
        _forest_panel(ax, rows[rows["chapter"] == chapter])
        ax.set_title(chapter, loc="left", fontsize=10)
    groups = [g for g in VERDICT_COLORS if (rows.loc[rows["drawn"], "group"] == g).any()]
    handles = [Line2D([], [], color=VERDICT_COLORS[g], marker="o", linewidth=2, label=VERDICT_LABELS[g])
               for g in groups]
    handles.append(Patch(color=PAPER_SIDE_COLOR, alpha=0.3, label="the side of 0 the paper predicts"))
    if (rows["drawn"] & np.isfinite(rows["mde"])).any():
        handles.append(Line2D([], [], color="black", marker="|", markersize=12, linestyle="none",
                              label="± minimum detectable effect"))
    fig.suptitle(title or forest_title(headlines), fontweight="bold")
    fig.tight_layout(rect=(0, 1.0 / height, 1, 1))
    fig.supxlabel("ours: instruction-tuned − base, with its 95% interval; each chapter has its own scale, in the "
                  "units its rows name", fontsize=9, y=0.8 / height)
    fig.legend(handles=handles, loc="lower center", ncol=3, frameon=False, fontsize=8, bbox_to_anchor=(0.5, 0))
    return fig


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


_OWN_VERDICTS = {
    "yes": "in the claimed direction, with a 95% interval that excludes zero",
    "no": "against the claimed direction, with a 95% interval that excludes zero",
    "n.s. (same sign)": "in the claimed direction, but its 95% interval contains zero (not significant)",
    "n.s. (opposite sign)": "against the claimed direction, but its 95% interval contains zero (not significant)",
    "n.s.": "its 95% interval contains zero (not significant)",
    "mixed": "mixed: its cells go both ways",
    "not defined": "not defined for these models",
    "not testable": "not testable with these models",
}


def own_experiment_rows(headlines: pd.DataFrame) -> pd.DataFrame:
    """The book's own experiment: the headlines that test what the paper posits in §1 without testing
    it (``paper_section`` starting with "§1", written by chapter 5)."""
    return headlines[headlines["paper_section"].astype(str).str.match(r"§1(?!\d)")]


def beyond_rows(headlines: pd.DataFrame) -> pd.DataFrame:
    """The headlines that go beyond the paper (``paper_section`` "beyond the paper", written by chapter 6):
    the paper's claim measured the ways later work measures it."""
    return headlines[headlines["paper_section"].astype(str).str.startswith("beyond")]


def beyond_text(headlines: pd.DataFrame) -> str:
    """The section "Beyond the paper" of the summary: for each comparison of :func:`beyond_rows`, how many of its
    results side with the paper (tuned measurably less sensitive), with the later findings against it (measurably
    more sensitive), or with neither (not significant, or mixed across the evaluator's choices). Markdown."""
    rows = beyond_rows(headlines)
    if rows.empty:
        return "*No result beyond the paper in this build (chapter 6 has not recorded its headlines).*"
    lines = []
    for (base, tuned), part in rows.groupby(["base", "tuned"], sort=False):
        t = verdict_tally(part)
        said = str(part["note"].iloc[0]).split(";")[0]  # chapter 6 opens each note with the pair's kind
        family = said if said in ("same family", "different families") else \
            {True: "different families", False: "same family"}.get(different_families(base, tuned), "")
        lines.append(f"- **{tuned} − {base}**{f' ({family})' if family else ''}: of {t['total']} results, "
                     f"{t['holds']} side with the paper, {t['against']} with the findings against it, "
                     f"{t['n.s.'] + t['mixed'] + t['cannot tell']} with neither at this size.")
    return "\n".join(lines)


#: The headline results for which the paper prints one number per model (a result's text begins with the key):
#: the paper's table and column, and which part of a "semantic / negational" cell (Table 2's BECEL consistency).
PAPER_PER_MODEL = {
    "cos(paraph.) − cos(¬paraph.), tuned − base: MRPC": (1, "MRPC", None),
    "cos(paraph.) − cos(¬paraph.), tuned − base: TaPaCo": (1, "TAPACO", None),
    "cos(paraph.) − cos(¬paraph.), tuned − base: ParaRel": (1, "PARAREL", None),
    "ParaRel consistency, tuned − base": (2, "PARAREL Cons.", None),
    "ParaRel accuracy, tuned − base": (2, "PARAREL Acc.", None),
    "MMLU accuracy, tuned − base": (2, "MMLU Acc.", None),
    "BECEL accuracy, mean over tasks, tuned − base": (2, "BECEL Acc.", None),
    "BECEL semantic consistency (paraphrase), mean over tasks, tuned − base": (2, "BECEL Cons.", 0),
    "BECEL negational consistency (negation), mean over tasks, tuned − base": (2, "BECEL Cons.", 1),
}


#: The result the front page spells out per instruction dataset: the paper's central measure of consistency (§3).
CENTRAL_RESULT = "ParaRel consistency, tuned − base"


def book_recipe(model):
    """The :class:`~ifhelpers.model.tuned.Recipe` of a registry model that this book tuned, or None."""
    from ifhelpers.model import tuned

    spec = registry.models().get(str(model))
    return tuned.recipe_of(spec) if spec is not None and spec.source.get("kind") == "lora_tuned" else None


def instruction_dataset(model) -> str | None:
    """The instruction dataset (a name of :data:`ifhelpers.data.instruction_sets.SETS`, which are the paper's
    dataset names) that a registry model was LoRA-tuned on by this book (:func:`book_recipe`), or None."""
    from ifhelpers.data import instruction_sets

    recipe = book_recipe(model)
    return recipe.mixture if recipe is not None and recipe.mixture in instruction_sets.SETS else None


def training_seed(model) -> int | None:
    """The training seed of a registry model that this book tuned (:func:`book_recipe`), or None."""
    recipe = book_recipe(model)
    return recipe.seed if recipe is not None else None


def paper_per_model_effect(result: str, dataset: str) -> float:
    """The paper's number for the LLaMA-7b model tuned on ``dataset`` minus LLaMA-7b's, for the headline
    ``result`` (:data:`PAPER_PER_MODEL`; Tables 1 and 2); nan where the paper prints none."""
    from ifhelpers import paper

    key = next((k for k in PAPER_PER_MODEL if str(result).startswith(k)), None)
    if key is None:
        return float("nan")
    number, column, part = PAPER_PER_MODEL[key]
    table = paper.table(number).set_index("model")[column].astype(str)
    if part is not None:
        table = table.str.split("/").str[part]
    values = pd.to_numeric(table.str.strip(), errors="coerce")
    tuned, base = values.get(f"{dataset}-7b"), values.get("llama-7b (base model)")
    return round(float(tuned - base), 6) if tuned is not None and base is not None else float("nan")


def per_dataset_table(headlines: pd.DataFrame) -> pd.DataFrame:
    """Our effect (tuned − base, with its 95% interval) per instruction dataset beside the paper's effect for the
    model tuned on the same dataset, for every headline that the paper prints per model
    (:data:`PAPER_PER_MODEL`) and every tuned model of :func:`instruction_dataset`. One row per (result,
    dataset, training seed: :func:`training_seed`); ``ours_label`` says what our data was (the mirror's subset or
    a stand-in)."""
    from ifhelpers.data import instruction_sets

    rows = []
    for _, h in headlines.iterrows():
        dataset = instruction_dataset(h["tuned"])
        if dataset is None or not any(str(h["result"]).startswith(k) for k in PAPER_PER_MODEL):
            continue
        rows.append({"result": h["result"], "dataset": dataset, "seed": training_seed(h["tuned"]),
                     "ours_label": instruction_sets.SETS[dataset].label,
                     "ours": h["estimate"], "ours_low": h["low"], "ours_high": h["high"], "ours_mde": h["mde"],
                     "ours_verdict": h["direction_holds"],
                     "paper (LLaMA-7b)": paper_per_model_effect(h["result"], dataset)})
    return pd.DataFrame(rows, columns=["result", "dataset", "seed", "ours_label", "ours", "ours_low", "ours_high",
                                       "ours_mde", "ours_verdict", "paper (LLaMA-7b)"])


def dataset_means(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`per_dataset_table` with one row per (result, dataset): ``ours`` the mean over its training seeds,
    ``seeds`` how many, and the paper's effect."""
    return (table.groupby(["result", "dataset"], sort=False)
            .agg(seeds=("ours", "size"), ours=("ours", "mean"), paper=("paper (LLaMA-7b)", "first"))
            .rename(columns={"paper": "paper (LLaMA-7b)"}).reset_index())


def seeds_against_datasets(table: pd.DataFrame) -> pd.DataFrame:
    """Does the instruction dataset move an effect more than the training seed does? Per result of
    :func:`per_dataset_table` with at least two datasets of at least two seeds each: the pooled standard deviation
    between the seeds of one dataset (``seed_sd``), the standard deviation of the datasets' means
    (``dataset_sd``), and the one-way ANOVA of the seeds' effects by dataset (scipy's ``f_oneway``: ``F`` and
    its ``p``; a small p says the datasets differ by more than seed noise)."""
    from scipy import stats as scipy_stats

    rows = []
    for result, part in table.dropna(subset=["ours"]).groupby("result", sort=False):
        groups = [g["ours"].to_numpy(float) for _, g in part.groupby("dataset", sort=False) if len(g) >= 2]
        if len(groups) < 2:
            continue
        within = np.sqrt(sum(((g - g.mean()) ** 2).sum() for g in groups) / sum(len(g) - 1 for g in groups))
        test = scipy_stats.f_oneway(*groups)
        rows.append({"result": result, "datasets": len(groups), "seeds": min(len(g) for g in groups),
                     "seed_sd": float(within), "dataset_sd": float(np.std([g.mean() for g in groups], ddof=1)),
                     "F": float(test.statistic), "p": float(test.pvalue)})
    return pd.DataFrame(rows, columns=["result", "datasets", "seeds", "seed_sd", "dataset_sd", "F", "p"])


def rank_agreement(table: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Does the order of the instruction datasets carry over from LLaMA-7b to our model? Per result of
    :func:`per_dataset_table` with at least 3 datasets in both: Spearman's rank correlation between the paper's
    per-dataset effects and ours (the mean over a dataset's training seeds, :func:`dataset_means`), computed by
    scipy as Pearson's r on the ranks, with its Fisher-z interval (defined from 4 datasets on) and its
    two-sided p-value."""
    from scipy import stats as scipy_stats

    rows = []
    means = dataset_means(table.dropna(subset=["ours", "paper (LLaMA-7b)"]))
    for result, part in means.groupby("result", sort=False):
        n = len(part)
        row = {"result": result, "datasets": n, "spearman": np.nan, "low": np.nan, "high": np.nan, "p": np.nan}
        paper_ranks, our_ranks = scipy_stats.rankdata(part["paper (LLaMA-7b)"]), scipy_stats.rankdata(part["ours"])
        if n >= 3 and np.ptp(paper_ranks) > 0 and np.ptp(our_ranks) > 0:
            r = scipy_stats.pearsonr(paper_ranks, our_ranks)
            row.update(spearman=float(r.statistic), p=float(r.pvalue))
            if n >= 4:
                row["low"], row["high"] = (float(v) for v in r.confidence_interval(confidence))
        rows.append(row)
    return pd.DataFrame(rows, columns=["result", "datasets", "spearman", "low", "high", "p"])


def footnote4_by_run(pararel_summaries: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Footnote 4's rule (:func:`ifhelpers.chapters.predictions.footnote4_rule`) on each run's own ParaRel
    summary (chapter 2's ``predictions_pararel_summary`` tables with a ``run`` column, as
    :func:`ifhelpers.results.load_tables` gathers them), in points, by run."""
    from ifhelpers.chapters import predictions

    out = {}
    for run, part in pararel_summaries.groupby("run") if len(pararel_summaries) else []:
        rule = predictions.footnote4_rule(part.set_index("model"), base=part.loc[part["role"] == "base", "model"].iloc[0])
        out[run] = (100 * rule[["consistency", "consistency_std", "difference", "threshold"]]).join(
            rule[["beyond_threshold"]])
    return out


def defined_correlations(correlations: pd.DataFrame) -> pd.DataFrame:
    """Chapter 4's Table 7 rows (``mechanisms_correlation`` tables with a ``run`` column) where the correlation
    across tuned models is defined, one row per run, block and layer."""
    if not len(correlations) or not correlations["defined"].any():
        return pd.DataFrame()
    rows = correlations[correlations["defined"]].drop_duplicates(["run", "block", "layer"])
    return rows[["run", "block", "layer", "r", "p_value", "n_models"]]


def _mde_text(row, column: str = "mde") -> str:
    mde = pd.to_numeric(row.get(column), errors="coerce")
    return f" (minimum detectable effect {mde:.2f})" if pd.notna(mde) else ""


def committed_run_text(name: str, headlines: pd.DataFrame) -> str:
    """One or two sentences on a run committed with the book (``results/<name>``, headlines of
    :func:`ifhelpers.results.committed_headlines`): the book's own experiment where the run has it, otherwise
    the tally of its results that reproduce the paper, with how many compare models tuned by this book on the
    paper's instruction datasets (:func:`instruction_dataset`), :data:`CENTRAL_RESULT` per dataset beside the
    paper's, and the rank agreement of the per-dataset effects with the paper's (:func:`rank_agreement`)."""
    stale = headlines.attrs.get("stale", "")
    flag = f" (flagged: {stale})" if stale else ""
    own = own_experiment_rows(headlines)
    if len(own):
        return "".join(f" In the committed full run (results/{name}){flag}, the same slope is {_cell(h['ours'])}"
                       f"{_mde_text(h)}, {_OWN_VERDICTS.get(h['direction_holds'], _cell(h['direction_holds']))}."
                       for _, h in own.iterrows())
    rows = headlines.drop(beyond_rows(headlines).index)
    t = verdict_tally(rows)
    if not t["total"]:
        return ""
    datasets = sorted({d for d in map(instruction_dataset, rows["tuned"]) if d})
    which = (f"the base model tuned on {len(datasets)} instruction datasets ({', '.join(datasets)}; subsets or "
             "labelled stand-ins, by one recipe)" if datasets else "its models")
    text = (f" The committed run of the paper's design at pocket scale (results/{name}){flag} compares {which}: "
            f"of its {t['total']} results (one per result and tuned model), {t['holds']} go the paper's way, "
            f"{t['against']} against it, {t['n.s.']} are not significant")
    text += f" and {t['mixed'] + t['cannot tell']} cannot be read." if t["mixed"] + t["cannot tell"] else "."
    table = per_dataset_table(rows)
    central = table[table["result"].astype(str).str.startswith(CENTRAL_RESULT)]
    if len(central):
        one_seed = central["dataset"].is_unique
        spelled = []
        for dataset, part in central.groupby("dataset", sort=False):
            each = [f"{c['ours']:+.1f} [{c['ours_low']:+.1f}, {c['ours_high']:+.1f}]"
                    + (_mde_text(c, "ours_mde") if one_seed else f" (seed {c['seed']})") for _, c in part.iterrows()]
            spelled.append(f"{dataset} " + " and ".join(each))
        paper = central.drop_duplicates("dataset")
        text += (f" {CENTRAL_RESULT} per dataset: " + "; ".join(spelled) + " (the paper, for LLaMA-7b tuned on the "
                 "same datasets: " + ", ".join(f"{d} {v:+.1f}" for d, v in
                                               zip(paper["dataset"], paper["paper (LLaMA-7b)"])) + " points).")
        if central["ours_mde"].notna().any() and one_seed:
            text += (" Each minimum detectable effect (80% power, two-sided test at 0.05) is read from its interval, "
                     "which holds the evaluation's noise only: with one model trained per dataset, training seeds "
                     "would add theirs, so the true one is larger.")
        for _, spread in seeds_against_datasets(central).iterrows():
            differ = ("the datasets differ by more than the seeds do" if spread["p"] < 0.05 else
                      "the datasets' differences are not told apart from seed noise")
            text += (f" Between models tuned on one dataset with different seeds, this effect moves by "
                     f"{spread['seed_sd']:.1f} points (pooled SD) against {spread['dataset_sd']:.1f} between the "
                     f"datasets' means (one-way ANOVA over {spread['datasets']} datasets: F = {spread['F']:.2f}, "
                     f"p = {spread['p']:.2g}): {differ}.")
    agreement = rank_agreement(table).dropna(subset=["spearman"])
    if len(agreement):
        text += (f" The rank correlation of our per-dataset effects with the paper's (Spearman) ranges from "
                 f"{agreement['spearman'].min():+.2f} to {agreement['spearman'].max():+.2f} over "
                 f"{_count(len(agreement), 'result', 'results')} ({int(agreement['datasets'].max())} datasets each "
                 "at most, so every 95% interval is wide).")
    return text


def front_page_text(headlines: pd.DataFrame, committed: dict[str, pd.DataFrame] | None = None) -> str:
    """What this build finds, in one paragraph of plain text for the front page (glued as
    ``front_page``): the tally of :func:`verdict_tally` over every headline, how many compare models
    of different families (:func:`different_families`), and the result of the book's own
    experiment (:func:`own_experiment_rows`) with its minimum detectable effect. Each run committed with the
    book (``committed``: :func:`ifhelpers.results.committed_headlines`), the stronger evidence, follows what
    this build finds on the same question (:func:`committed_run_text`): a run of the book's own experiment
    after that experiment, any other after the tally. The results beyond the paper (:func:`beyond_rows`) are
    tallied apart, in a last sentence. Every number comes from a headline table."""
    beyond = beyond_rows(headlines)
    headlines = headlines.drop(beyond.index)
    t = verdict_tally(headlines)
    if not t["total"]:
        return "No chapter has recorded its headlines in this build yet: run make book to see what the book finds."
    parts = [f"{_count(t['holds'], 'goes', 'go')} the paper's way (for a difference: its 95% interval lies on "
             "the paper's side of zero)",
             f"{_count(t['against'], 'goes', 'go')} against it",
             f"{_count(t['n.s.'], 'is', 'are')} not significant (the interval contains zero)"]
    if t["mixed"]:
        parts.append(f"{_count(t['mixed'], 'is', 'are')} mixed (its cells go both ways)")
    if t["cannot tell"]:
        parts.append(f"{t['cannot tell']} cannot be read for these models (not defined or not testable)")
    which = "headline results of this build" + (" that reproduce the paper" if len(beyond) else "")
    text = f"Of the {t['total']} {which}, " + ", ".join(parts[:-1]) + f" and {parts[-1]}."
    families = [different_families(b, tu) for b, tu in zip(headlines["base"], headlines["tuned"])]
    mixed_families = sum(f is True for f in families)
    if mixed_families:
        text += (f" {mixed_families} of the {t['total']} compare models from different families, which mixes "
                 "instruction tuning with differences of architecture, data and tokenizer: those show how the "
                 "method reads, not whether the paper is right.")
    elif families and all(f is False for f in families):
        text += " Every comparison is within one model family, so it isolates instruction tuning."
    elif any(f is False for f in families):
        text += (f" {sum(f is False for f in families)} of the {t['total']} compare a base model with a tuned model "
                 "of its own family (by the registry) and none compares two families, so they speak to the effect "
                 "of instruction tuning.")
    committed = committed or {}
    own_runs = {name: frame for name, frame in committed.items() if len(own_experiment_rows(frame))}
    text += "".join(committed_run_text(name, frame) for name, frame in committed.items() if name not in own_runs)
    if len(beyond):
        b = verdict_tally(beyond)
        text_beyond = (f" Beyond the paper (chapter 6: the paper's claim measured as later work measures it), of "
                       f"{b['total']} results {b['holds']} side with the paper, {b['against']} with the findings "
                       f"against it and {b['total'] - b['holds'] - b['against']} with neither.")
    else:
        text_beyond = ""
    own = own_experiment_rows(headlines)
    if own.empty:
        text += " The book's own experiment (chapter 5) has recorded no result in this build."
    for _, h in own.iterrows():
        verdict = _OWN_VERDICTS.get(h["direction_holds"], _cell(h["direction_holds"]))
        text += (f" The book's own experiment tests what the paper posits in its introduction (§1) but does not "
                 f"test: {_cell(h['result'])}. Ours: {_cell(h['ours'])}{_mde_text(h)}, {verdict}.")
    text += "".join(committed_run_text(name, frame) for name, frame in own_runs.items())
    return text + text_beyond
