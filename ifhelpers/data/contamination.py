"""Keeping the evaluation data out of instruction-tuning data: one check for every training set.

The book evaluates tuned models on ParaRel facts (chapters 1-4), MMLU questions (chapter 6) and
BECEL inputs (chapter 3); a training example that contains one of them would teach the answer, not
the behaviour. :func:`contamination` flags, per example,

* ``pararel_fact``: the example mentions a ParaRel subject and one of its objects (whole words);
* ``mmlu_ngram`` / ``becel_ngram``: it shares a word ``n``-gram (n = 8) with an MMLU test question or
  a BECEL input (base splits and consistency sets; an evaluation text shorter than ``n`` words is
  matched as a whole).

An example is a chat (a ``messages`` column of ``{"role", "content"}`` turns, every turn checked) or
a ``prompt`` / ``response`` pair. Chapter 5's training pool and every instruction set of
:mod:`ifhelpers.data.instruction_sets` go through this one function.
"""

from __future__ import annotations

import functools
import re

import pandas as pd

from ifhelpers.data import becel, mmlu, pararel, sources

__all__ = ["FLAGS", "contamination"]

#: The boolean columns :func:`contamination` adds (``contaminated`` is any of them).
FLAGS = ("pararel_fact", "mmlu_ngram", "becel_ngram")

_WORD = re.compile(r"\w+")


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _pararel_facts(data_dir=None) -> dict[tuple[str, ...], set[tuple[str, ...]]]:
    facts: dict[tuple[str, ...], set[tuple[str, ...]]] = {}
    for relation in pararel.load_relations(data_dir):
        for row in pararel.load_facts(relation, data_dir=data_dir).itertuples():
            subject = tuple(_words(row.subject))
            if subject:
                facts.setdefault(subject, set()).update(tuple(_words(o)) for o in row.objects if _words(o))
    return facts


def _evaluation_texts(data_dir=None) -> dict[str, list[str]]:
    """Every MMLU test question and every BECEL input (base splits and consistency sets)."""
    questions = mmlu.load_mmlu(split="test", data_dir=data_dir)["question"].tolist()
    becel_texts = []
    for task in becel.TASKS:
        frames = [becel.load_task_split(task, split, data_dir) for split in becel.SPLITS[task]]
        frames += [becel.load_consistency_set(task, kind, data_dir) for kind in becel.CONSISTENCY_KINDS[task]]
        for frame in frames:
            for column in ("text_a", "text_b", "perturbed_a", "perturbed_b"):
                if column in frame:
                    becel_texts += [t for t in frame[column].tolist() if isinstance(t, str)]
    return {"mmlu": questions, "becel": becel_texts}


@functools.lru_cache(maxsize=4)
def _references(n: int, mirror) -> tuple[dict, dict[str, set[tuple[str, ...]]]]:
    """(ParaRel facts by subject, the word n-grams of each evaluation source), read once per mirror."""
    facts = _pararel_facts(mirror)
    references = {}
    for source, texts in _evaluation_texts(mirror).items():
        grams: set[tuple[str, ...]] = set()
        for text in texts:
            words = _words(text)
            grams |= ({tuple(words[i:i + n]) for i in range(len(words) - n + 1)} if len(words) >= n
                      else ({tuple(words)} if words else set()))
        references[source] = grams
    return facts, references


def _texts(examples: pd.DataFrame) -> list[str]:
    if "messages" in examples:
        return ["\n".join(turn["content"] for turn in messages) for messages in examples["messages"]]
    return (examples["prompt"] + "\n" + examples["response"]).tolist()


def contamination(examples: pd.DataFrame, n: int = 8, data_dir=None) -> pd.DataFrame:
    """Flag training examples that contain evaluation data (one boolean column per source, :data:`FLAGS`).

    ``examples`` has a ``messages`` column (chats) or ``prompt`` and ``response``. Returns
    ``examples`` with the three flags and ``contaminated`` (any of them).
    """
    root = sources.mirror_root(data_dir)
    facts, references = _references(n, None if root is None else str(root))
    longest_subject = max(len(s) for s in facts)
    short_lengths = sorted({len(g) for grams in references.values() for g in grams if len(g) < n})
    flags = {flag: [] for flag in FLAGS}
    for text in _texts(examples):
        words = _words(text)
        spans = {tuple(words[i:i + k]) for k in range(1, longest_subject + 1) for i in range(len(words) - k + 1)}
        flags["pararel_fact"].append(any(spans & facts[s] for s in spans if s in facts))
        grams = {tuple(words[i:i + k]) for k in (n, *short_lengths) for i in range(len(words) - k + 1)}
        flags["mmlu_ngram"].append(not grams.isdisjoint(references["mmlu"]))
        flags["becel_ngram"].append(not grams.isdisjoint(references["becel"]))
    out = examples.assign(**flags)
    return out.assign(contaminated=out["pararel_fact"] | out["mmlu_ngram"] | out["becel_ngram"])
