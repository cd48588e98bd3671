"""Sensitivity to the prompt as the field measures it after the paper (chapter 6, "beyond the paper").

The paper reads prompt sensitivity from three MMLU instructions (the spread, §3). Later work evaluates
under many prompts and reports more than a max − min:

* the *distribution* of accuracy over prompts: its quantiles (PromptEval, Polo et al. 2024) and the
  max, mean and a combination of the two (MaxP, AvgP, CPS: Mizrahi et al. 2024);
* whether a model gives the *same answer* under different prompts: the consistency rate (pairwise
  agreement of the chosen option, also across orderings of the options, with the answer mapped back
  through each permutation), and ProSA's prompt sensitivity score (Zhuo et al. 2024: the mean absolute
  difference of an item's score between two prompts);
* how much the *likelihood of a response* moves when its prompt is swapped for an equivalent one (POSIX,
  Chatterjee et al. 2024), and what a generated response answers (:func:`answer_in_response`), so that
  the scoring method itself can be varied.

Pure: arrays in (``items × prompts``), numbers out; per-item values where the chapter resamples items.
"""

from __future__ import annotations

import numpy as np


def _per_prompt(scores) -> np.ndarray:
    arr = np.asarray(scores, dtype=np.float64)
    if arr.ndim < 1 or arr.shape[-1] < 2:
        raise ValueError(f"need one score per prompt (last axis) for at least 2 prompts; got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError("scores contain NaN or infinite values")
    return arr


def _items_by_prompts(values, name: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 2 or arr.shape[0] < 1 or arr.shape[1] < 2:
        raise ValueError(f"{name} must be (items, prompts>=2); got shape {arr.shape}")
    return arr


def prompt_quantiles(scores, quantiles=(0.05, 0.5, 0.95)) -> dict[float, float | np.ndarray]:
    """Quantiles of a model's accuracy over prompts, e.g. the median and the 5th/95th percentiles
    (PromptEval, Polo et al. 2024, report the distribution of performance across prompt templates by its
    quantiles). ``scores`` holds one accuracy per prompt on its last axis (leading axes are kept, e.g.
    bootstrap resamples); quantiles interpolate linearly between prompts (``numpy.quantile``'s default),
    so with 12 prompts the 5th percentile lies between the lowest two.

    paper: beyond: PromptEval quantiles
    """
    arr = _per_prompt(scores)
    return {float(q): _scalar(np.quantile(arr, q, axis=-1)) for q in quantiles}


def max_avg_combined(scores) -> dict[str, float | np.ndarray]:
    """Mizrahi et al. (2024, §5) MaxP, AvgP and CPS of one model on one task, from one accuracy per prompt
    (last axis; leading axes are kept).

    * MaxP = max_p acc(p): the model at its best prompt (what a developer tuning a prompt gets);
    * AvgP = mean_p acc(p): the model over the prompts (what a user who picks any prompt gets);
    * saturation = 1 − (MaxP − AvgP), and CPS = saturation × MaxP: high when the model is good *and*
      its best prompt is not far above the others.

    paper: beyond: MaxP, AvgP, CPS
    """
    arr = _per_prompt(scores)
    best, mean = arr.max(axis=-1), arr.mean(axis=-1)
    return {"MaxP": _scalar(best), "AvgP": _scalar(mean), "CPS": _scalar((1.0 - (best - mean)) * best)}


def _scalar(values):
    return float(values) if np.ndim(values) == 0 else values


def original_option(displayed, permutation) -> np.ndarray:
    """The original option that a displayed position shows: ``permutation[displayed]``.

    A shuffled question shows original option ``permutation[k]`` at position ``k``
    (:func:`ifhelpers.data.mmlu.shuffle_choices`), so a model that answers position ``k`` chose original
    option ``permutation[k]``. ``displayed`` is ``(n,)``, ``permutation`` ``(n, n_options)``. Comparing
    answers across orderings needs this mapping: the displayed letters of two orderings are not the same
    options.
    """
    shown = np.asarray(displayed, dtype=np.intp)
    perm = np.asarray(permutation, dtype=np.intp)
    if perm.ndim != 2 or shown.shape != perm.shape[:1]:
        raise ValueError(f"displayed must be (n,) and permutation (n, n_options); got {shown.shape} and {perm.shape}")
    if ((shown < 0) | (shown >= perm.shape[1])).any():
        raise ValueError("a displayed position is outside the options")
    if (np.sort(perm, axis=1) != np.arange(perm.shape[1])).any():
        raise ValueError("every row of permutation must be a permutation of 0..n_options-1")
    return perm[np.arange(len(shown)), shown]


def consistency_rate(answers) -> np.ndarray:
    """Per item, the share of pairs of prompts under which the model chose the same answer.

    ``answers`` is ``(items, prompts)``: the chosen option of each item under each prompt, in the
    *original* option numbering (map shuffled orderings back with :func:`original_option` first). With
    ``n`` prompts an item has n(n−1)/2 pairs; if ``c_k`` prompts chose option ``k``, the agreeing pairs
    are Σ_k c_k(c_k−1)/2. A negative answer is *no answer* (a generated response that names no option):
    it agrees with nothing, not even another non-answer. The consistency rate of a model is the mean over
    items.

    paper: beyond: consistency rate
    """
    arr = _items_by_prompts(answers, "answers")
    n = arr.shape[1]
    agree = np.zeros(arr.shape[0], dtype=np.float64)
    for value in np.unique(arr[arr >= 0]):
        count = (arr == value).sum(axis=1)
        agree += count * (count - 1) / 2
    return agree / (n * (n - 1) / 2)


def prompt_sensitivity_score(scores) -> np.ndarray:
    """ProSA's prompt sensitivity score per item (Zhuo et al. 2024): the mean over pairs of prompts of the
    absolute difference of the item's score, |Y(p_i, x) − Y(p_j, x)|. With 0/1 correctness and ``k`` of
    ``n`` prompts correct it is k(n−k) / (n(n−1)/2); 0 when every prompt gives the same score. The
    model's PSS is the mean over items (lower: less sensitive).

    paper: beyond: ProSA PSS
    """
    arr = _items_by_prompts(scores, "scores").astype(np.float64)
    if not np.isfinite(arr).all():
        raise ValueError("scores contain NaN or infinite values")
    n = arr.shape[1]
    i, j = np.triu_indices(n, k=1)
    return np.abs(arr[:, i] - arr[:, j]).mean(axis=1)


def posix(mean_logprobs) -> np.ndarray:
    """POSIX per item (Chatterjee et al. 2024, their index ψ): how much the length-normalised log-likelihood of a
    response moves when its prompt is swapped for an equivalent one.

    ``mean_logprobs`` is ``(items, N, N)``: entry ``[q, i, j]`` is (1/L) log P(y_j | x_i), the log-likelihood of
    response y_j (the model's own response to prompt x_j) under prompt x_i, divided by its length L in
    tokens. Then

        ψ_q = 1/(N(N−1)) Σ_{i≠j} | (1/L) log P(y_j | x_i) − (1/L) log P(y_j | x_j) |,

    0 when every prompt gives every response the same likelihood. NaN entries (a response that could not be
    scored under a prompt) are left out of the mean; an item with no scored pair is NaN. Lower: less sensitive.

    paper: beyond: POSIX
    """
    arr = np.asarray(mean_logprobs, dtype=np.float64)
    if arr.ndim != 3 or arr.shape[1] != arr.shape[2] or arr.shape[1] < 2:
        raise ValueError(f"mean_logprobs must be (items, N, N) with N >= 2 prompts; got shape {arr.shape}")
    own = np.diagonal(arr, axis1=1, axis2=2)[:, None, :]  # [q, ., j] = log P(y_j | x_j) / L
    gaps = np.abs(arr - own)
    off = ~np.eye(arr.shape[1], dtype=bool)
    gaps = np.where(off[None], gaps, np.nan)
    scored = np.isfinite(gaps).sum(axis=(1, 2))
    total = np.nansum(gaps, axis=(1, 2))
    return np.where(scored > 0, total / np.maximum(scored, 1), np.nan)


def posix_released_code(total_logprobs, max_new_tokens: int) -> np.ndarray:
    """POSIX per item as the authors' released code computes it (``prompt_sensitivity_index/posix.py`` of
    Chatterjee et al. 2024), reported beside :func:`posix`, the book's reading of their text.

    ``total_logprobs`` is ``(items, N, N)``: entry ``[q, i, j]`` is log P(y_j | x_i), the summed (not
    length-normalised) log-likelihood of response y_j under prompt x_i. The released code compares, under
    each prompt x_j, every other prompt's response with x_j's own, and divides by the generation limit
    ``max_new_tokens`` instead of each response's length:

        ψ_q = 1/(N(N−1)) Σ_{i≠j} | log P(y_i | x_j) − log P(y_j | x_j) | / max_new_tokens.

    The text of the paper (and :func:`posix`) holds the response fixed and swaps its prompt; this holds the
    prompt fixed and swaps the response. NaN entries are left out of the mean as in :func:`posix` (the
    released code has none: it scores every pair).

    paper: beyond: POSIX, released code
    """
    arr = np.asarray(total_logprobs, dtype=np.float64)
    if arr.ndim != 3 or arr.shape[1] != arr.shape[2] or arr.shape[1] < 2:
        raise ValueError(f"total_logprobs must be (items, N, N) with N >= 2 prompts; got shape {arr.shape}")
    if int(max_new_tokens) < 1:
        raise ValueError(f"max_new_tokens must be >= 1; got {max_new_tokens}")
    own = np.diagonal(arr, axis1=1, axis2=2)[:, :, None]  # [q, j, .] = log P(y_j | x_j)
    gaps = np.abs(arr - own) / int(max_new_tokens)
    off = ~np.eye(arr.shape[1], dtype=bool)
    gaps = np.where(off[None], gaps, np.nan)
    scored = np.isfinite(gaps).sum(axis=(1, 2))
    total = np.nansum(gaps, axis=(1, 2))
    return np.where(scored > 0, total / np.maximum(scored, 1), np.nan)


#: What :func:`answer_in_response` looks for: an option letter standing alone ("B", "(B)", "B.", "answer is B"),
#: not a letter inside a word.
_ANSWER_LETTER = r"(?<![A-Za-z])([{letters}])(?![A-Za-z])"


def answer_in_response(response: str, letters: str = "ABCD") -> int:
    """The option a generated response names: the index in ``letters`` of the first letter that stands alone
    (not inside a word: "(B)", "B.", "The answer is B"), or -1 when it names none. This is the scoring by
    generation that critiques of letter log-likelihood scoring propose (the answer is what the model says,
    not the likeliest of four tokens); like lm-evaluation-harness's flexible extract it can misread an
    article "A" as an answer.

    paper: beyond: answer matching
    """
    import re

    found = re.search(_ANSWER_LETTER.format(letters=re.escape(letters)), response)
    return -1 if found is None else letters.index(found.group(1))
