"""BECEL downstream-task splits and consistency sets (paper §3 Table 2 "BECEL", §C.2 Table 6).

BECEL (Jang et al., 2022) perturbs the evaluation data of downstream tasks and checks that a
fine-tuned model's predictions move (or stay) as they should. The paper uses four tasks
(label ids as in GLUE / SuperGLUE / Hugging Face, which BECEL keeps):

* ``snli``: does the premise entail the hypothesis? 0 entailment, 1 neutral, 2 contradiction;
* ``rte``: does sentence1 entail sentence2? 0 entailment, 1 not_entailment;
* ``mrpc``: is sentence2 a paraphrase of sentence1? 0 not_equivalent, 1 equivalent;
* ``wic``: is ``word`` used in the same sense in both? 0 different sense, 1 same sense.

Consistency kinds:

* ``semantic``: the second text paraphrased; consistent when the prediction stays the same.
* ``negational``: the second text negated, with its new gold label; consistent when the
  prediction changes (paper's τ for Neg.).
* ``symmetric``: the two texts swapped; consistent when the prediction stays the same.
* ``transitive`` (SNLI and WiC only, not in the paper's tables): a pair composed from two
  originating pairs; its ``label`` is a constraint (see :func:`load_consistency_set`).

WiC's negational set keeps the label in every row of the mirror (``perturbed_label ==
label``: negating ``sentence2`` does not change the target word's sense), yet the paper's τ
counts a negational pair as consistent only when the prediction *changes*; this fits WiC's
"Neg" column in Table 6 being near 0.1. ``expect`` follows the paper; ``perturbed_label`` allows a
label-aware variant.

Where the perturbed rows come from (checked on the mirror): semantic and negational sets
are built from SNLI ``test``, RTE ``validation``, MRPC ``test`` and WiC ``validation``; the
symmetric sets of RTE, MRPC and WiC are *training* pairs swapped (SNLI's: ``test``
contradictions swapped). :func:`training_splits` says how the models are trained around that.

Sources: the mirror's ``becel/<task>/<name>.tsv`` or the same files from
github.com/MJ-Jang/BECEL at the pinned commit; for SNLI training data online,
Hugging Face ``stanfordnlp/snli``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ifhelpers.data.sources import (
    DataFormatError,
    DataSelectionError,
    GitHubFile,
    HF_SOURCES,
    load_hf,
    locate,
    mirror_root,
    note_malformed,
    read_delimited,
    rng_for,
)

__all__ = [
    "TASKS",
    "LABEL_NAMES",
    "SPLITS",
    "CONSISTENCY_KINDS",
    "TRANSITIVE_ALLOWED",
    "load_task_split",
    "load_consistency_set",
    "training_splits",
    "TrainingSplits",
]

TASKS = ("snli", "rte", "mrpc", "wic")
LABEL_NAMES = {
    "snli": {0: "entailment", 1: "neutral", 2: "contradiction"},
    "rte": {0: "entailment", 1: "not_entailment"},
    "mrpc": {0: "not_equivalent", 1: "equivalent"},
    "wic": {0: "different_sense", 1: "same_sense"},
}
"""Label ids of each task (the GLUE / SuperGLUE / HF conventions BECEL keeps)."""

SPLITS = {
    "snli": ("validation", "test"),
    "rte": ("train", "validation"),
    "mrpc": ("train", "validation", "test"),
    "wic": ("train", "validation"),
}
"""Base splits present in the BECEL data (SNLI's train split is not in BECEL)."""

CONSISTENCY_KINDS = {
    "snli": ("semantic", "negational", "symmetric", "transitive"),
    "rte": ("semantic", "negational", "symmetric"),
    "mrpc": ("semantic", "negational", "symmetric"),
    "wic": ("semantic", "negational", "symmetric", "transitive"),
}

TRANSITIVE_ALLOWED = {
    "snli": {2: (2,), 3: (1, 2), 4: (0, 1)},
    "wic": {0: (0,), 1: (1,)},
}
"""Predictions that satisfy a transitive row's ``label`` (BECEL ``src/evaluation_metrics.py``):
for SNLI, 2 = must be contradiction, 3 = must not be entailment, 4 = must not be
contradiction; for WiC the label is the gold label."""

# Original column names per task: (first text, second text)
_TEXTS = {"snli": ("premise", "hypothesis"), "rte": ("sentence1", "sentence2"),
          "mrpc": ("sentence1", "sentence2"), "wic": ("sentence1", "sentence2")}
_PERTURBED = {"semantic": ("_paraphrase", "start_para", "end_para"),
              "negational": ("_neg", "start_neg", "end_neg")}
_WIC_SPANS = ["start1", "end1", "start2", "end2"]


def _check(task: str, name: str | None = None, kind: str = "split") -> None:
    if task not in TASKS:
        raise DataSelectionError(f"Unknown BECEL task {task!r}.\n  valid choices: {', '.join(TASKS)}")
    if name is None:
        return
    valid = SPLITS[task] if kind == "split" else CONSISTENCY_KINDS[task]
    if name not in valid:
        extra = ""
        if kind == "split" and name == "train" and task == "snli":
            extra = " (BECEL has no SNLI train split; see training_splits('snli'))"
        elif kind == "split" and name == "test":
            extra = f" ({task.upper()} test labels are not public; BECEL ships none)"
        raise DataSelectionError(
            f"Unknown {kind} {name!r} for BECEL task {task!r}{extra}.\n  valid choices: {', '.join(valid)}"
        )


def _read(task: str, name: str, data_dir, required: list[str]) -> tuple[pd.DataFrame, list, str]:
    path = locate(
        f"becel/{task}/{name}.tsv",
        data_dir,
        GitHubFile.from_source("becel", f"{task}/{name}.tsv"),
        what=f"BECEL {task} {name} set",
    )
    raw, bad = read_delimited(path, required, sep="\t", what=f"BECEL {task}/{name}.tsv")
    return raw, bad, str(path)


def _int_column(raw: pd.DataFrame, col: str, ok: np.ndarray, bad: list, allowed=None) -> pd.Series:
    """Parse an integer column; rows where it fails are recorded in ``bad`` and set False in ``ok``."""
    values = pd.to_numeric(raw[col].str.strip(), errors="coerce")
    fails = (values.isna() | (values != values.round())).to_numpy(dtype=bool, copy=True)
    if allowed is not None:
        fails |= ~values.isin(list(allowed)).to_numpy()
    _mark(raw, ok, fails, bad, f"{col!r} missing or not a valid value")
    return values


def _mark(raw: pd.DataFrame, ok: np.ndarray, fails: np.ndarray, bad: list, why: str) -> None:
    """Record rows that are still ``ok`` but fail a check, then clear them in ``ok`` (in place)."""
    for ln in raw["__line__"].to_numpy()[fails & ok]:
        bad.append((int(ln), why))
    ok &= ~fails


def load_task_split(task: str, split: str, data_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """One base split of a BECEL task, for fine-tuning and accuracy (§C.2, Table 6 "Acc.").

    Columns
        task : str
        split : str
        row : int        0-based position in the file; BECEL's transitive ``originated_idx``
                         refers to these positions (SNLI ``test``, WiC ``train``).
        index : int      BECEL's ``index`` column where the file has one, else ``row``.
        text_a : str     SNLI ``premise``; RTE/MRPC/WiC ``sentence1``.
        text_b : str     SNLI ``hypothesis``; RTE/MRPC/WiC ``sentence2``.
        label : int      see :data:`LABEL_NAMES`.
        WiC only: word : str, start_a, end_a, start_b, end_b : int  (character span of the
        target word in ``text_a`` / ``text_b``).

    Malformed rows (wrong field count, empty text, a label that is not a valid id) are left
    out, counted in ``attrs["n_malformed"]`` and warned about.
    """
    _check(task, split, "split")
    a, b = _TEXTS[task]
    required = [a, b, "label"] + (["word"] + _WIC_SPANS if task == "wic" else [])
    raw, bad, path = _read(task, split, data_dir, required)
    ok = np.ones(len(raw), dtype=bool)
    _mark(raw, ok, ((raw[a].str.strip() == "") | (raw[b].str.strip() == "")).to_numpy(), bad, "empty text")
    label = _int_column(raw, "label", ok, bad, LABEL_NAMES[task])
    frame = pd.DataFrame(
        {
            "task": task,
            "split": split,
            "row": raw["__row__"],
            "index": _index(raw),
            "text_a": raw[a],
            "text_b": raw[b],
            "label": label,
        }
    )
    if task == "wic":
        frame["word"] = raw["word"]
        for src, dst in zip(_WIC_SPANS, ["start_a", "end_a", "start_b", "end_b"]):
            frame[dst] = _int_column(raw, src, ok, bad)
    frame = frame[ok].reset_index(drop=True)
    for col in ["label", "start_a", "end_a", "start_b", "end_b"]:
        if col in frame:
            frame[col] = frame[col].astype(int)
    return _finish(frame, bad, f"BECEL {task} {split}", path)


def _index(raw: pd.DataFrame) -> pd.Series:
    if "index" in raw:
        values = pd.to_numeric(raw["index"], errors="coerce")
        return values.fillna(raw["__row__"]).astype(int)
    return raw["__row__"].astype(int)


def _finish(frame: pd.DataFrame, bad: list, what: str, path: str) -> pd.DataFrame:
    if frame.empty:
        raise DataFormatError(f"{what}: no valid row in {path} ({len(bad)} malformed)")
    frame.attrs.update(n_malformed=0, malformed=[])
    return note_malformed(frame, sorted(set(bad)), what, path)


def load_consistency_set(task: str, kind: str, data_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """A BECEL consistency set in one tidy shape (§3, §C.2 Table 6 "Sym/Sem/Neg").

    Each row is an original input and its perturbed version; a model predicts both.

    Columns
        task, kind : str
        row : int, index : int      position in the file; BECEL's ``index`` (else ``row``).
        text_a, text_b : str        the original pair, as in the file (SNLI premise /
                                    hypothesis; others sentence1 / sentence2).
        label : int                 gold label of the original pair; for ``transitive`` the
                                    constraint id (see :data:`TRANSITIVE_ALLOWED`).
        perturbed_a, perturbed_b : str   the perturbed pair (None for ``transitive``):
                                    semantic = (text_a, paraphrased text_b);
                                    negational = (text_a, negated text_b);
                                    symmetric = (text_b, text_a).
        perturbed_label : Int64     gold label of the perturbed pair where BECEL gives one
                                    (``neg_label`` of negational sets), else <NA>.
        expect : str                ``"same"`` (semantic, symmetric: consistent when the two
                                    predictions agree), ``"different"`` (negational), or
                                    ``"constraint"`` (transitive).
        tag : str                   negational only: BECEL's perturbation tag (e.g. "antonym").
        allowed_labels : tuple      transitive only: predictions that satisfy ``label``.
        origin_a, origin_b : int    transitive only: ``row`` of the two originating pairs in
                                    SNLI ``test`` / WiC ``train``.
        WiC only: word; start_a, end_a, start_b, end_b; perturbed_start_b, perturbed_end_b.

    Every negational row has both labels: a row missing one is malformed (counted, warned).
    """
    _check(task, kind, "consistency set")
    a, b = _TEXTS[task]
    required = [a, b, "label"]
    if kind in _PERTURBED:
        required.append(b + _PERTURBED[kind][0])
    if kind == "negational":
        required.append("neg_label")
    if kind == "transitive":
        required.append("originated_idx")
    wic = task == "wic"
    if wic:
        required += ["word"] + _WIC_SPANS + (list(_PERTURBED[kind][1:]) if kind in _PERTURBED else [])
    raw, bad, path = _read(task, kind, data_dir, required)
    ok = np.ones(len(raw), dtype=bool)
    _mark(raw, ok, ((raw[a].str.strip() == "") | (raw[b].str.strip() == "")).to_numpy(), bad, "empty text")
    allowed = TRANSITIVE_ALLOWED[task] if kind == "transitive" else LABEL_NAMES[task]
    frame = pd.DataFrame(
        {
            "task": task,
            "kind": kind,
            "row": raw["__row__"],
            "index": _index(raw),
            "text_a": raw[a],
            "text_b": raw[b],
            "label": _int_column(raw, "label", ok, bad, allowed),
        }
    )
    if kind in _PERTURBED:
        pert = raw[b + _PERTURBED[kind][0]]
        _mark(raw, ok, (pert.str.strip() == "").to_numpy(), bad, f"empty {b + _PERTURBED[kind][0]}")
        frame["perturbed_a"], frame["perturbed_b"] = raw[a], pert
    elif kind == "symmetric":
        frame["perturbed_a"], frame["perturbed_b"] = raw[b], raw[a]
    else:
        frame["perturbed_a"], frame["perturbed_b"] = None, None
    if kind == "negational":
        frame["perturbed_label"] = _int_column(raw, "neg_label", ok, bad, LABEL_NAMES[task])
        frame["tag"] = raw["tag"] if "tag" in raw else ""
    else:
        frame["perturbed_label"] = np.nan
    frame["expect"] = {"semantic": "same", "symmetric": "same", "negational": "different",
                       "transitive": "constraint"}[kind]
    if kind == "transitive":
        origins = raw["originated_idx"].str.split("|")
        good = origins.map(lambda o: len(o) == 2 and all(x.strip().isdigit() for x in o)).to_numpy(dtype=bool)
        _mark(raw, ok, ~good, bad, "originated_idx is not 'i|j'")
        frame["allowed_labels"] = frame["label"].map(lambda l: TRANSITIVE_ALLOWED[task].get(l))
        frame["origin_a"] = origins.map(lambda o: int(o[0]) if len(o) == 2 and o[0].strip().isdigit() else -1)
        frame["origin_b"] = origins.map(lambda o: int(o[1]) if len(o) == 2 and o[1].strip().isdigit() else -1)
    if wic:
        frame["word"] = raw["word"]
        spans = dict(zip(["start_a", "end_a", "start_b", "end_b"],
                         [_int_column(raw, c, ok, bad) for c in ["start1", "end1", "start2", "end2"]]))
        for k, v in spans.items():
            frame[k] = v
        if kind in _PERTURBED:
            frame["perturbed_start_b"] = _int_column(raw, _PERTURBED[kind][1], ok, bad)
            frame["perturbed_end_b"] = _int_column(raw, _PERTURBED[kind][2], ok, bad)
        elif kind == "symmetric":
            frame["perturbed_start_b"], frame["perturbed_end_b"] = spans["start_a"], spans["end_a"]
    frame = frame[ok].reset_index(drop=True)
    frame["label"] = frame["label"].astype(int)
    frame["perturbed_label"] = frame["perturbed_label"].astype("Int64")
    for col in ["start_a", "end_a", "start_b", "end_b", "perturbed_start_b", "perturbed_end_b"]:
        if col in frame:
            frame[col] = frame[col].astype(int)
    return _finish(frame, bad, f"BECEL {task} {kind}", path)


@dataclass(frozen=True)
class TrainingSplits:
    """Fine-tuning data for one BECEL task: ``train`` to fit, ``dev`` for early stopping,
    ``eval`` for accuracy; ``note`` says where each came from (cite it in the chapter)."""

    task: str
    train: pd.DataFrame = field(repr=False)
    dev: pd.DataFrame = field(repr=False)
    eval: pd.DataFrame = field(repr=False)
    note: str = ""


def _split_off(frame: pd.DataFrame, fraction: float, seed: int, task: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    n_dev = int(round(len(frame) * fraction))
    perm = rng_for(seed, "becel-dev", task).permutation(len(frame))
    dev_rows = np.sort(perm[:n_dev])
    mask = np.zeros(len(frame), dtype=bool)
    mask[dev_rows] = True
    return frame[~mask].reset_index(drop=True), frame[mask].reset_index(drop=True)


def training_splits(
    task: str, dev_fraction: float | None = None, seed: int = 0, data_dir: str | os.PathLike | None = None
) -> TrainingSplits:
    """The train / early-stopping / evaluation data used to fine-tune on a BECEL task (§C.2).

    The paper fine-tunes each model for 10 epochs with early stopping and reports accuracy
    and BECEL consistency. BECEL's data lacks some splits, so this fixes the substitutes:

    * ``snli``: BECEL has no SNLI train split (too large for the mirror too). With the mirror:
      train on a seeded ``1 - dev_fraction`` (default 0.8) of ``validation``, early-stop on
      the rest, evaluate on ``test`` (which the SNLI BECEL sets are built from, so no
      overlap). Online: train on Hugging Face ``stanfordnlp/snli`` ``train`` (unlabelled
      rows, label -1, dropped), early-stop on ``validation``, evaluate on ``test``.
    * ``rte``, ``wic``: no public test labels. Train on ``train`` minus a seeded
      ``dev_fraction`` (default 0.1) held out for early stopping; evaluate on ``validation``
      (which their semantic/negational sets are built from).
    * ``mrpc``: train on ``train``, early-stop on ``validation``, evaluate on ``test``.

    The symmetric sets of RTE, MRPC and WiC are swapped *training* pairs, so their
    consistency is measured on inputs seen (in the other order) during training.
    """
    _check(task)
    root = mirror_root(data_dir)
    if task == "snli":
        fraction = 0.2 if dev_fraction is None else dev_fraction
        test = load_task_split("snli", "test", data_dir)
        if root is None:
            name, config = HF_SOURCES["snli"]
            parts = []
            for split in ("train", "validation"):
                raw = load_hf(name, split=split, config=config)
                raw = raw[raw["label"] != -1].reset_index(drop=True)
                parts.append(pd.DataFrame({"task": "snli", "split": split, "row": np.arange(len(raw)),
                                           "index": np.arange(len(raw)), "text_a": raw["premise"],
                                           "text_b": raw["hypothesis"], "label": raw["label"].astype(int)}))
            train, dev = parts
            note = ("SNLI: train = Hugging Face stanfordnlp/snli train (label -1 dropped); early stopping on "
                    "its validation split; evaluation on BECEL's SNLI test.")
        else:
            train, dev = _split_off(load_task_split("snli", "validation", data_dir), fraction, seed, task)
            note = (f"SNLI: no train split offline (BECEL ships none), so train on a seeded {1 - fraction:.0%} of "
                    f"validation ({len(train)} pairs, seed={seed}), early-stop on the other {fraction:.0%} "
                    f"({len(dev)}), evaluate on test ({len(test)}), from which the SNLI BECEL sets are built. "
                    f"The paper trains on the full SNLI train set (550k pairs).")
        return TrainingSplits(task, train, dev, test, note)
    if task == "mrpc":
        train = load_task_split("mrpc", "train", data_dir)
        dev = load_task_split("mrpc", "validation", data_dir)
        test = load_task_split("mrpc", "test", data_dir)
        note = (f"MRPC: train on train ({len(train)}), early-stop on validation ({len(dev)}), evaluate on test "
                f"({len(test)}), from which the semantic and negational sets are built; the symmetric set is "
                f"the training pairs swapped.")
        return TrainingSplits(task, train, dev, test, note)
    fraction = 0.1 if dev_fraction is None else dev_fraction
    train, dev = _split_off(load_task_split(task, "train", data_dir), fraction, seed, task)
    evaluation = load_task_split(task, "validation", data_dir)
    note = (f"{task.upper()}: no test labels, so train on {1 - fraction:.0%} of train ({len(train)}), early-stop "
            f"on a seeded {fraction:.0%} held out from train ({len(dev)}, seed={seed}), evaluate on validation "
            f"({len(evaluation)}), from which the semantic and negational sets are built; the symmetric set is "
            f"the training pairs swapped.")
    return TrainingSplits(task, train, dev, evaluation, note)
