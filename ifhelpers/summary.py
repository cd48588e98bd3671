"""The reproduction summary page (``notebooks/summary.md``): gather what the chapters wrote.

Each chapter writes its headline rows in its last cell (:func:`ifhelpers.book.finish`); this module
reads them back for the summary page: which chapters are missing (:func:`missing_notes`), which
model pairs were compared and whether they share a family (:func:`model_pairs`), the table of
results per chapter (:func:`results_tables`) and the wall time of each chapter (:func:`chapter_times`).
Book layer: text and tables only, nothing is computed here.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import yaml

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
        try:
            note = registry.family_note([base, *tuned_list])
        except (KeyError, ValueError):  # a Hub id or folder the registry does not know: its family is not known
            note = ""
        text = (f"* **{base}** (base) against **{', '.join(tuned_list)}** (instruction-tuned), in "
                f"{', '.join(f'{{doc}}`{c}`' for c in where)}.")
        if note:
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
