"""Where a chapter's tidy results go, so that runs for new models can be gathered into one table.

A chapter executed by ``ifhelpers run`` (or papermill) gets a ``results_dir`` parameter; every
tidy table it computes is written there as CSV with the run's name, the model and its role in
columns. Executed without one (the rendered book), nothing is written.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd


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
