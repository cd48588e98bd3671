"""Greedy responses to MMLU prompts and their scores under the other prompts (chapter 6: POSIX, the
consistency of generated answers).

:func:`answers_and_responses` is the measurement (for :func:`ifhelpers.measure.runner.run`): the letter-scored
answers of :func:`ifhelpers.measure.mmlu.run_mmlu`, the responses to App. C.1's prompts and the pairs POSIX reads.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd

from ifhelpers import metrics
from ifhelpers.measure.mmlu import run_mmlu
from ifhelpers.measure.runner import Measurement
from ifhelpers.measure.stamp import stamp
from ifhelpers.model import engine, generate, tokens
from ifhelpers.model.models import LoadedModel

#: Tokens of a greedy response: enough for "The answer is B" after a dialogue wrapper's cue.
RESPONSE_TOKENS = 5


#: Tokens scored per response under another prompt (a decoded response can tokenize longer after it).
SCORED_TOKENS = 2 * RESPONSE_TOKENS


def check_response_instructions(instruction_ids: Sequence[int], response_ids: Sequence[int]) -> list[int]:
    """``response_ids`` as a list, or one clear error: responses are generated under at least two of the
    instructions the chapter asks (``instruction_ids``), so that a response has another prompt to be scored
    under."""
    missing = sorted(set(response_ids) - set(int(i) for i in instruction_ids))
    if missing or len(set(response_ids)) < 2:
        raise ValueError(f"response_instruction_ids={list(response_ids)} must be at least two of instruction_ids="
                         f"{sorted(int(i) for i in instruction_ids)} (not asked: {missing}).")
    return list(response_ids)


def response_prompts(results: pd.DataFrame, instruction_ids: Sequence[int]) -> pd.DataFrame:
    """The rows of :func:`ifhelpers.measure.mmlu.run_mmlu` results that responses are generated for:
    the instructions ``instruction_ids`` (App. C.1's three in the book: the paper's own prompts) in App.
    C.1's format and the original option order, so a question has one prompt per instruction and the
    prompts differ by the instruction's wording only."""
    check_response_instructions(results["instruction"].unique(), instruction_ids)
    keep = (results["format_id"] == 0) & (results["shuffle"] == 0) & results["instruction"].isin(instruction_ids)
    return results[keep].reset_index(drop=True)


def run_responses(lm: LoadedModel, results: pd.DataFrame, instruction_ids: Sequence[int],
                  max_new_tokens: int = RESPONSE_TOKENS, *, cache=True, progress=None) -> pd.DataFrame:
    """The greedy response of ``lm`` (:func:`ifhelpers.model.generate.greedy_responses`) to each prompt of
    :func:`response_prompts` (its own rows of ``results``): adds ``response_ids``, ``response`` (the decoded
    text), ``generated_index`` (the option it names, :func:`ifhelpers.metrics.multiprompt.answer_in_response`;
    -1: none) and ``generated_correct``."""
    frame = response_prompts(results[results["model"] == lm.name], instruction_ids).copy()
    ids = generate.greedy_responses(lm, frame["prompt"].tolist(), max_new_tokens, cache=cache, progress=progress)
    frame["response_ids"] = [tuple(r) for r in ids]
    frame["response"] = [lm.tokenizer.decode(r, skip_special_tokens=True) for r in ids]
    frame["generated_index"] = [metrics.multiprompt.answer_in_response(r) for r in frame["response"]]
    frame["generated_correct"] = frame["generated_index"].to_numpy() == frame["answer_index"].to_numpy()
    return frame


def posix_pairs(lm: LoadedModel, responses: pd.DataFrame, *, cache=True, progress=None) -> pd.DataFrame:
    """(1/L) log P(y_j | x_i) for every question and every ordered pair of its prompts (``i`` may equal
    ``j``): response y_j (:func:`run_responses`, the model's answer to prompt x_j) written after prompt x_i and
    scored by the engine (:class:`ifhelpers.model.engine.Request` with ``continuation``; for an encoder-decoder,
    y_j as its decoder's output after the encoder read x_i), L its length in tokens after x_i. A pair is NaN
    (``scored`` False) when the response is empty, longer than :data:`SCORED_TOKENS` after x_i, or would
    re-tokenize the end of x_i. Columns: the model's (:func:`ifhelpers.measure.stamp.stamp`), ``question_id``,
    ``prompt_i``, ``prompt_j``, ``n_tokens``, ``scored``, ``logprob`` (log P(y_j | x_i), summed over the
    response's tokens) and ``mean_logprob`` (that over L)."""
    rows, texts, positions = [], [], []
    closing = len(tokens.closing_ids(lm.tokenizer))  # T5's </s> ends x alone, and x + y after y
    for question, group in responses.groupby("question_id", sort=False):
        for prompt_i, x in zip(group["prompt_id"], group["prompt"]):
            last = len(tokens.encode(lm.tokenizer, x)) - 1 - closing  # the prompt's last token
            for prompt_j, y in zip(group["prompt_id"], group["response"]):
                try:
                    length = len(tokens.continuation_ids(lm.tokenizer, x, y))
                except ValueError:  # empty, or re-tokenizes the end of x
                    length = 0
                scored = 0 < length <= SCORED_TOKENS
                rows.append({"question_id": question, "prompt_i": prompt_i, "prompt_j": prompt_j, "n_tokens": length,
                             "scored": scored})
                if scored:
                    texts.append(x + y)
                    positions.append(last)
    out = pd.DataFrame(rows)
    out["logprob"] = np.nan
    out["mean_logprob"] = np.nan
    if texts:
        logprobs = engine.run(lm, texts, engine.Request(continuation=SCORED_TOKENS), positions, cache=cache,
                              progress=progress)["continuation_logprobs"]
        lengths = out.loc[out["scored"], "n_tokens"].to_numpy()
        totals = np.array([row[:n].sum() for row, n in zip(logprobs, lengths)])
        out.loc[out["scored"], "logprob"] = totals
        out.loc[out["scored"], "mean_logprob"] = totals / lengths
    return stamp(out, lm)



def answers_and_responses(setups: pd.DataFrame, instruction_ids: Sequence[int], *, progress=False) -> Measurement:
    """Chapter 6's measurement of one model: the letter-scored answers to every prompt of ``setups`` (table
    ``mmlu``, :func:`ifhelpers.measure.mmlu.run_mmlu`), the greedy responses under ``instruction_ids``
    (``responses``, :func:`run_responses`) and their scores under every prompt of the question (``posix``,
    :func:`posix_pairs`)."""
    def measure(lm: LoadedModel) -> dict[str, pd.DataFrame]:
        results = run_mmlu(lm, setups, progress=progress)
        responses = run_responses(lm, results, instruction_ids, progress=progress)
        return {"mmlu": results, "responses": responses, "posix": posix_pairs(lm, responses, progress=progress)}

    return measure
