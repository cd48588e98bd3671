"""Fitting a classifier on a BECEL task (paper §3, App. C.2; Jang et al. 2022): the inputs, the data,
three ways of fitting, the training loop with its checkpoints, and the predictions it makes.

The paper fine-tunes every model on SNLI, RTE, MRPC and WiC (learning rates 5e-4, 1e-4 and 5e-5,
batch 32, linear decay, early stopping, up to 10 epochs) and then predicts BECEL's perturbed
evaluation pairs. What those predictions score (Table 6, Table 2's BECEL columns) is the chapter's
analysis, :mod:`ifhelpers.chapters.becel`, with the formulas in :mod:`ifhelpers.metrics.becel`.

One training loop (:func:`fit`) and one evaluation (:func:`predict_task`) serve three ways of
fitting the classifier, the ``mode``:

``"full"``   App. C.2: every weight of the model and a linear head are trained.
``"lora"``   LoRA adapters (``peft``) on the model's linear layers, plus the head.
``"probe"``  the model is frozen; only the head is trained, on the cached last-token state
             h^L of the engine (:data:`ifhelpers.model.probes.LAST_STATE_REQUEST`). Cheap on a CPU: the features are one
             cached forward pass per text, so the learning-rate grid and the epochs cost nothing.

In every mode the classifier is the same function of the input: the model's final norm applied to
the last token's residual stream, ``norm(h^L[-1])``, then a linear head (:class:`ClassifierHead`),
as in ``AutoModelForSequenceClassification`` for decoder models. A probe is therefore that sequence
classifier with the transformer frozen.

Training is seeded (the batch order of each epoch is a function of the seed and the epoch, so a
resumed run sees the same batches) and checkpointed after every epoch under
``ifhelpers.data.sources.cache_root("finetune", ...)``, keyed by the model's fingerprint, the task, the mode,
the hyper-parameters, the seed and the exact training data; an interrupted run resumes from its
last finished epoch.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from ifhelpers import metrics
from ifhelpers.data import becel
from ifhelpers.data.sources import cache_lock, discard, rng_for
from ifhelpers.model.cache import content_key

__all__ = [
    "MODES",
    "MODE_DESCRIPTIONS",
    "INPUT_FORMATS",
    "TEMPLATES",
    "FinetuneConfig",
    "TaskData",
    "FinetuneResult",
    "format_input",
    "task_texts",
    "task_data",
    "ClassifierHead",
    "ProbeBackend",
    "ModelBackend",
    "make_backend",
    "resolve_mode",
    "fit",
    "run_folder",
    "finetune_task",
    "predict_task",
]

MODES = ("probe", "lora", "full")
#: One sentence per mode, for tables and prose that must say which mode produced the numbers.
MODE_DESCRIPTIONS = {
    "probe": "a linear head trained on frozen last-token features (the model's weights are not changed)",
    "lora": "LoRA adapters on every linear layer plus a linear head",
    "full": "full fine-tuning of every weight plus a linear head, as in the paper's App. C.2",
}
INPUT_FORMATS = ("plain", "model")

# --------------------------------------------------------------------------------------------------
# 1. Inputs: a sentence pair as text
# --------------------------------------------------------------------------------------------------

#: How a pair is written for the model (``{word}`` for WiC only). The text ends in "Answer:" so
#: that the last token, whose state the classifier reads, is the same in every task and model.
TEMPLATES = {
    "snli": "Premise: {a}\nHypothesis: {b}\nDoes the premise entail the hypothesis?",
    "rte": "Premise: {a}\nHypothesis: {b}\nDoes the premise entail the hypothesis?",
    "mrpc": "Sentence 1: {a}\nSentence 2: {b}\nDo the two sentences mean the same thing?",
    "wic": "Word: {word}\nSentence 1: {a}\nSentence 2: {b}\n"
           "Is the word used with the same meaning in both sentences?",
}
ANSWER_CUE = "Answer:"
TEMPLATE_VERSION = "becel-templates-v1"


def format_input(task: str, text_a: str, text_b: str, word: str | None = None, *,
                 prompt_format: str = "base", tokenizer=None) -> str:
    """One BECEL pair as the text the classifier reads (§C.2; the paper does not print its format).

    ``prompt_format="base"`` gives the plain text ``<template>\\nAnswer:``; a dialogue format
    (``"open-instruct"``, ``"chat-template"``, see :mod:`ifhelpers.data.prompts`) puts the template in
    the user turn and opens the assistant turn with ``Answer:``.
    """
    if task not in TEMPLATES:
        raise ValueError(f"Unknown BECEL task {task!r}; valid: {', '.join(TEMPLATES)}")
    if task == "wic" and not word:
        raise ValueError("WiC inputs need the target word")
    body = TEMPLATES[task].format(a=str(text_a).strip(), b=str(text_b).strip(), word=word)
    if prompt_format == "base":
        return f"{body}\n{ANSWER_CUE}"
    from ifhelpers.data.prompts import render_dialogue

    return render_dialogue(body, ANSWER_CUE, prompt_format, tokenizer)


def _prompt_format(lm, input_format: str) -> str:
    if input_format not in INPUT_FORMATS:
        raise ValueError(f"input_format must be one of {INPUT_FORMATS}; got {input_format!r}")
    return "base" if input_format == "plain" else lm.spec.prompt_format


def task_texts(frame: pd.DataFrame, task: str, *, which: str = "original", prompt_format: str = "base",
               tokenizer=None) -> list[str]:
    """The inputs of a task split or consistency set (:mod:`ifhelpers.data.becel` frames).

    ``which="perturbed"`` reads ``perturbed_a`` / ``perturbed_b`` (paraphrased, negated or swapped).
    """
    a, b = ("text_a", "text_b") if which == "original" else ("perturbed_a", "perturbed_b")
    if which not in ("original", "perturbed"):
        raise ValueError(f"which must be 'original' or 'perturbed'; got {which!r}")
    words = frame["word"] if task == "wic" else [None] * len(frame)
    return [format_input(task, x, y, w, prompt_format=prompt_format, tokenizer=tokenizer)
            for x, y, w in zip(frame[a], frame[b], words)]


# --------------------------------------------------------------------------------------------------
# 2. Data: BECEL's training substitutes, capped for a CPU
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskData:
    """One task's data: ``train`` to fit, ``dev`` for early stopping and choosing the learning
    rate, ``eval`` for accuracy, and the BECEL consistency ``sets`` (kind -> frame)."""

    task: str
    train: pd.DataFrame = field(repr=False)
    dev: pd.DataFrame = field(repr=False)
    eval: pd.DataFrame = field(repr=False)
    sets: dict = field(repr=False)
    note: str = ""

    @property
    def n_labels(self) -> int:
        return len(becel.LABEL_NAMES[self.task])

    def sizes(self) -> dict:
        return {"train": len(self.train), "dev": len(self.dev), "eval": len(self.eval),
                **{k: len(v) for k, v in self.sets.items()}}


def _sample(frame: pd.DataFrame, n: int | None, seed: int, *keys) -> pd.DataFrame:
    """A seeded random subset of ``n`` rows (all rows when ``n`` is None or larger), in file order."""
    if n is None or n >= len(frame):
        return frame.reset_index(drop=True)
    if n < 1:
        raise ValueError(f"sample size must be >= 1 or None; got {n}")
    keep = np.sort(rng_for(seed, "finetune", *keys).permutation(len(frame))[:n])
    return frame.iloc[keep].reset_index(drop=True)


def task_data(task: str, n_train: int | None = None, n_eval: int | None = None, seed: int = 0,
              data_dir=None, kinds: Sequence[str] = ("symmetric", "semantic", "negational")) -> TaskData:
    """Training, early-stopping, evaluation and consistency data of a BECEL task (§C.2).

    The splits are :func:`ifhelpers.data.becel.training_splits` (which documents the substitute for the
    missing SNLI train split); ``n_train`` caps the training pairs and ``n_eval`` caps the
    early-stopping pairs, the accuracy pairs and each consistency set (seeded random subsets,
    the same for every model, so that models are compared on the same items).
    """
    splits = becel.training_splits(task, seed=seed, data_dir=data_dir)
    train = _sample(splits.train, n_train, seed, task, "train")
    sets, note = {}, splits.note
    for kind in kinds:
        full = becel.load_consistency_set(task, kind, data_dir)
        if kind == "symmetric" and task != "snli":
            # BECEL's RTE/MRPC/WiC symmetric pairs are training pairs swapped: the paper's models were
            # trained on them (in the other order). Draw them from the pairs *we* train on, as far as
            # they go, so that the capped run keeps that property (and their training order is cached).
            trained = set(zip(train["text_a"], train["text_b"]))
            seen = np.array([p in trained for p in zip(full["perturbed_a"], full["perturbed_b"])])
            sets[kind] = _sample_preferring(full, seen, n_eval, seed, task, kind)
            note += (f" Symmetric pairs: {int(np.isin(sets[kind]['row'], full['row'][seen]).sum())} of "
                     f"{len(sets[kind])} are training pairs of this run, swapped (as in BECEL, whose "
                     f"{task.upper()} symmetric set is the training set swapped).")
        else:
            sets[kind] = _sample(full, n_eval, seed, task, kind)
    if n_train is not None or n_eval is not None:
        note += (f" Capped for this run: {len(train)} training pairs (n_train={n_train}), at most "
                 f"n_eval={n_eval} pairs for early stopping, accuracy and each consistency set (seed={seed}).")
    return TaskData(task, train, _sample(splits.dev, n_eval, seed, task, "dev"),
                    _sample(splits.eval, n_eval, seed, task, "eval"), sets, note)


def _sample_preferring(frame: pd.DataFrame, preferred: np.ndarray, n: int | None, seed: int, *keys) -> pd.DataFrame:
    """Like :func:`_sample`, but rows where ``preferred`` is True are drawn first."""
    if n is None or n >= len(frame):
        return frame.reset_index(drop=True)
    first = np.flatnonzero(preferred)
    rest = np.flatnonzero(~preferred)
    rng = rng_for(seed, "finetune", *keys)
    take = rng.permutation(first)[:n]
    if len(take) < n:
        take = np.concatenate([take, rng.permutation(rest)[: n - len(take)]])
    return frame.iloc[np.sort(take)].reset_index(drop=True)


# --------------------------------------------------------------------------------------------------
# 3. The classifier: a linear head on norm(h^L) at the last token, three ways to fit it
# --------------------------------------------------------------------------------------------------


def _torch():
    import torch

    return torch


def ClassifierHead(d_model: int, n_labels: int, mean=None, std=None):
    """Linear head on the last token's normed state: ``W ((x - mean) / std) + b``, zero-initialised.

    ``mean`` / ``std`` (buffers) standardise frozen features for the probe (fixed from the
    training set; they leave the model class unchanged, a linear map of ``x``); the fine-tuned
    modes use 0 and 1. Zero initialisation makes the starting point (uniform prediction) and the
    whole fit deterministic given the batch order.
    """
    torch = _torch()

    class _Head(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("mean", torch.zeros(d_model) if mean is None else torch.as_tensor(mean).float())
            self.register_buffer("std", torch.ones(d_model) if std is None else torch.as_tensor(std).float())
            self.linear = torch.nn.Linear(d_model, n_labels)
            torch.nn.init.zeros_(self.linear.weight)
            torch.nn.init.zeros_(self.linear.bias)

        def forward(self, x):
            return self.linear((x.float() - self.mean) / self.std)

    return _Head()


class _Backend:
    """What :func:`fit` needs from a way of fitting the classifier (see :class:`ProbeBackend`)."""

    mode = ""

    def logits(self, texts: Sequence[str]):  # pragma: no cover - interface
        raise NotImplementedError

    def trainable(self) -> dict:
        """name -> parameter, the weights that training changes (and a checkpoint saves)."""
        raise NotImplementedError

    def state(self) -> dict:
        return {k: v.detach().cpu().clone() for k, v in self.trainable().items()}

    def load_state(self, state: dict) -> None:
        torch = _torch()
        params = self.trainable()
        missing = set(params) ^ set(state)
        if missing:
            raise KeyError(f"checkpoint and model disagree on {sorted(missing)[:5]}")
        with torch.no_grad():
            for name, p in params.items():
                p.copy_(state[name].to(p.device, p.dtype))

    def reset(self) -> None:
        """Back to the starting weights (before each learning rate of the grid)."""
        self.load_state(self._initial)

    def train(self, on: bool = True) -> None:
        pass

    def predict(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """argmax labels for ``texts`` (no gradient)."""
        torch = _torch()
        self.train(False)
        out = []
        with torch.no_grad():
            for i in range(0, len(texts), batch_size):
                out.append(self.logits(texts[i:i + batch_size]).argmax(-1).cpu().numpy())
        return np.concatenate(out) if out else np.zeros(0, dtype=int)

    def close(self) -> None:
        """Give the model back as it was loaded."""


class ProbeBackend(_Backend):
    """Mode ``"probe"``: a head on frozen ``norm(h^L)`` at the last token (logistic regression).

    ``h^L`` comes from :func:`ifhelpers.model.engine.run` with ``LAST_STATE_REQUEST``, so features are
    computed once per text and cached on disk (:meth:`prepare` runs all texts of a task in one
    pass). The model itself is never modified.
    """

    mode = "probe"

    def __init__(self, lm, n_labels: int, *, cache=True, progress=None):
        self.lm, self.n_labels, self.cache, self.progress = lm, n_labels, cache, progress
        self.features: dict[str, np.ndarray] = {}
        self.head = None

    def prepare(self, texts: Sequence[str]) -> None:
        """Compute (or read from the engine's cache) ``norm(h^L)`` of every text not seen yet."""
        from ifhelpers.model import engine, lens, probes

        todo = list(dict.fromkeys(t for t in texts if t not in self.features))
        if not todo:
            return
        resid = engine.run(self.lm, todo, probes.LAST_STATE_REQUEST, cache=self.cache,
                           progress=self.progress)["resid"][:, -1]
        self.features.update(zip(todo, lens.normed(self.lm, resid).float().cpu().numpy()))

    def fit_standardisation(self, train_texts: Sequence[str]) -> None:
        """Build the head with mean/std of the training features (the probe's only data statistic)."""
        self.prepare(train_texts)
        x = np.stack([self.features[t] for t in train_texts])
        self.head = ClassifierHead(x.shape[1], self.n_labels, x.mean(0), x.std(0) + 1e-6)
        self._initial = self.state()

    def trainable(self) -> dict:
        return dict(self.head.named_parameters())

    def train(self, on: bool = True) -> None:
        self.head.train(on)

    def logits(self, texts):
        torch = _torch()
        self.prepare(texts)
        return self.head(torch.as_tensor(np.stack([self.features[t] for t in texts])))


class ModelBackend(_Backend):
    """Modes ``"lora"`` and ``"full"``: the transformer of ``lm`` under a linear head, trained.

    The backbone is the model's (:meth:`ifhelpers.model.anatomy.Anatomy.backbone`: embeddings, decoder layers,
    final norm); the head reads its last position (inputs are left-padded, as in the engine), i.e. ``norm(h^L[-1])``. For
    ``"lora"`` the model gets ``peft`` LoRA adapters on all its linear layers; for ``"full"`` every
    weight is trained. :meth:`close` gives the model back exactly as loaded (adapters removed,
    weights restored), so the engine's cache, keyed by the loaded weights, stays valid.
    """

    def __init__(self, lm, n_labels: int, mode: str, *, seed: int = 0, lora_r: int = 8,
                 lora_alpha: int = 16, lora_dropout: float = 0.0, micro_batch_size: int | None = None,
                 max_tokens: int | None = None):
        torch = _torch()
        if mode not in ("lora", "full"):
            raise ValueError(f"ModelBackend trains mode 'lora' or 'full', not {mode!r}")
        self.lm, self.mode, self.n_labels = lm, mode, n_labels
        self.micro_batch_size, self.max_tokens = micro_batch_size, max_tokens
        self._requires_grad = {n: p.requires_grad for n, p in lm.model.named_parameters()}
        self.backbone = lm.anatomy.backbone(lm.model)
        self._original = None
        self._peft = None
        torch.manual_seed(seed)
        if mode == "lora":
            from peft import LoraConfig, get_peft_model

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                self._peft = get_peft_model(self.backbone, LoraConfig(
                    r=lora_r, lora_alpha=lora_alpha, lora_dropout=lora_dropout, target_modules="all-linear"))
            self._forward = self._peft
        else:
            self._original = {k: v.detach().cpu().clone() for k, v in self.backbone.state_dict().items()}
            for p in self.backbone.parameters():
                p.requires_grad_(True)
            self._forward = self.backbone
        d_model = lm.model.get_output_embeddings().weight.shape[1]  # the width of norm(h^L) (OPT: projected)
        self.head = ClassifierHead(d_model, n_labels).to(lm.device)
        self._initial = self.state()

    def trainable(self) -> dict:
        params = {f"head.{n}": p for n, p in self.head.named_parameters()}
        params.update({f"model.{n}": p for n, p in self._forward.named_parameters() if p.requires_grad})
        return params

    def train(self, on: bool = True) -> None:
        self._forward.train(on)
        self.head.train(on)

    def logits(self, texts):
        from ifhelpers.model.engine import count_cut, fit_context, pad_left
        from ifhelpers.model.tokens import encode

        torch = _torch()
        count_cut(self.lm, texts)
        ids = [fit_context(self.lm, encode(self.lm.tokenizer, t)) for t in texts]
        if self.max_tokens:
            ids = [s[-self.max_tokens:] for s in ids]
        step = self.micro_batch_size or len(ids)
        out = []
        for i in range(0, len(ids), step):
            input_ids, mask, position_ids = pad_left(ids[i:i + step], self.lm.tokenizer.pad_token_id, self.lm.device)
            hidden = self._forward(input_ids=input_ids, attention_mask=mask, position_ids=position_ids,
                                   use_cache=False).last_hidden_state[:, -1]
            out.append(self.head(hidden))
        return torch.cat(out)

    def close(self) -> None:
        torch = _torch()
        if self._peft is not None:
            self._peft.unload()
            self._peft = None
        if self._original is not None:
            with torch.no_grad():
                self.backbone.load_state_dict(self._original)
            self._original = None
        for n, p in self.lm.model.named_parameters():
            p.requires_grad_(self._requires_grad.get(n, False))
        self.lm.model.eval()


def resolve_mode(mode: str) -> str:
    """``"auto"`` is ``"full"`` on a GPU and ``"probe"`` on a CPU; other modes pass through."""
    if mode == "auto":
        return "full" if _torch().cuda.is_available() else "probe"
    if mode not in MODES:
        raise ValueError(f"finetune_mode must be one of {MODES} or 'auto'; got {mode!r}")
    return mode


def make_backend(lm, n_labels: int, mode: str, config: "FinetuneConfig", *, cache=True, progress=None):
    """The backend of ``mode`` for ``lm`` (see :data:`MODES`)."""
    mode = resolve_mode(mode)
    if mode == "probe":
        return ProbeBackend(lm, n_labels, cache=cache, progress=progress)
    return ModelBackend(lm, n_labels, mode, seed=config.seed, lora_r=config.lora_r, lora_alpha=config.lora_alpha,
                        lora_dropout=config.lora_dropout, micro_batch_size=config.micro_batch_size,
                        max_tokens=config.max_tokens)


# --------------------------------------------------------------------------------------------------
# 4. The training loop (§C.2): AdamW, batch 32, linear decay, early stopping, per-epoch checkpoints
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FinetuneConfig:
    """Hyper-parameters of App. C.2 (defaults) and of the cheaper modes.

    ``patience``: epochs without a better dev accuracy before stopping (the paper says "early
    stopping" without a patience). The learning rate decays linearly from ``lr`` to 0 over
    ``max_epochs`` epochs (no warm-up), whether or not training stops early.
    """

    mode: str = "probe"
    learning_rates: tuple = (5e-4, 1e-4, 5e-5)
    batch_size: int = 32
    max_epochs: int = 10
    patience: int = 3
    weight_decay: float = 0.0
    seed: int = 0
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    micro_batch_size: int | None = None  # gradient accumulation inside a batch (memory only)
    max_tokens: int | None = None        # lora/full: keep the last max_tokens tokens of an input

    def __post_init__(self):
        object.__setattr__(self, "learning_rates", tuple(float(x) for x in self.learning_rates))
        if not self.learning_rates:
            raise ValueError("learning_rates is empty")
        if self.batch_size < 1 or self.max_epochs < 1 or self.patience < 1:
            raise ValueError("batch_size, max_epochs and patience must be >= 1")

    def run_fields(self) -> dict:
        """The fields that change what one training run computes (the checkpoint key)."""
        keep = asdict(self)
        keep.pop("learning_rates")
        keep.pop("micro_batch_size")  # accumulation gives the same gradients
        return keep


def _atomic_save(obj, path: Path) -> None:
    from ifhelpers.model.cache import count_checkpoint

    torch = _torch()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)
    count_checkpoint()


