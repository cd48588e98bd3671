"""Checks shared by the tidy-frame metrics: a frame has the columns a formula reads.

Pure: arrays or tidy frames in, numbers out; nothing here imports the rest of the package
except its sibling metric modules.
"""

from __future__ import annotations

import pandas as pd


def check_columns(frame: pd.DataFrame, columns, what: str) -> None:
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"{what} must be a pandas DataFrame; got {type(frame).__name__}")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} lacks column(s) {missing}; it has {list(frame.columns)}")
    if len(frame) == 0:
        raise ValueError(f"{what} is empty")
