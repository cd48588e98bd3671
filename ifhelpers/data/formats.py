"""MMLU prompt formats: a FormatSpread-style grammar of the layout around a question (chapter 6).

Sclar et al. (2024, "FormatSpread") vary what a prompt's *format* is made of while keeping its
meaning: how options are labelled and separated, how the answer field is spelled and cased. A
:class:`MMLUFormat` is one choice for each factor of :data:`GRAMMAR`; :data:`APPENDIX_C1` is the layout
of App. C.1 (Hendrycks et al. 2021), the only one the paper uses:

.. code-block:: text

    The following are multiple choice questions (with answers) about astronomy.   <- instruction

    What is the Sun?                                                               <- question
    A. A star                                                                      <- options
    B. A planet
    ...
    Answer:                                                                        <- answer cue

Every factor acts *after the question*, so all formats of one (instruction, question) share the same
first tokens, which the engine computes once (prefix reuse); and the model is always scored on the bare
letters " A" ... " D" after the cue (as lm-evaluation-harness scores MMLU), whatever the options'
label style: a prompt that shows "(A)" but is scored on " A" is itself one of the format's effects.
:func:`sample_formats` draws a seeded set of formats that always begins with :data:`APPENDIX_C1`.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass

import pandas as pd

from ifhelpers.data.mmlu import LETTERS
from ifhelpers.data.sources import rng_for

#: The factors of the grammar and their levels (the first level of each is App. C.1's).
GRAMMAR: dict[str, tuple[str, ...]] = {
    "label": ("{}.", "{})", "({})", "{}:"),        # option label around the letter: A.  A)  (A)  A:
    "option_separator": ("\n", "; "),             # between options: one per line, or one line
    "question_separator": ("\n", "\n\n"),         # between the question and its options
    "cue_casing": ("as written", "lower", "upper"),  # the answer cue: Answer / answer / ANSWER
    "cue_separator": (":", " -", "::"),           # what ends the cue before the letter
}


@dataclass(frozen=True)
class MMLUFormat:
    """One point of :data:`GRAMMAR`: the layout of the options and of the answer cue."""

    label: str = "{}."
    option_separator: str = "\n"
    question_separator: str = "\n"
    cue_casing: str = "as written"
    cue_separator: str = ":"

    def __post_init__(self):
        for factor, value in asdict(self).items():
            if value not in GRAMMAR[factor]:
                raise ValueError(f"{factor}={value!r} is not in the grammar; choose one of {list(GRAMMAR[factor])}")

    @property
    def name(self) -> str:
        """A short readable name, e.g. ``A. | newline | newline | Answer:`` for App. C.1's layout."""
        sep = {"\n": "newline", "\n\n": "blank line", "; ": "semicolon"}
        return " | ".join([self.label.format("A"), sep[self.option_separator], sep[self.question_separator],
                           self.cue("Answer")])

    def cue(self, phrase: str) -> str:
        """The answer cue: ``phrase`` (e.g. "Answer" or "The answer is") cased and ended by this format."""
        cased = {"as written": phrase, "lower": phrase.lower(), "upper": phrase.upper()}[self.cue_casing]
        return cased + self.cue_separator

    def options(self, choices) -> str:
        """The lettered options, e.g. ``A. Paris\\nB. Rome\\n...``."""
        if len(choices) != len(LETTERS):
            raise ValueError(f"MMLU questions have {len(LETTERS)} options, got {len(choices)}")
        return self.option_separator.join(f"{self.label.format(letter)} {choice}"
                                          for letter, choice in zip(LETTERS, choices))

    def question_block(self, question: str, choices) -> str:
        """The question followed by its options."""
        return f"{question.strip()}{self.question_separator}{self.options(choices)}"


#: App. C.1's layout (the paper's only format), the first of every :func:`sample_formats`.
APPENDIX_C1 = MMLUFormat()


def all_formats() -> list[MMLUFormat]:
    """Every format of :data:`GRAMMAR` (4 × 2 × 2 × 3 × 3 = 144), App. C.1's first."""
    return [MMLUFormat(*levels) for levels in itertools.product(*GRAMMAR.values())]


def sample_formats(n_formats: int, seed: int = 0) -> list[MMLUFormat]:
    """:data:`APPENDIX_C1` and ``n_formats - 1`` other formats of the grammar, drawn without replacement
    by a generator seeded with ``seed`` (the same seed gives the same formats on every machine), in the
    order drawn: the first ``k`` formats of a larger draw are the draw of ``k``."""
    formats = all_formats()
    if not 1 <= int(n_formats) <= len(formats):
        raise ValueError(f"n_formats must be between 1 and {len(formats)} (the size of the grammar); got {n_formats!r}")
    others = rng_for(seed, "mmlu-formats").permutation(len(formats) - 1)[: int(n_formats) - 1] + 1
    return [formats[0], *(formats[i] for i in others)]


def format_table(formats) -> pd.DataFrame:
    """The formats as a table for the appendix: one row each, the factors written out as they appear."""
    shown = {"\n": "newline", "\n\n": "blank line", "; ": "'; '"}
    rows = [{"format": f.name, "label": f.label.format("A"), "between options": shown[f.option_separator],
             "question → options": shown[f.question_separator], "answer cue": f.cue("Answer")} for f in formats]
    return pd.DataFrame(rows).rename_axis("format_id")