def _load(path: Path) -> dict:
    return _torch().load(path, map_location="cpu", weights_only=True)


def saved_run(path: Path, lr: float, backend, fields: list[str]) -> dict | None:
    """The checkpoint at ``path`` when it reads back whole and is this run's: it loads, holds ``fields``, its
    learning rate is ``lr`` and its weights have the shapes of ``backend``'s trainable weights. None without
    one; a damaged one is said on one line and removed (:func:`ifhelpers.data.sources.discard`), so that the
    run starts again."""
    import pickle

    if not path.exists():
        return None
    try:
        saved = _load(path)
        missing = [k for k in (*fields, "state") if k not in saved]
        if missing:
            raise ValueError(f"no {', '.join(missing)}")
        if saved["lr"] != float(lr):
            raise ValueError(f"it is the run of lr={saved['lr']:g}, not {lr:g}")
        shapes = {k: tuple(v.shape) for k, v in backend.trainable().items()}
        got = {k: tuple(v.shape) for k, v in saved["state"].items()}
        if got != shapes:
            raise ValueError(f"its weights have shapes {got} where the classifier's have {shapes}")
        return saved
    except (RuntimeError, ValueError, KeyError, TypeError, AttributeError, EOFError, OSError,
            pickle.UnpicklingError) as error:
        discard(path, str(error).splitlines()[0] if str(error) else type(error).__name__, "classifier checkpoint")
        return None


