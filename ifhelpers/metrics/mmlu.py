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


#: How the spread of Table 2 is read (§3, footnote 3): max − min over the instructions of each one's
#: accuracy averaged over the shufflings (the headline), or max − min within each shuffling, averaged.
SPREAD_READINGS = ("instruction_mean", "per_shuffle")
#: The reading that Table 2's "Spread" is compared with (the other is reported beside it).
HEADLINE_READING = "instruction_mean"


def mmlu_cube(
    frame: pd.DataFrame,
    instruction: str = "instruction",
    shuffle: str = "shuffle",
    correct: str = "correct",
    question: str = "question_id",
) -> tuple[np.ndarray, list, list, list]:
    """A model's tidy MMLU results as a 0/1 array ``(questions, shufflings, instructions)``.

    ``frame`` has one row per (question, shuffle, instruction) with a boolean or 0/1 ``correct``;
    every question needs a result under every setup. Returns the cube and the labels of its three
    axes (questions, shufflings, instructions), each sorted. Resampling the first axis is the
    bootstrap over questions.
    """
    check_columns(frame, (question, instruction, shuffle, correct), "MMLU results")
    if frame[correct].isna().any():
        raise ValueError(f"column {correct!r} contains missing values")
    values = frame[correct].astype(float)
    if not values.isin([0.0, 1.0]).all():
        raise ValueError(f"column {correct!r} must be boolean or 0/1")
    table = (frame.assign(_correct=values)
             .pivot_table(index=question, columns=[shuffle, instruction], values="_correct", aggfunc="first")
             .sort_index(axis=1))
    shuffles = list(table.columns.get_level_values(0).unique())
    instructions = list(table.columns.get_level_values(1).unique())
    if table.isna().any().any() or table.shape[1] != len(shuffles) * len(instructions):
        raise ValueError("every question needs a result under every (shuffle, instruction) setup")
    if len(instructions) < 2:
        raise ValueError("spread needs at least 2 instructions")
    cube = table.to_numpy(dtype=float).reshape(len(table), len(shuffles), len(instructions))
    return cube, list(table.index), shuffles, instructions


def mmlu_spread(cube, reading: str = HEADLINE_READING):
    """The accuracy spread across instructions, max − min (§3; Sclar et al. 2024), from a
    ``(..., questions, shufflings, instructions)`` 0/1 array (:func:`mmlu_cube`; leading axes are
    kept, e.g. bootstrap resamples).

    §3 defines the spread as the min-max difference in accuracy across the instructions, and
    footnote 3 says that the three shufflings of the options are averaged. ``"instruction_mean"``
    reads that literally: each instruction's accuracy averaged over shufflings and questions, then
    max − min over instructions. ``"per_shuffle"`` takes max − min within each shuffling and then
    averages over shufflings; it is never smaller (the max − min of means is at most the mean of the
    max − min), so it inflates the spread. The default is :data:`HEADLINE_READING`.

    paper: Table 2 MMLU
    """
    if reading not in SPREAD_READINGS:
        raise ValueError(f"reading must be one of {SPREAD_READINGS}; got {reading!r}")
    arr = np.asarray(cube, dtype=np.float64)
    if arr.ndim < 3 or arr.shape[-1] < 2:
        raise ValueError(f"cube must be (..., questions, shufflings, instructions>=2); got {arr.shape}")
    if reading == "instruction_mean":
        acc = arr.mean(axis=(-3, -2))
        return acc.max(axis=-1) - acc.min(axis=-1)
    acc = arr.mean(axis=-3)
    return (acc.max(axis=-1) - acc.min(axis=-1)).mean(axis=-1)


def mmlu_summary(frame: pd.DataFrame, **columns) -> pd.Series:
    """MMLU "Acc." and "Spread" of Table 2 (App. C.1) for one model's tidy results (:func:`mmlu_cube`).

    ``accuracy`` is the mean over all instruction × shuffling setups (3 × 3 = 9 in the paper);
    ``spread`` is :func:`mmlu_spread` in the headline reading (:data:`HEADLINE_READING`), and
    ``spread_instruction_mean`` / ``spread_per_shuffle`` give both readings.
    Fractions (Table 2 shows percent). ``columns`` renames the columns as in :func:`mmlu_cube`.
    """
    cube, _, _, _ = mmlu_cube(frame, **columns)
    return pd.Series({"accuracy": float(cube.mean()), "spread": float(mmlu_spread(cube)),
                      "spread_instruction_mean": float(mmlu_spread(cube, "instruction_mean")),
                      "spread_per_shuffle": float(mmlu_spread(cube, "per_shuffle")),
                      "n_setups": int(cube.shape[1] * cube.shape[2])})
