"""The one loop over models: load each model once, take every measurement of it, stack the frames."""

from __future__ import annotations

import time
from typing import Callable, Mapping, Sequence

import pandas as pd

from ifhelpers.measure.stamp import stamp
from ifhelpers.model import models as loaded
from ifhelpers.model.models import LoadedModel

#: A measurement: a function of one loaded model returning its named tidy frames (each stamped).
Measurement = Callable[[LoadedModel], Mapping[str, pd.DataFrame]]


def _shared_attrs(parts: Sequence[pd.DataFrame]) -> dict:
    """The ``attrs`` entries every part holds with the same value (what does not depend on the model)."""
    shared = {}
    for key, value in parts[0].attrs.items():
        try:
            if all(key in p.attrs and bool(p.attrs[key] == value) for p in parts[1:]):
                shared[key] = value
        except (TypeError, ValueError):  # values that do not compare to one truth value differ per model
            pass
    return shared


def stack(parts: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Per-model frames stacked in the order given, keeping the ``attrs`` they share."""
    out = pd.concat(parts, ignore_index=True)
    out.attrs = _shared_attrs(parts)
    return out


def run(models, measurements: Sequence[Measurement], roles: dict[str, str] | None = None,
        **load_kwargs) -> dict[str, pd.DataFrame]:
    """Every measurement of every model: each model of ``models`` (names, registry specs or folders, with
    ``roles`` for names outside the registry) is loaded once (:func:`ifhelpers.model.models.each`), the
    ``measurements`` are taken in their order, and the frames of each name are stacked model by model
    (:func:`stack`).

    ``load_kwargs`` go to :func:`ifhelpers.model.models.load` (e.g. ``encoder_decoder_state``).
    Two measurements may not return frames of the same name. ``seconds`` adds one row per model: the wall
    time of its measurements (near zero when the engine's cache holds the passes).
    """
    parts: dict[str, list[pd.DataFrame]] = {}
    seconds = []
    for lm in loaded.each(models, roles, **load_kwargs):
        start = time.perf_counter()
        names = set()
        for measure in measurements:
            for name, frame in measure(lm).items():
                if name in names or name == "seconds":
                    raise ValueError(f"two measurements return a table named {name!r}")
                names.add(name)
                parts.setdefault(name, []).append(frame)
        seconds.append(stamp(pd.DataFrame({"seconds": [time.perf_counter() - start]}), lm))
    out = {name: stack(frames) for name, frames in parts.items()}
    out["seconds"] = stack(seconds) if seconds else pd.DataFrame()
    return out


def by_model(frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """A stacked frame split back into one frame per model (in their order), each indexed from 0."""
    return {model: part.reset_index(drop=True) for model, part in frame.groupby("model", sort=False)}