def run_folder(lm, task: str, lr: float, config: FinetuneConfig, train_texts, train_labels, dev_texts,
               dev_labels, root=None) -> Path:
    """Checkpoint folder of one training run: model fingerprint + task + mode + hyper-parameters +
    seed + a hash of the exact training and early-stopping data (``about.json`` lists them)."""
    from ifhelpers.data.sources import cache_root

    about = {"model": lm.name, "fingerprint": lm.fingerprint, "task": task, "lr": float(lr),
             **config.run_fields(), "mode": resolve_mode(config.mode), "templates": TEMPLATE_VERSION,
             "n_train": len(train_texts), "n_dev": len(dev_texts),
             "data": content_key(list(train_texts), [int(x) for x in train_labels], list(dev_texts),
                                 [int(x) for x in dev_labels])}
    key = content_key(about)[:16]
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", lm.name)[-40:]
    name = f"{safe}-{task}-{about['mode']}-lr{lr:g}-seed{config.seed}-{key}"
    folder = (Path(root) if root is not None else cache_root("finetune")) / name
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "about.json").exists():
        (folder / "about.json").write_text(json.dumps(about, indent=1))
    return folder


def _epoch_order(n: int, seed: int, epoch: int) -> np.ndarray:
    return rng_for(seed, "finetune-epoch", epoch).permutation(n)


