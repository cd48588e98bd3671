"""Where a chapter's tidy results go, so that runs for new models can be gathered into one table.

A chapter executed by ``ifhelpers run`` (or papermill) gets a ``results_dir`` parameter; every
tidy table it computes is written there as CSV with the run's name, the model and its role in
columns. Executed without one (the rendered book), nothing is written, except each chapter's
*headlines* (:func:`save_headlines`): one row per result of the paper, kept in the book's build folder
for the reproduction summary page.
"""

from __future__ import annotations

import os
import time
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from ifhelpers.findings import HEADLINE_COLUMNS


def save_table(frame: pd.DataFrame, name: str, results_dir: str | Path | None) -> Path | None:
    """Write ``frame`` as ``<results_dir>/<name>.csv`` (no-op when ``results_dir`` is None)."""
    if results_dir is None:
        return None
    folder = Path(results_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.csv"
    frame.to_csv(path, index=False)
    return path


def load_tables(runs_dir: str | Path, name: str) -> pd.DataFrame:
    """Every run's ``<name>.csv`` under ``runs_dir/<run>/``, concatenated with a ``run`` column."""
    frames = []
    for path in sorted(Path(runs_dir).glob(f"*/{name}.csv")):
        frame = pd.read_csv(path)
        frame.insert(0, "run", path.parent.name)
        frames.append(frame)
    if not frames:
        return pd.DataFrame()
    return pd.concat(frames, ignore_index=True)


# --------------------------------------------------------------------------------------------------
# Headline findings: one tidy row per result of the paper, gathered by the reproduction summary page

def book_root(start: str | Path | None = None) -> Path | None:
    """The folder holding ``_toc.yml``: ``start`` (default: the working directory) or one above it.

    A chapter executed by ``jupyter-book build`` runs in its own folder (``notebooks/``) of the book
    being built, which may be a copy of the repository (the book test builds one in a temporary
    folder), so the root is found from where the kernel runs, not from this package's location.
    """
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "_toc.yml").is_file():
            return folder
    return None


def headlines_dir(start: str | Path | None = None) -> Path | None:
    """Where the book build keeps the chapters' headlines: ``$IFHELPERS_HEADLINES`` if set, else
    ``<book root>/_build/headlines`` (wiped with the Jupyter cache by ``make clean-book``); None when
    no book root is found."""
    override = os.environ.get("IFHELPERS_HEADLINES")
    if override:
        return Path(override)
    root = book_root(start)
    return None if root is None else root / "_build" / "headlines"


def cache_activity() -> str:
    """Whether the user cache was warm for this execution: the batches of forward passes
    (:data:`ifhelpers.model.cache.PARTS_WRITTEN`) and the fine-tuning checkpoints
    (:data:`ifhelpers.model.cache.CHECKPOINTS_WRITTEN`) this process computed and wrote. A chapter runs
    in a kernel of its own, so these count its own work only, not that of processes beside it."""
    from ifhelpers.model import cache

    parts, epochs = cache.PARTS_WRITTEN, cache.CHECKPOINTS_WRITTEN
    if parts == 0 and epochs == 0:
        return "warm (no forward pass or training computed)"
    done = [f"{parts} batches of forward passes" if parts else "", f"{epochs} training epochs" if epochs else ""]
    return f"cold or partly cold ({' and '.join(d for d in done if d)} computed)"


def save_headlines(rows: list[dict] | pd.DataFrame, chapter: str, results_dir: str | Path | None,
                   started: float | None = None) -> pd.DataFrame:
    """Write a chapter's headline findings as a tidy CSV and return them as a table.

    ``rows`` has one entry per result of the paper (keys of :data:`HEADLINE_COLUMNS`; build them with
    :func:`ifhelpers.findings.row`). ``started`` is the epoch time (``time.time()``) taken in the
    chapter's first code cell: the elapsed wall time, the time of execution and the cache state
    (:func:`cache_activity`) are added to every row. With a ``results_dir`` (``ifhelpers run``) the
    table goes to ``<results_dir>/headlines_<chapter>.csv``; without one (the book build) to
    ``<headlines_dir()>/<chapter>.csv``, which the reproduction summary page gathers.
    """
    frame = pd.DataFrame(list(rows) if not isinstance(rows, pd.DataFrame) else rows)
    frame["chapter"] = chapter
    now = time.time()
    frame["elapsed_s"] = round(now - started, 1) if started is not None else float("nan")
    frame["executed_at"] = datetime.fromtimestamp(now, timezone.utc).isoformat(timespec="seconds")
    frame["cache"] = cache_activity()
    frame["cpus"] = os.cpu_count()
    frame = frame.reindex(columns=HEADLINE_COLUMNS)
    if results_dir is not None:
        save_table(frame, f"headlines_{chapter}", results_dir)
        return frame
    folder = headlines_dir()
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        frame.to_csv(folder / f"{chapter}.csv", index=False)
    return frame


def load_headlines(folder: str | Path | None = None) -> pd.DataFrame:
    """Every chapter's headlines under ``folder`` (default :func:`headlines_dir`), in chapter order."""
    folder = headlines_dir() if folder is None else Path(folder)
    paths = sorted(folder.glob("*.csv")) if folder is not None and folder.is_dir() else []
    frames = [pd.read_csv(path, keep_default_na=False, na_values=[""]) for path in paths]
    if not frames:
        return pd.DataFrame(columns=HEADLINE_COLUMNS)
    return pd.concat(frames, ignore_index=True).reindex(columns=HEADLINE_COLUMNS)
