"""BECEL accuracy and consistency (paper §3, App. C.2, Tables 2 and 6; Jang et al. 2022).

Pure: arrays or tidy frames in, numbers out; nothing here imports the rest of the package
except its sibling metric modules.
"""

from __future__ import annotations

import numpy as np


BECEL_KINDS = ("semantic", "symmetric", "negational")


def _aligned(a, b, names=("a", "b")):
    a = np.asarray(a)
    b = np.asarray(b)
    if a.ndim != 1 or b.ndim != 1:
        raise ValueError(f"{names[0]} and {names[1]} must be 1-D")
    if a.shape != b.shape:
        raise ValueError(f"length mismatch: {names[0]} has {a.size}, {names[1]} has {b.size}")
    if a.size == 0:
        raise ValueError("empty input")
    return a, b


def item_accuracy(predictions, labels) -> np.ndarray:
    """Per item, 1 where the prediction equals the gold label, else 0 (int array); its mean is BECEL's
    "Acc." (:func:`accuracy`), App. C.2, Table 6.
    """
    p, y = _aligned(predictions, labels, ("predictions", "labels"))
    return (p == y).astype(int)


def accuracy(predictions, labels) -> float:
    """Share of predictions equal to the gold labels (BECEL "Acc.", Table 6): the mean of
    :func:`item_accuracy`. Table 2's "BECEL Acc." is its mean over the four tasks.

    paper: Table 6 Acc.
    """
    return float(np.mean(item_accuracy(predictions, labels)))


def becel_item_consistency(pred_original, pred_perturbed, kind: str) -> np.ndarray:
    """Per item, 1 where the classifier behaves as BECEL's code asks, else 0 (int array); its mean is
    :func:`becel_consistency` (1 − τ of App. C.2, read as BECEL's code reads it).

    BECEL's ``src/evaluation_metrics.py`` (github.com/MJ-Jang/BECEL, commit 65851497)::

        semantic_inconsistency:  inconsistency = 1 - accuracy_score(prediction_original, prediction_paraphrase)
        symmetric_inconsistency: inconsistency = 1 - accuracy_score(prediction_original, prediction_symmetric)
        negational_inconsistency: inconsistency = accuracy_score(prediction_original, prediction_negated)

    so an item is consistent when its two predictions are equal (``"semantic"``: paraphrased input,
    ``"symmetric"``: swapped sentence order) or differ (``"negational"``: negated input; any change
    counts, whatever the gold labels, see :func:`becel_consistency`). The mean over a (model, task, kind)
    cell is Table 6's number (``ifhelpers.chapters.becel.table6_scores``).

    paper: Table 6 Sym/Sem/Neg
    """
    if kind not in BECEL_KINDS:
        raise ValueError(f"kind must be one of {BECEL_KINDS}; got {kind!r}")
    orig, pert = _aligned(pred_original, pred_perturbed, ("pred_original", "pred_perturbed"))
    return (orig != pert).astype(int) if kind == "negational" else (orig == pert).astype(int)


def becel_consistency(
    pred_original, pred_perturbed, kind: str, condition_on=None
) -> float:
    """BECEL consistency, 1 − inconsistency, as BECEL's own code computes it (App. C.2): the mean of
    :func:`becel_item_consistency` over the items.

    App. C.2 prints τ with the indicators swapped relative to "consistency = 1 − τ"
    (read literally, its "consistency" would be the *inconsistency*). We follow the
    benchmark's code, ``src/evaluation_metrics.py`` in github.com/MJ-Jang/BECEL
    (commit 65851497), where::

        semantic_inconsistency:  inconsistency = 1 - accuracy_score(prediction_original, prediction_paraphrase)
        symmetric_inconsistency: inconsistency = 1 - accuracy_score(prediction_original, prediction_symmetric)
        negational_inconsistency: inconsistency = accuracy_score(prediction_original, prediction_negated)

    So, with n aligned original/perturbed inputs:

    * ``"semantic"`` (paraphrased input) and ``"symmetric"`` (swapped sentence order):
      consistency = share of items whose two predictions are equal.
    * ``"negational"``: consistency = share of items whose prediction *changes*. The
      rule looks at predictions only: gold labels and whether the original prediction
      was correct play no part, and with 3-way NLI labels any change counts (e.g.
      entailment → neutral is as consistent as entailment → contradiction). Note that
      BECEL's WiC negational set keeps ``neg_label == label`` (negating sentence 2
      does not change the word's sense), yet the same rule rewards a changed
      prediction there; this is why WiC "Neg" is near 0.1 in Table 6. See
      :func:`becel_label_consistency` for a label-aware diagnostic.

    ``condition_on`` reproduces BECEL's optional "conditioned inconsistency" (defined
    for symmetric and negational): keep only items whose *original prediction* equals
    this class (the code filters on ``prediction_original``, not the gold label,
    although its docstring says "correct answer"), e.g. 2 (contradiction, a symmetric
    relation) for SNLI symmetry. BECEL's code tests ``if condition_correct_prediction:``,
    so passing class 0 silently disables the conditioning there; here 0 is a class
    like any other. The paper reports the unconditioned measure (default ``None``). Table 2's
    "BECEL Cons." (semantic / negation) is its mean over the four tasks. Table 6 itself is built from
    the per-item indicators (:func:`becel_item_consistency`), which its bootstrap resamples.

    Returns
    -------
    float in [0, 1]
    """
    if kind not in BECEL_KINDS:
        raise ValueError(f"kind must be one of {BECEL_KINDS}; got {kind!r}")
    orig, pert = _aligned(pred_original, pred_perturbed, ("pred_original", "pred_perturbed"))
    if condition_on is not None:
        if kind == "semantic":
            raise ValueError("BECEL defines the conditioned measure for symmetric and negational only")
        keep = orig == condition_on
        if not keep.any():
            raise ValueError(f"no item has original prediction {condition_on!r}")
        orig, pert = orig[keep], pert[keep]
    return float(np.mean(becel_item_consistency(orig, pert, kind)))


def becel_label_consistency(
    pred_original, pred_perturbed, label_original, label_perturbed
) -> float:
    """Label-aware variant (diagnostic, *not* the paper's measure; cf. App. C.2).

    An item counts as consistent when the predictions change exactly when the gold
    labels change: ``(pred_o == pred_p) == (label_o == label_p)``. For sets whose
    perturbation always flips the label (BECEL's SNLI/RTE/MRPC negation) this equals
    the negational rule of :func:`becel_consistency`; for paraphrases (labels kept) it
    equals the semantic rule; for WiC negation (labels kept) it rewards keeping the
    prediction, unlike BECEL's code.
    """
    po, pp = _aligned(pred_original, pred_perturbed, ("pred_original", "pred_perturbed"))
    lo, lp = _aligned(label_original, label_perturbed, ("label_original", "label_perturbed"))
    if po.shape != lo.shape:
        raise ValueError(f"length mismatch: predictions {po.size}, labels {lo.size}")
    return float(np.mean((po == pp) == (lo == lp)))