def fit(backend, train_texts: Sequence[str], train_labels, dev_texts: Sequence[str], dev_labels, lr: float,
        config: FinetuneConfig, folder: Path | None = None, *, callback: Callable | None = None,
        progress: bool = True, desc: str = "") -> dict:
    """Train ``backend`` with learning rate ``lr`` (§C.2) and return the run's record.

    Each epoch: shuffle (seeded by seed and epoch), batches of ``config.batch_size``, AdamW with
    the learning rate decaying linearly to 0 over ``max_epochs`` epochs; then the dev accuracy.
    The best epoch's weights are kept (ties: the later epoch; early stopping after ``patience``
    epochs without a strictly better dev accuracy, as ``transformers``' EarlyStoppingCallback). After every epoch the state is saved to ``folder/checkpoint.pt``; calling ``fit``
    again with the same folder resumes after the last saved epoch, or returns at once if the run
    had finished; a checkpoint that does not read back whole is not used (:func:`saved_run`). ``callback(epoch, record)`` is called after each saved epoch (tests use it to
    simulate an interruption).

    Returns
    -------
    dict with ``lr``, ``best_epoch``, ``best_dev_accuracy``, ``epochs_run``, ``stopped_early``,
    ``history`` (list of per-epoch dicts) and ``best_state`` (the trainable weights to evaluate).
    """
    torch = _torch()
    from tqdm.auto import tqdm

    train_labels = np.asarray(train_labels, dtype=int)
    dev_labels = np.asarray(dev_labels, dtype=int)
    if len(train_texts) != len(train_labels) or len(dev_texts) != len(dev_labels):
        raise ValueError("texts and labels differ in length")
    if len(train_texts) == 0 or len(dev_texts) == 0:
        raise ValueError("fit needs training and early-stopping examples")
    path = Path(folder) / "checkpoint.pt" if folder is not None else None
    backend.reset()
    params = backend.trainable()
    optimizer = torch.optim.AdamW(list(params.values()), lr=lr, weight_decay=config.weight_decay)
    steps_per_epoch = -(-len(train_texts) // config.batch_size)
    total_steps = steps_per_epoch * config.max_epochs
    record = {"lr": float(lr), "epoch": 0, "step": 0, "history": [], "best_epoch": 0,
              "best_dev_accuracy": -1.0, "bad_epochs": 0, "done": False, "best_state": backend.state()}
    saved = saved_run(path, lr, backend, list(record)) if path is not None else None
    if saved is not None:
        backend.load_state(saved["state"])
        if saved.get("optimizer") is not None:
            optimizer.load_state_dict(saved["optimizer"])
        record = {k: saved[k] for k in record}
    bar = tqdm(total=config.max_epochs, initial=record["epoch"], desc=desc or f"lr={lr:g}", unit="epoch",
               leave=False, disable=not progress)
    while not record["done"]:
        epoch = record["epoch"] + 1
        backend.train(True)
        torch.manual_seed(config.seed * 100_003 + epoch)  # dropout, if the model has any
        order = _epoch_order(len(train_texts), config.seed, epoch)
        losses = []
        for start in range(0, len(order), config.batch_size):
            idx = order[start:start + config.batch_size]
            for group in optimizer.param_groups:
                group["lr"] = lr * max(0.0, 1.0 - record["step"] / total_steps)
            logits = backend.logits([train_texts[i] for i in idx])
            loss = torch.nn.functional.cross_entropy(logits, torch.as_tensor(train_labels[idx], device=logits.device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            record["step"] += 1
            losses.append(float(loss.detach()))
        dev_accuracy = metrics.becel.accuracy(backend.predict(list(dev_texts), config.batch_size), dev_labels)
        record["history"].append({"epoch": epoch, "train_loss": float(np.mean(losses)),
                                  "dev_accuracy": dev_accuracy, "lr_end": float(optimizer.param_groups[0]["lr"])})
        improved = dev_accuracy > record["best_dev_accuracy"]
        if dev_accuracy >= record["best_dev_accuracy"]:  # ties keep the later, longer-trained epoch
            record.update(best_dev_accuracy=dev_accuracy, best_epoch=epoch, best_state=backend.state())
        record["bad_epochs"] = 0 if improved else record["bad_epochs"] + 1
        record["epoch"] = epoch
        record["done"] = epoch >= config.max_epochs or record["bad_epochs"] >= config.patience
        if path is not None:
            _atomic_save({**record, "state": backend.state(),
                          "optimizer": None if record["done"] else optimizer.state_dict()}, path)
        bar.update(1)
        bar.set_postfix(dev=f"{dev_accuracy:.3f}")
        if callback is not None:
            callback(epoch, record)
    bar.close()
    return {"lr": record["lr"], "best_epoch": record["best_epoch"],
            "best_dev_accuracy": record["best_dev_accuracy"], "epochs_run": record["epoch"],
            "stopped_early": record["epoch"] < config.max_epochs, "history": record["history"],
            "best_state": record["best_state"]}


# --------------------------------------------------------------------------------------------------
# 5. One task end to end, and the shared evaluation
# --------------------------------------------------------------------------------------------------


@dataclass
class FinetuneResult:
    """What :func:`finetune_task` gives back for one (model, task); the model's columns are written on its
    tables by the measure layer (:func:`ifhelpers.measure.stamp.stamp`)."""

    task: str
    mode: str
    lr: float
    runs: pd.DataFrame       # one row per learning rate: best dev accuracy, best epoch, ...
    history: pd.DataFrame    # one row per (learning rate, epoch)
    predictions: pd.DataFrame  # :func:`predict_task` of the chosen learning rate


def predict_task(predict: Callable[[list[str]], np.ndarray], data: TaskData, text_fn: Callable) -> pd.DataFrame:
    """Predictions on the evaluation pairs and on both sides of every consistency pair.

    The one evaluation of every mode: ``predict`` maps texts to labels, ``text_fn(frame, which)``
    writes a frame's inputs (:func:`task_texts`). All texts go to ``predict`` in one call.

    Returns a tidy frame: ``task``, ``set`` ("eval" or a consistency kind), ``row`` (BECEL row),
    ``label``, ``perturbed_label``, ``pred_original``, ``pred_perturbed`` (NaN-free ints; -1 for
    "eval" rows, which have no perturbed side).
    """
    parts = [("eval", data.eval, text_fn(data.eval, "original"), None)]
    for kind, frame in data.sets.items():
        parts.append((kind, frame, text_fn(frame, "original"), text_fn(frame, "perturbed")))
    texts = [t for _, _, orig, pert in parts for t in orig + (pert or [])]
    unique = list(dict.fromkeys(texts))
    labels = dict(zip(unique, np.asarray(predict(unique)).astype(int)))
    frames = []
    for name, frame, orig, pert in parts:
        out = pd.DataFrame({"task": data.task, "set": name, "row": frame["row"].to_numpy(),
                            "label": frame["label"].to_numpy(dtype=int)})
        out["perturbed_label"] = (frame["perturbed_label"].to_numpy() if "perturbed_label" in frame
                                  else pd.array([pd.NA] * len(frame), dtype="Int64"))
        out["perturbed_label"] = pd.array(out["perturbed_label"], dtype="Int64")
        out["pred_original"] = [labels[t] for t in orig]
        out["pred_perturbed"] = [labels[t] for t in pert] if pert is not None else -1
        frames.append(out)
    return pd.concat(frames, ignore_index=True)


def finetune_task(lm, data: TaskData, config: FinetuneConfig, *, input_format: str = "plain", cache=True,
                  checkpoint_root=None, progress: bool = True, callback: Callable | None = None) -> FinetuneResult:
    """Fine-tune ``lm`` on one BECEL task with every learning rate of the grid, keep the one with
    the best dev accuracy (§C.2: "we experimented with three learning rates"), and predict the
    evaluation and consistency pairs with it (:func:`predict_task`).
    """
    mode = resolve_mode(config.mode)
    fmt = _prompt_format(lm, input_format)

    def text_fn(frame, which="original"):
        return task_texts(frame, data.task, which=which, prompt_format=fmt, tokenizer=lm.tokenizer)

    train_texts, dev_texts = text_fn(data.train), text_fn(data.dev)
    train_labels, dev_labels = data.train["label"].to_numpy(int), data.dev["label"].to_numpy(int)
    backend = make_backend(lm, data.n_labels, mode, config, cache=cache, progress=progress)
    try:
        if mode == "probe":  # one engine pass for every text of the task, then all cached
            eval_texts = text_fn(data.eval) + [t for f in data.sets.values() for w in ("original", "perturbed")
                                               for t in text_fn(f, w)]
            backend.prepare(train_texts + dev_texts + eval_texts)
            backend.fit_standardisation(train_texts)
        runs = []
        for lr in config.learning_rates:
            folder = run_folder(lm, data.task, lr, config, train_texts, train_labels, dev_texts, dev_labels,
                                checkpoint_root)
            with cache_lock(folder / "checkpoint.pt", f"the {data.task} classifier of {lm.name} (lr={lr:g})"):
                runs.append(fit(backend, train_texts, train_labels, dev_texts, dev_labels, lr, config, folder,
                                callback=callback, progress=progress, desc=f"{lm.name} {data.task} lr={lr:g}"))
        best = max(runs, key=lambda r: r["best_dev_accuracy"])  # ties: the first lr of the grid
        backend.load_state(best["best_state"])
        predictions = predict_task(lambda t: backend.predict(t, config.batch_size), data, text_fn)
    finally:
        backend.close()
    meta = {"task": data.task, "mode": mode}
    run_table = pd.DataFrame([{**meta, **{k: r[k] for k in ("lr", "best_dev_accuracy", "best_epoch", "epochs_run",
                                                               "stopped_early")}, "chosen": r is best}
                              for r in runs])
    history = pd.DataFrame([{**meta, "lr": r["lr"], **h} for r in runs for h in r["history"]])
    predictions.insert(0, "mode", mode)
    return FinetuneResult(data.task, mode, best["lr"], run_table, history, predictions)

