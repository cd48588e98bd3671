"""MMLU multiple-choice questions and seeded answer-order shuffles (paper §3, Table 2, §C.1).

The paper measures the accuracy *spread* on MMLU (Hendrycks et al., 2021): accuracy under 3
instructions x 3 orderings of the answer options, zero-shot. This module loads the questions
(57 subjects; 14,042 ``test`` and 285 ``dev`` questions) and makes the orderings with
:func:`shuffle_choices` / :func:`choice_orderings`.

Sources: the offline mirror's ``mmlu/{split}/{subject}_{split}.csv`` (header
``question,choice0,choice1,choice2,choice3,answer``, answer an index 0-3), or online the
Hugging Face dataset ``cais/mmlu`` (config ``all``).
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np
import pandas as pd

from ifhelpers.data.sources import (
    DataFormatError,
    DataNotFoundError,
    DataSelectionError,
    HF_SOURCES,
    load_hf,
    mirror_root,
    note_malformed,
    read_delimited,
    rng_for,
)

__all__ = ["SPLITS", "LETTERS", "load_subjects", "load_mmlu", "format_subject", "shuffle_choices",
           "choice_orderings"]

SPLITS = ("test", "dev")
LETTERS = ("A", "B", "C", "D")
_COLUMNS = ["question_id", "subject", "split", "question", "A", "B", "C", "D", "answer", "answer_index"]
_ONLINE: dict[str, pd.DataFrame] = {}


def format_subject(subject: str) -> str:
    """The subject as the prompts write it (§C.1): ``"high_school_mathematics"`` -> ``"high school mathematics"``."""
    return subject.replace("_", " ")


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise DataSelectionError(f"Unknown MMLU split {split!r}.\n  valid choices: {', '.join(SPLITS)}")


def _online(split: str) -> pd.DataFrame:
    """All questions of a split from ``cais/mmlu`` (config ``all``), in the tidy columns."""
    if split not in _ONLINE:
        name, config = HF_SOURCES["mmlu"]
        raw = load_hf(name, split=split, config=config)
        choices = raw["choices"].map(list)
        frame = pd.DataFrame(
            {
                "subject": raw["subject"],
                "question": raw["question"],
                **{letter: choices.map(lambda c, i=i: c[i] if len(c) == 4 else None) for i, letter in enumerate(LETTERS)},
                "answer_index": raw["answer"],
            }
        )
        frame["answer_index"] = frame["answer_index"].astype(int)
        frame = frame.sort_values("subject", kind="stable").reset_index(drop=True)
        _ONLINE[split] = frame
    return _ONLINE[split].copy()


def load_subjects(split: str = "test", data_dir: str | os.PathLike | None = None) -> list[str]:
    """The MMLU subjects (57), sorted; file-name form, e.g. ``"high_school_mathematics"``."""
    _check_split(split)
    root = mirror_root(data_dir)
    if root is None:
        return sorted(_online(split)["subject"].unique())
    folder = root / "mmlu" / split
    subjects = sorted(p.name[: -len(f"_{split}.csv")] for p in folder.glob(f"*_{split}.csv"))
    if not subjects:
        raise DataNotFoundError(
            f"No MMLU {split} files.\n  expected: mmlu/{split}/<subject>_{split}.csv in the offline mirror\n"
            f"  looked in: {folder}\n  what to do: point IFHELPERS_DATA at a complete copy of shared/data, "
            f"or unset it to load cais/mmlu from Hugging Face."
        )
    return subjects


def load_mmlu(
    split: str = "test",
    subjects: Sequence[str] | str | None = None,
    n_questions: int | None = None,
    seed: int = 0,
    data_dir: str | os.PathLike | None = None,
) -> pd.DataFrame:
    """MMLU questions (§3, Table 2 "MMLU"; §C.1).

    ``subjects`` restricts to some subjects (file-name form; see :func:`load_subjects`).
    ``n_questions`` keeps at most that many questions *per subject*, drawn without
    replacement by a generator seeded from ``(seed, split, subject)`` alone, so the same
    arguments always give the same questions whichever other subjects are loaded; rows stay
    in file order.

    Columns
        question_id : str    ``"<subject>/<split>/<row>"``, row = 0-based position in the
                             subject's file (stable across subsamples and shuffles).
        subject : str        e.g. ``"high_school_mathematics"`` (see :func:`format_subject`).
        split : str          ``"test"`` or ``"dev"``.
        question : str
        A, B, C, D : str     the answer options in the original order.
        answer : str         the correct letter, ``"A"``-``"D"``.
        answer_index : int   0-3.

    Malformed rows (wrong number of fields, an empty question or option, an answer outside
    0-3) are left out, counted in ``attrs["n_malformed"]`` and warned about.
    """
    _check_split(split)
    if n_questions is not None and int(n_questions) < 1:
        raise DataSelectionError(f"n_questions must be a positive int or None, got {n_questions!r}")
    available = load_subjects(split, data_dir)
    if isinstance(subjects, str):
        subjects = [subjects]
    if subjects is None:
        subjects = available
    subjects = list(dict.fromkeys(subjects))
    unknown = [s for s in subjects if s not in available]
    if unknown or not subjects:
        raise DataSelectionError(
            f"Unknown MMLU subject(s) {unknown or subjects!r} for split {split!r}.\n"
            f"  valid choices ({len(available)}): {', '.join(available)}"
        )
    root = mirror_root(data_dir)
    parts, malformed = [], []
    if root is None:
        allq = _online(split)
        for subject in subjects:
            part = allq[allq["subject"] == subject].copy()
            part["_row"] = np.arange(len(part))
            parts.append(part)
    else:
        required = ["question", "choice0", "choice1", "choice2", "choice3", "answer"]
        for subject in subjects:
            path = root / "mmlu" / split / f"{subject}_{split}.csv"
            if not path.is_file():
                raise DataNotFoundError(
                    f"Missing MMLU file.\n  expected: mmlu/{split}/{subject}_{split}.csv\n"
                    f"  looked in: {path}\n  what to do: point IFHELPERS_DATA at a complete copy of "
                    f"shared/data, or unset it to load cais/mmlu from Hugging Face."
                )
            raw, bad = read_delimited(path, required, sep=",", what=f"MMLU {subject} {split}")
            ok = raw["answer"].str.strip().isin(["0", "1", "2", "3"])
            for col in required[:-1]:
                ok &= raw[col].str.strip() != ""
            bad += [(ln, "empty field or answer not in 0-3") for ln in raw.loc[~ok, "__line__"]]
            malformed += [(str(path), ln, why) for ln, why in bad]
            raw = raw[ok]
            parts.append(
                pd.DataFrame(
                    {
                        "subject": subject,
                        "question": raw["question"],
                        **{letter: raw[f"choice{i}"] for i, letter in enumerate(LETTERS)},
                        "answer_index": raw["answer"].str.strip().astype(int),
                        "_row": raw["__row__"],
                    }
                )
            )
    frame = pd.concat(parts, ignore_index=True)
    frame["split"] = split
    frame["answer"] = frame["answer_index"].map(dict(enumerate(LETTERS)))
    frame["question_id"] = frame["subject"] + "/" + split + "/" + frame["_row"].astype(str)
    frame = frame[_COLUMNS]
    if n_questions is not None:
        keep = []
        for subject, idx in frame.groupby("subject", sort=False).indices.items():
            if len(idx) > n_questions:
                idx = rng_for(seed, "mmlu", split, subject).choice(idx, size=int(n_questions), replace=False)
            keep.extend(idx)
        frame = frame.iloc[np.sort(keep)].reset_index(drop=True)
    if frame.empty:
        raise DataFormatError(f"No valid MMLU {split} question for subjects {subjects}: every row is malformed")
    frame.attrs.update(n_malformed=0, malformed=[])
    by_file: dict[str, list] = {}
    for path, ln, why in malformed:
        by_file.setdefault(path, []).append((ln, why))
    for path, bad in by_file.items():
        note_malformed(frame, bad, f"MMLU {split}", path)
    return frame


def shuffle_choices(questions: pd.DataFrame, seed: int) -> pd.DataFrame:
    """The questions with their options in a seeded random order (§3 footnote 3, §C.1).

    Each question's permutation comes from a generator seeded by ``(seed, question_id)``,
    so it does not depend on row order or on which other questions are present. Returns a
    copy with ``A``-``D``, ``answer`` and ``answer_index`` remapped, and a new column
    ``permutation``: a tuple ``p`` with new option ``k`` = original option ``p[k]``.
    """
    out = questions.copy()
    options = questions[list(LETTERS)].to_numpy()
    perms = [tuple(int(i) for i in rng_for(seed, "mmlu-shuffle", qid).permutation(4))
             for qid in questions["question_id"]]
    new = np.array([[row[p] for p in perm] for row, perm in zip(options, perms)], dtype=object).reshape(-1, 4)
    for k, letter in enumerate(LETTERS):
        out[letter] = new[:, k] if len(out) else []
    out["answer_index"] = [perm.index(a) for perm, a in zip(perms, questions["answer_index"])]
    out["answer"] = out["answer_index"].map(dict(enumerate(LETTERS)))
    out["permutation"] = perms
    return out


def choice_orderings(
    questions: pd.DataFrame, n_orderings: int = 3, seed: int = 0, include_original: bool = True
) -> pd.DataFrame:
    """``n_orderings`` versions of every question stacked, with an ``ordering`` column (§C.1).

    Ordering 0 is the original order when ``include_original`` (the paper's 3 orderings);
    ordering ``k`` otherwise uses :func:`shuffle_choices` with seed ``seed + k``. Columns: those
    of the input plus ``ordering`` (int) and ``permutation`` (tuple).
    """
    parts = []
    for k in range(n_orderings):
        if include_original and k == 0:
            part = questions.copy()
            part["permutation"] = [(0, 1, 2, 3)] * len(part)
        else:
            part = shuffle_choices(questions, seed + k)
        part.insert(0, "ordering", k)
        parts.append(part)
    return pd.concat(parts, ignore_index=True)
