"""The BECEL classifiers of one model (§3, App. C.2): fine-tuned (or probed) on each task, then asked both
sides of every consistency pair (:func:`ifhelpers.train.classifier.finetune_task`)."""

from __future__ import annotations

import pandas as pd

from ifhelpers.measure.runner import Measurement
from ifhelpers.measure.stamp import stamp
from ifhelpers.model.models import LoadedModel
from ifhelpers.train.classifier import finetune_task


def classifiers(data: dict, config, *, input_format: str = "plain") -> Measurement:
    """The BECEL measurement: :func:`ifhelpers.train.classifier.finetune_task` on every task of ``data``
    (task -> :class:`~ifhelpers.train.classifier.TaskData`) in its order, with ``config`` (a
    :class:`~ifhelpers.train.classifier.FinetuneConfig`). Tables ``becel_predictions``, ``becel_runs`` and
    ``becel_history``, stamped (:func:`ifhelpers.measure.stamp.stamp`)."""
    def measure(lm: LoadedModel) -> dict[str, pd.DataFrame]:
        results = [finetune_task(lm, data[task], config, input_format=input_format) for task in data]
        return {f"becel_{name}": stamp(pd.concat([getattr(r, name) for r in results], ignore_index=True), lm)
                for name in ("predictions", "runs", "history")}

    return measure
