"""The model a tidy frame measures, written on it: the one stamping helper of the measure layer."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ifhelpers.model.models import LoadedModel

#: The columns :func:`stamp` puts in front of every per-model frame, in this order.
MODEL_COLUMNS = ("model", "role", "family", "n_layers")


def relative_depth(layer, n_layers, kind: str = "state"):
    """Relative depth of a layer: ``l / L`` for the state h^l, ``(l + 1) / L`` for the update of layer l.

    ``kind`` is ``"state"`` (h^0 ... h^L, values 0 ... 1) or ``"update"`` (a^l, f^l of layers
    0 ... L-1, values 1/L ... 1). ``n_layers`` may be an array aligned with ``layer``.
    """
    n_layers = np.asarray(n_layers, dtype=np.float64)
    if np.any(n_layers < 1):
        raise ValueError(f"n_layers must be >= 1; got {n_layers}")
    layer = np.asarray(layer, dtype=np.float64)
    if kind == "state":
        return layer / n_layers
    if kind == "update":
        return (layer + 1) / n_layers
    raise ValueError(f"kind must be 'state' or 'update'; got {kind!r}")


def stamp(frame: pd.DataFrame, lm: LoadedModel, kind: str | None = None) -> pd.DataFrame:
    """A copy of ``frame`` with the model's :data:`MODEL_COLUMNS` (name, role, family, layer count) in
    front and, when ``kind`` is ``"state"`` or ``"update"``, the ``depth`` of its ``layer`` column
    (:func:`relative_depth`). ``attrs`` are kept."""
    out = frame.copy()
    values = {"model": lm.name, "role": lm.spec.role, "family": lm.spec.family, "n_layers": lm.n_layers}
    for position, name in enumerate(MODEL_COLUMNS):
        out.insert(position, name, values[name])
    if kind is not None:
        out["depth"] = relative_depth(out["layer"].to_numpy(), lm.n_layers, kind)
    return out
