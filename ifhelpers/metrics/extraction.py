"""Extraction events and rate of attention and MLP updates (paper §4 eq. 1, Fig. 5, App. F Fig. 8).

Pure: arrays or tidy frames in, numbers out; nothing here imports the rest of the package
except its sibling metric modules.
"""

from __future__ import annotations

import numpy as np


def extraction_events(update_top1, final_prediction) -> np.ndarray:
    """Extraction event per query and layer (§4 eq. 1): the update's top-1 token is the final prediction.

    An extraction event at layer l happens when the top-1 token of the update projected
    to the vocabulary, ``argmax(E a_l)`` (MHSA) or ``argmax(E f_l)`` (MLP), equals the
    model's final top-1 prediction o*. :func:`extraction_rate` is the mean of these events
    over queries.

    Parameters
    ----------
    update_top1 : int array (n, L), token id of argmax(E a_l) per query and layer
    final_prediction : int array (n,), token id of o*

    Returns
    -------
    bool array (n, L)
    """
    top = np.asarray(update_top1)
    final = np.asarray(final_prediction)
    if top.ndim != 2:
        raise ValueError(f"update_top1 must be (n, L); got shape {top.shape}")
    if final.ndim != 1:
        raise ValueError(f"final_prediction must be (n,); got shape {final.shape}")
    if top.shape[0] != final.shape[0]:
        raise ValueError(
            f"update_top1 has {top.shape[0]} queries, final_prediction {final.shape[0]}"
        )
    if top.shape[0] == 0 or top.shape[1] == 0:
        raise ValueError("empty input")
    for name, arr in (("update_top1", top), ("final_prediction", final)):
        if not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"{name} must hold integer token ids; got dtype {arr.dtype}")
    return top == final[:, None]


def extraction_rate(update_top1, final_prediction) -> np.ndarray:
    """Per-layer extraction rate of MHSA or MLP updates (§4 eq. 1, Fig. 5, App. F Fig. 8).

    The share of queries with an extraction event (:func:`extraction_events`) at each layer.

    Parameters
    ----------
    update_top1 : int array (n, L), token id of argmax(E a_l) per query and layer
    final_prediction : int array (n,), token id of o*

    Returns
    -------
    float array (L,)

    paper: Fig. 5, 8
    """
    return np.mean(extraction_events(update_top1, final_prediction), axis=0)
