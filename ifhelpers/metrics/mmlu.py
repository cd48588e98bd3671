"""MMLU accuracy and its spread across instructions (paper §3, Table 2, App. C.1).

Pure: arrays or tidy frames in, numbers out; nothing here imports the rest of the package
except its sibling metric modules.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ifhelpers.metrics.validation import check_columns




def mmlu_predictions(choice_logprobs) -> np.ndarray:
    """Predicted option per question: argmax over the option letters' log-probs (§3).

    ``choice_logprobs`` is ``(n, 4)``, the log-probability of the answer letters A-D
    after the prompt. Ties go to the first (lowest) option, as ``np.argmax`` does.
    Returns an int array (n,) of option indices 0-3.

    paper: §3 MMLU prediction
    """
    lp = np.asarray(choice_logprobs, dtype=np.float64)
    if lp.ndim != 2 or lp.shape[0] == 0 or lp.shape[1] < 2:
        raise ValueError(f"choice_logprobs must be (n, n_choices>=2) with n>0; got {lp.shape}")
    if np.isnan(lp).any():
        raise ValueError("choice_logprobs contains NaN")
    return np.argmax(lp, axis=1)



def mmlu_spread(
    frame: pd.DataFrame,
    instruction: str = "instruction",
    shuffle: str = "shuffle",
    correct: str = "correct",
) -> pd.DataFrame:
    """Per-shuffling accuracy of each instruction and its spread (§3, App. C.1).

    ``frame`` is tidy: one row per (instruction, shuffle, question) with a boolean or
    0/1 ``correct``. Accuracy of a setup is the share of its questions answered
    correctly (pooled over subjects). The spread is max − min accuracy across the
    instructions, computed within each shuffling of the options.

    Returns
    -------
    DataFrame indexed by shuffle: one accuracy column per instruction and ``spread``.
    """
    check_columns(frame, (instruction, shuffle, correct), "MMLU results")
    if frame[correct].isna().any():
        raise ValueError(f"column {correct!r} contains missing values")
    values = frame[correct].astype(float)
    if not values.isin([0.0, 1.0]).all():
        raise ValueError(f"column {correct!r} must be boolean or 0/1")
    table = (
        frame.assign(_correct=values)
        .groupby([shuffle, instruction])["_correct"]
        .mean()
        .unstack(instruction)
    )
    if table.isna().any().any():
        raise ValueError("every (shuffle, instruction) setup must have results")
    if table.shape[1] < 2:
        raise ValueError("spread needs at least 2 instructions per shuffling")
    table["spread"] = table.max(axis=1) - table.min(axis=1)
    table.columns.name = None
    return table


def mmlu_summary(frame: pd.DataFrame, **columns) -> pd.Series:
    """MMLU "Acc." and "Spread" of Table 2 (App. C.1).

    ``accuracy`` is the mean over all instruction × shuffling setups (3 × 3 = 9 in the
    paper); ``spread`` is the per-shuffling spread of :func:`mmlu_spread` averaged over
    shufflings. Both are fractions (Table 2 shows percent). ``columns`` renames the
    ``instruction``/``shuffle``/``correct`` columns as in :func:`mmlu_spread`.

    paper: Table 2 MMLU
    """
    table = mmlu_spread(frame, **columns)
    acc = table.drop(columns="spread")
    return pd.Series(
        {
            "accuracy": float(acc.to_numpy().mean()),
            "spread": float(table["spread"].mean()),
            "n_setups": int(acc.size),
        }
    )
