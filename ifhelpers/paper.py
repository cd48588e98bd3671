"""The paper's own reported numbers (Fierro, Li, Søgaard 2024), one CSV per table.

These are *the paper's* values, typed from the paper and kept apart from anything we compute:
every table or figure that shows them labels them as the paper's. The CSVs live in
``paper_tables/`` beside this file, one per table (``table1.csv``, ``table2.csv``, ...), each with a
``model`` column and the paper's column names.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

TABLES_DIR = Path(__file__).with_name("paper_tables")
SOURCE_LABEL = "paper (Fierro et al. 2024)"


def table(name: str | int) -> pd.DataFrame:
    """The paper's table ``name`` (e.g. ``1`` or ``"table1"``), with a ``source`` column saying so."""
    stem = f"table{name}" if isinstance(name, int) or str(name).isdigit() else str(name)
    path = TABLES_DIR / f"{stem}.csv"
    if not path.exists():
        known = sorted(p.stem for p in TABLES_DIR.glob("*.csv"))
        raise FileNotFoundError(f"No transcription of the paper's {stem} at {path}; available: {known}")
    frame = pd.read_csv(path)
    frame.insert(0, "source", SOURCE_LABEL)
    return frame
