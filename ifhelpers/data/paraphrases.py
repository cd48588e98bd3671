"""Paraphrase pairs and paraphrase sets for the vector-space analysis (paper §2, Table 1, §B.1).

Table 1 compares cos(paraphrases) - cos(non-paraphrases) on three datasets:

* MRPC: sentence pairs labelled paraphrase / not paraphrase (:func:`load_mrpc_pairs`);
* TaPaCo: sets of paraphrases from Tatoeba (:func:`load_tapaco_sets`);
* ParaRel: all queries of one fact (:func:`ifhelpers.data.pararel.paraphrase_sets`).

Sets share one tidy shape, so Eq. 2-4 need one implementation:

    set_id : str     the paraphrase set; rows with the same id are paraphrases of each other.
    item_id : int    position of the sentence inside its set (or the source's sentence id).
    text : str
    source : str     where the set comes from; tables should print it.

Offline, TaPaCo is not available. :func:`load_tapaco_sets` then returns the MSRP and
Opinosis paraphrase groups of White et al. (2015) from the mirror as a stand-in, with
``source == "stand-in: msrp/opinosis paraphrase groups"`` on every row and in
``attrs["source"]``, so no table can mistake it for TaPaCo.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from ifhelpers.data.becel import load_task_split
from ifhelpers.data.sources import (
    DataSelectionError,
    HF_SOURCES,
    load_hf,
    locate,
    mirror_root,
    note_malformed,
    read_delimited,
    rng_for,
)

__all__ = [
    "TAPACO_SOURCE",
    "STAND_IN_SOURCE",
    "load_mrpc_pairs",
    "load_tapaco_sets",
    "load_grouped_paraphrases",
    "subsample_sets",
]

TAPACO_SOURCE = "tapaco"
STAND_IN_SOURCE = "stand-in: msrp/opinosis paraphrase groups"
_SET_COLUMNS = ["set_id", "item_id", "text", "source"]
_MRPC_SPLITS = ("train", "validation", "test")


def load_mrpc_pairs(split: str = "test", data_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """MRPC sentence pairs, paraphrases and non-paraphrases (§2, Table 1 "MRPC").

    The non-paraphrases are MRPC's own negative pairs (similar sentences that do not mean
    the same), as in the paper. The pairs come from BECEL's copy of MRPC (the GLUE splits, with
    the test labels of the original MSR corpus), in the mirror or online from BECEL's GitHub
    at the pinned commit; not from Hugging Face ``nyu-mll/glue``, whose ``test`` labels are
    hidden (-1). ``split`` is ``"train"``, ``"validation"``, ``"test"`` (default) or ``"all"``.

    Columns
        pair_id : str         ``"<split>/<row>"``.
        split : str
        text_a, text_b : str  the two sentences.
        label : int           1 = paraphrase (equivalent), 0 = not.
        is_paraphrase : bool
        source : str          ``"mrpc"``.
    """
    splits = _MRPC_SPLITS if split == "all" else (split,)
    if split != "all" and split not in _MRPC_SPLITS:
        raise DataSelectionError(
            f"Unknown MRPC split {split!r}.\n  valid choices: {', '.join(_MRPC_SPLITS + ('all',))}"
        )
    parts, n_malformed, malformed = [], 0, []
    for sp in splits:
        frame = load_task_split("mrpc", sp, data_dir)
        n_malformed += frame.attrs["n_malformed"]
        malformed += frame.attrs["malformed"]
        parts.append(frame[["split", "row", "text_a", "text_b", "label"]])
    out = pd.concat(parts, ignore_index=True)
    out.insert(0, "pair_id", out["split"] + "/" + out["row"].astype(str))
    out = out.drop(columns="row")
    out["is_paraphrase"] = out["label"] == 1
    out["source"] = "mrpc"
    out.attrs.update(source="mrpc", n_malformed=n_malformed, malformed=malformed)
    return out


def load_grouped_paraphrases(
    corpus: str = "both", data_dir: str | os.PathLike | None = None
) -> pd.DataFrame:
    """The MSRP and/or Opinosis paraphrase groups of White et al. (2015), from the mirror.

    ``corpus`` is ``"msrp"`` (859 sentences, 274 groups), ``"opinosis"`` (669, 163) or
    ``"both"``. Columns as in the module docstring plus ``corpus``; ``set_id`` is
    ``"msrp:<group>"`` / ``"opinosis:<group>"``; ``source`` is :data:`STAND_IN_SOURCE`.
    Offline only (the corpora are not on the Hugging Face Hub).
    """
    corpora = ("msrp", "opinosis") if corpus == "both" else (corpus,)
    for c in corpora:
        if c not in ("msrp", "opinosis"):
            raise DataSelectionError(f"Unknown paraphrase-group corpus {c!r}.\n  valid choices: msrp, opinosis, both")
    parts = []
    frame_malformed = []
    for c in corpora:
        base = f"paraphrase_sets/{c}_paraphrase_grouped/{c}_distribute"
        phrases_path = locate(f"{base}/phrases.txt", data_dir, None, what=f"{c} paraphrase sentences")
        groups_path = locate(f"{base}/phrase_groups.csv", data_dir, None, what=f"{c} paraphrase groups")
        with open(phrases_path, encoding="utf-8") as fh:
            phrases = [line.rstrip("\n").rstrip("\r") for line in fh]
        if phrases and phrases[-1] == "":
            phrases.pop()
        groups, bad = read_delimited(groups_path, ["phrase_index", "paraphrase_group_index"], sep=",",
                                     what=f"{c} phrase_groups.csv")
        idx = pd.to_numeric(groups["phrase_index"], errors="coerce")
        grp = pd.to_numeric(groups["paraphrase_group_index"], errors="coerce")
        ok = idx.notna() & grp.notna() & idx.between(0, len(phrases) - 1)
        ok_np = ok.to_numpy(dtype=bool)
        texts = [phrases[int(i)].strip() if good else "" for i, good in zip(idx.fillna(-1), ok_np)]
        empty = np.array([t == "" for t in texts]) & ok_np
        for ln in groups["__line__"].to_numpy()[~ok_np | empty]:
            bad.append((int(ln), "phrase_index/paraphrase_group_index invalid or empty sentence"))
        keep = ok_np & ~empty
        part = pd.DataFrame(
            {
                "set_id": [f"{c}:{int(g)}" for g in grp[keep]],
                "item_id": idx[keep].astype(int).to_numpy(),
                "text": np.array(texts, dtype=object)[keep],
                "source": STAND_IN_SOURCE,
                "corpus": c,
            }
        )
        frame_malformed.append((bad, groups_path))
        parts.append(part)
    out = pd.concat(parts, ignore_index=True)
    out.attrs.update(source=STAND_IN_SOURCE, n_malformed=0, malformed=[])
    for bad, path in frame_malformed:
        note_malformed(out, bad, "paraphrase groups", path)
    return out


def load_tapaco_sets(
    n_sets: int | None = None,
    min_size: int = 2,
    seed: int = 0,
    data_dir: str | os.PathLike | None = None,
) -> pd.DataFrame:
    """Paraphrase sets for Table 1's "TaPaCo" column (§2, Eq. 2-4).

    Online: Hugging Face ``community-datasets/tapaco`` (the former ``tapaco``), config ``en``
    (158,053 English sentences); ``set_id`` is TaPaCo's ``paraphrase_set_id``, ``item_id`` its
    ``sentence_id``, ``source`` = ``"tapaco"``.

    Offline (a mirror is set): TaPaCo is not in the mirror, so the MSRP + Opinosis paraphrase
    groups stand in (:func:`load_grouped_paraphrases`), labelled
    ``source = "stand-in: msrp/opinosis paraphrase groups"`` on every row and in
    ``attrs["source"]``. Longer news/review sentences than Tatoeba's: expect different
    absolute cosines; compare models on the same source only.

    Sets with fewer than ``min_size`` sentences are dropped; ``n_sets`` keeps that many sets
    chosen with ``seed`` (see :func:`subsample_sets`). Columns: ``set_id``, ``item_id``,
    ``text``, ``source`` (plus ``corpus`` for the stand-in).
    """
    if mirror_root(data_dir) is None:
        name, config = HF_SOURCES["tapaco"]
        raw = load_hf(name, split="train", config=config)
        sets = pd.DataFrame({"set_id": raw["paraphrase_set_id"].astype(str),
                             "item_id": pd.to_numeric(raw["sentence_id"], errors="coerce").fillna(-1).astype(int),
                             "text": raw["paraphrase"], "source": TAPACO_SOURCE})
        sets.attrs.update(source=TAPACO_SOURCE, n_malformed=0, malformed=[])
    else:
        sets = load_grouped_paraphrases("both", data_dir)
    return subsample_sets(sets, n_sets=n_sets, min_size=min_size, seed=seed)


def subsample_sets(sets: pd.DataFrame, n_sets: int | None = None, min_size: int = 2, seed: int = 0) -> pd.DataFrame:
    """Keep sets of at least ``min_size`` rows, then at most ``n_sets`` of them.

    The sets kept are chosen by a generator seeded from ``seed`` over the sorted set ids, so
    the same arguments give the same rows whatever the input row order. Rows keep their
    order; ``attrs`` are carried over.
    """
    sizes = sets.groupby("set_id")["text"].transform("size")
    out = sets[sizes >= min_size]
    if n_sets is not None:
        ids = np.array(sorted(out["set_id"].unique()), dtype=object)
        if len(ids) > n_sets:
            chosen = set(rng_for(seed, "paraphrase-sets").choice(ids, size=int(n_sets), replace=False))
            out = out[out["set_id"].isin(chosen)]
    out = out.reset_index(drop=True)
    out.attrs = dict(sets.attrs)
    if out.empty:
        raise DataSelectionError(f"No paraphrase set has at least {min_size} sentences")
    return out
