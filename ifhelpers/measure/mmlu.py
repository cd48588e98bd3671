"""Zero-shot MMLU, one model at a time (§3, footnote 3, App. C.1; chapter 6's prompts and wrappers).

:func:`answers` and :func:`answers_in_wrappers` are the measurements (for
:func:`ifhelpers.measure.runner.run`); the setups they ask are model-independent
(:func:`sample_questions`, :func:`mmlu_setups`; chapter 6 adds formats, :func:`ifhelpers.chapters.sensitivity.with_formats`).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import pandas as pd

from ifhelpers import metrics
from ifhelpers.data import formats, mmlu, prompts
from ifhelpers.data.sources import rng_for
from ifhelpers.measure.runner import Measurement
from ifhelpers.measure.stamp import stamp
from ifhelpers.model import engine, tokens
from ifhelpers.model.models import LoadedModel

#: The dialogue wrappers a prompt can be put in (:func:`ifhelpers.data.prompts.render_dialogue`); "base" is
#: plain text.
WRAPPERS = ("base", "open-instruct", "chat-template")


def sample_questions(subjects: Sequence[str] | str | None = None, n_questions: int | None = None, seed: int = 0,
                     split: str = "test") -> pd.DataFrame:
    """``n_questions`` MMLU questions *in total*, spread evenly over ``subjects`` (all 57 by default).

    Every subject gives ``ceil(n_questions / n_subjects)`` candidates (:func:`ifhelpers.data.mmlu.load_mmlu`, so
    the draw within a subject depends only on the seed); the first candidate of every subject is taken
    before any second one, subjects in a seeded random order, until ``n_questions`` are kept. With fewer
    questions than subjects, a seeded random subset of subjects gives one question each. ``None`` keeps
    every question of the subjects.
    """
    if n_questions is None:
        return mmlu.load_mmlu(split, subjects, None, seed)
    if int(n_questions) < 1:
        raise ValueError(f"n_questions must be a positive int or None, got {n_questions!r}")
    if isinstance(subjects, str):
        subjects = [subjects]
    subjects = list(subjects) if subjects is not None else mmlu.load_subjects(split)
    per_subject = math.ceil(int(n_questions) / len(subjects))
    pool = mmlu.load_mmlu(split, subjects, per_subject, seed)
    rng = rng_for(seed, "predictions", "mmlu-total", split)
    order = pd.Series(rng.permutation(len(subjects)), index=subjects)
    pool["_rank"] = pool.groupby("subject").cumcount()
    pool["_subject_order"] = pool["subject"].map(order)
    picked = pool.sort_values(["_rank", "_subject_order"]).head(int(n_questions)).index
    return pool.loc[sorted(picked)].drop(columns=["_rank", "_subject_order"]).reset_index(drop=True)


def mmlu_setups(questions: pd.DataFrame, n_shuffles: int = 3, instruction_ids: Sequence[int] = (0, 1, 2),
                seed: int = 0) -> pd.DataFrame:
    """Every question under every instruction × ordering of the options (App. C.1: 3 × 3 = 9 setups).

    Orderings come from :func:`ifhelpers.data.mmlu.choice_orderings` (ordering 0 is the original order, the
    others seeded shuffles); the column is called ``shuffle``. Model-independent: :func:`run_mmlu` adds
    the prompts in each model's format.
    """
    if n_shuffles < 1:
        raise ValueError("n_shuffles must be >= 1")
    bad = [i for i in instruction_ids if i not in prompts.MMLU_INSTRUCTION_IDS]
    if bad or not instruction_ids:
        raise ValueError(f"instruction_ids must be among {list(prompts.MMLU_INSTRUCTION_IDS)} (0-2 App. C.1's), "
                         f"got {instruction_ids!r}")
    ordered = mmlu.choice_orderings(questions, n_orderings=n_shuffles, seed=seed).rename(columns={"ordering": "shuffle"})
    parts = []
    for instruction in instruction_ids:
        part = ordered.copy()
        part.insert(0, "instruction", int(instruction))
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def answer_letter_ids(tokenizer, texts: Sequence[str], letters: Sequence[str] = prompts.MMLU_LETTERS) -> np.ndarray:
    """The token id of each answer letter as the next token after each prompt, ``(n, 4)``.

    The prompt ends with "Answer:" (base) or "The answer is:" (dialogue), so the letter follows a space:
    the candidate is the first token of ``" A"`` after the prompt (:func:`ifhelpers.model.tokens.first_continuation_id`),
    ``▁A`` for SentencePiece-style and ``ĠA`` for byte-level BPE tokenizers, not the bare ``A``. Computed
    per prompt (a prompt's last characters could change it); raises if two letters share a token.
    """
    ids = np.array([[tokens.first_continuation_id(tokenizer, text, " " + letter) for letter in letters]
                    for text in texts], dtype=np.int64).reshape(-1, len(letters))
    for row, text in zip(ids, texts):
        if len(set(row.tolist())) != len(letters):
            raise ValueError(f"answer letters share a first token after {text[-40:]!r}: {row.tolist()}")
    return ids


def run_mmlu(lm: LoadedModel, setups: pd.DataFrame, *, cache=True, progress=None) -> pd.DataFrame:
    """Zero-shot MMLU for one model: the answer letters' next-token log-probabilities for every setup (§3).

    ``setups`` is :func:`mmlu_setups`. The prompt is :func:`ifhelpers.data.prompts.format_mmlu` in the model's
    format; the prediction is the letter with the highest log-probability among A-D at the last position
    (one forward pass per prompt, :class:`ifhelpers.model.engine.Request` with ``candidates``). Two optional
    columns change a row's prompt (chapter 6): ``layout``, an :class:`ifhelpers.data.formats.MMLUFormat`
    (default App. C.1's), and ``prompt_format``, the wrapper ("base", "open-instruct", "chat-template";
    default the model's own).

    Returns
    -------
    ``setups`` plus the model's columns (:func:`ifhelpers.measure.stamp.stamp`), ``prompt``, ``n_tokens``, ``logprob_A`` ... ``logprob_D``,
    ``letter_mass`` (probability of the four letters together), ``prediction_index``, ``prediction``,
    ``correct``. ``attrs["letter_ids"]`` holds the candidate ids when they are the same for every prompt.
    """
    frame = setups.copy()
    layouts = frame["layout"] if "layout" in frame else [formats.APPENDIX_C1] * len(frame)
    wrappers = frame["prompt_format"] if "prompt_format" in frame else [lm.spec.prompt_format] * len(frame)
    frame["prompt"] = [prompts.format_mmlu(s, q, [a, b, c, d], i, w, lm.tokenizer, layout)
                       for s, q, a, b, c, d, i, w, layout in zip(frame["subject"], frame["question"], frame["A"],
                                                                 frame["B"], frame["C"], frame["D"],
                                                                 frame["instruction"], wrappers, layouts)]
    ids = answer_letter_ids(lm.tokenizer, frame["prompt"].tolist())
    candidates = tuple(dict.fromkeys(ids.ravel().tolist()))
    column = {c: k for k, c in enumerate(candidates)}
    out = engine.run(lm, frame["prompt"].tolist(), engine.Request(candidates=candidates), cache=cache,
                     progress=progress)
    logprobs = out["candidate_logprobs"][np.arange(len(frame))[:, None], np.vectorize(column.get)(ids)]
    for k, letter in enumerate(prompts.MMLU_LETTERS):
        frame[f"logprob_{letter}"] = logprobs[:, k]
    frame["letter_mass"] = np.exp(logprobs).sum(axis=1)
    frame["prediction_index"] = metrics.mmlu.mmlu_predictions(logprobs)
    frame["prediction"] = frame["prediction_index"].map(dict(enumerate(prompts.MMLU_LETTERS)))
    frame["correct"] = frame["prediction_index"].to_numpy() == frame["answer_index"].to_numpy()
    frame["n_tokens"] = [len(tokens.encode(lm.tokenizer, p)) for p in frame["prompt"]]
    shared = bool((ids == ids[0]).all())
    frame.attrs.update(letter_ids_shared=shared, letter_ids=tuple(int(i) for i in ids[0]) if shared else None)
    return stamp(frame, lm)


def letter_report(lm: LoadedModel, results: pd.DataFrame) -> pd.DataFrame:
    """The answer-letter tokens :func:`run_mmlu` scored for this model (``candidates``), whether every prompt
    scored the same ids (``same_ids``) and the mean probability on the four letters (``mean_letter_mass``); one row."""
    shared = results.attrs.get("letter_ids_shared", False)
    return pd.DataFrame([{"candidates": lm.tokenizer.convert_ids_to_tokens(list(results.attrs["letter_ids"])) if shared
            else "differ between prompts",
            "same_ids": shared,
            "mean_letter_mass": round(float(results["letter_mass"].mean()), 3)}])


def wrappers_for(lm: LoadedModel) -> list[str]:
    """The wrappers :data:`WRAPPERS` this model can be prompted in (the chat template only when its
    tokenizer has one), its own first."""
    own = lm.spec.prompt_format
    usable = [w for w in WRAPPERS if w != "chat-template" or getattr(lm.tokenizer, "chat_template", None)]
    return [own, *(w for w in usable if w != own)]


def with_wrappers(setups: pd.DataFrame, lm: LoadedModel) -> pd.DataFrame:
    """``setups`` (App. C.1's prompts) in every wrapper of :func:`wrappers_for` (column ``prompt_format``);
    the model's own wrapper gives the predictions chapter's prompts."""
    return pd.concat([setups.assign(prompt_format=w) for w in wrappers_for(lm)], ignore_index=True)



def answers(setups: pd.DataFrame, *, letters: bool = False, progress=None) -> Measurement:
    """The MMLU measurement: :func:`run_mmlu` on ``setups``, table ``mmlu``; with ``letters``, also
    ``mmlu_letters`` (:func:`letter_report`)."""
    def measure(lm: LoadedModel) -> dict[str, pd.DataFrame]:
        results = run_mmlu(lm, setups, progress=progress)
        return {"mmlu": results, **({"mmlu_letters": stamp(letter_report(lm, results), lm)} if letters else {})}

    return measure


def answers_in_wrappers(setups: pd.DataFrame, *, progress=False) -> Measurement:
    """Chapter 6's wrapper measurement: :func:`run_mmlu` on ``setups`` in every wrapper the model can take
    (:func:`with_wrappers`), table ``mmlu_wrappers``."""
    def measure(lm: LoadedModel) -> dict[str, pd.DataFrame]:
        return {"mmlu_wrappers": run_mmlu(lm, with_wrappers(setups, lm), progress=progress)}

    return measure
