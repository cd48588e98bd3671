"""Prompt formats: the paper's Table 3 (representations, ParaRel) and App. C.1 (MMLU).

Base models get plain prompts. Instruction-tuned models get a dialogue: the paper used the
``<|user|>`` / ``<|assistant|>`` format the open-instruct models were trained with
(``prompt_format: open-instruct`` in the registry); a model that ships its own chat template
(``prompt_format: chat-template``) gets the same user turn and assistant prefix through it.

Every prompt of Table 3 is written once, as a *user turn* and an *assistant prefix*; the input
example goes in the placeholder ``{}``. For ParaRel the query goes in the assistant turn, so the
model continues the sentence it is "saying".
"""

from __future__ import annotations

from dataclasses import dataclass

from ifhelpers.data.formats import APPENDIX_C1, MMLUFormat
from ifhelpers.data.mmlu import LETTERS, format_subject

#: The datasets of Table 3: full sentences (MRPC, TaPaCo) and ParaRel's cloze-style queries.
DATASET_KINDS = ("sentence", "pararel")


@dataclass(frozen=True)
class DialoguePrompt:
    """One row of Table 3 for instruction-tuned models: a user turn and an assistant prefix."""

    user: str
    assistant: str = ""


#: Table 3, "Base Model" rows.
BASE_PROMPTS: dict[str, tuple[str, ...]] = {
    "sentence": ("{}", "Consider the following sentence: {}", "Summarize the main message of the following sentence.\n{}"),
    "pararel": ("{}", "Everyone knows that {}", "It is widely known that {}"),
}

#: Table 3, "IFT Models" rows.
DIALOGUE_PROMPTS: dict[str, tuple[DialoguePrompt, ...]] = {
    "sentence": (
        DialoguePrompt("Summarize the main message of the following sentence.\n{}"),
        DialoguePrompt("What does this sentence mean?\n{}"),
        DialoguePrompt("{}"),
    ),
    "pararel": (
        DialoguePrompt("Complete the sentence with as few words as possible.", "{}"),
        DialoguePrompt("Provide concise info to complete sentence.", "{}"),
        DialoguePrompt("Please finish the sentence.", "{}"),
    ),
}

#: App. C.1: the three MMLU instructions; ``{}`` takes the subject (e.g. "high school mathematics").
MMLU_INSTRUCTIONS: tuple[str, ...] = (
    "The following are multiple choice questions (with answers) about {}.",
    "The following are multiple choice questions with their respective answer. The questions are about {}.",
    "Answer to the best of your abilities the following multiple choice questions about {}.",
)
#: More instructions with the meaning of App. C.1's, written for this book (chapter 6's many prompts);
#: instruction ids 3, 4, 5 of :func:`mmlu_instruction`. Not the paper's.
EXTRA_MMLU_INSTRUCTIONS: tuple[str, ...] = (
    "Here are multiple choice questions about {}. Each has one correct answer.",
    "Choose the correct answer to each of the following multiple choice questions about {}.",
    "Below are questions about {}, each followed by four options of which one is right.",
)
#: Every instruction id :func:`mmlu_instruction` takes: App. C.1's 0-2, then the book's.
MMLU_INSTRUCTION_IDS = tuple(range(len(MMLU_INSTRUCTIONS) + len(EXTRA_MMLU_INSTRUCTIONS)))
MMLU_LETTERS = LETTERS
#: The phrase the model completes after an MMLU question: the base prompt ends in "Answer:", the dialogue
#: prompt opens the assistant turn with "The answer is:" (open-instruct's MMLU evaluation); a layout
#: (:class:`ifhelpers.data.formats.MMLUFormat`) cases the phrase and chooses what ends it.
MMLU_ANSWER_CUE = {"base": "Answer", "dialogue": "The answer is"}


def render_dialogue(user: str, assistant: str, prompt_format: str, tokenizer=None) -> str:
    """A user turn and an assistant prefix in the model's dialogue format."""
    if prompt_format == "open-instruct":
        return f"<|user|>\n{user}\n<|assistant|>\n{assistant}"
    if prompt_format == "chat-template":
        if tokenizer is None or not getattr(tokenizer, "chat_template", None):
            raise ValueError("prompt_format 'chat-template' needs a tokenizer that has a chat template; "
                             "use prompt_format='open-instruct' for models without one.")
        head = tokenizer.apply_chat_template([{"role": "user", "content": user}], tokenize=False,
                                             add_generation_prompt=True)
        return head + assistant
    raise ValueError(f"render_dialogue needs a dialogue format ('open-instruct' or 'chat-template'), got {prompt_format!r}")


def format_prompt(text: str, dataset_kind: str, prompt_id: int, prompt_format: str, tokenizer=None) -> str:
    """``text`` inside prompt ``prompt_id`` (0, 1, 2) of Table 3 for a model's ``prompt_format``.

    paper: Table 3
    """
    if dataset_kind not in DATASET_KINDS:
        raise ValueError(f"dataset_kind must be one of {DATASET_KINDS}, got {dataset_kind!r}")
    if prompt_id not in (0, 1, 2):
        raise ValueError(f"Table 3 has prompts 0, 1 and 2 per dataset; got prompt_id={prompt_id!r}")
    if prompt_format == "base":
        return BASE_PROMPTS[dataset_kind][prompt_id].format(text)
    prompt = DIALOGUE_PROMPTS[dataset_kind][prompt_id]
    return render_dialogue(prompt.user.format(text), prompt.assistant.format(text), prompt_format, tokenizer)


def subject_span(prompt: str, query: str, subject_start: int, subject_end: int) -> tuple[int, int]:
    """Character span of the subject inside ``prompt``, given its span inside the ParaRel ``query``.

    Uses the last occurrence of the query in the prompt (the query is the end of every ParaRel prompt).
    """
    offset = prompt.rfind(query)
    if offset < 0:
        raise ValueError(f"query {query!r} does not occur in prompt {prompt!r}")
    return offset + subject_start, offset + subject_end


def mmlu_instruction(subject: str, instruction_id: int) -> str:
    """Instruction ``instruction_id`` for ``subject`` (``"high_school_geography"`` written out): 0-2 are
    App. C.1's (:data:`MMLU_INSTRUCTIONS`), 3 and up this book's paraphrases (:data:`EXTRA_MMLU_INSTRUCTIONS`);
    the first line of :func:`format_mmlu`'s prompt."""
    every = MMLU_INSTRUCTIONS + EXTRA_MMLU_INSTRUCTIONS
    if instruction_id not in MMLU_INSTRUCTION_IDS:
        raise ValueError(f"instruction_id must be among {list(MMLU_INSTRUCTION_IDS)} (0-2 App. C.1's, the others "
                         f"this book's paraphrases); got {instruction_id!r}")
    return every[instruction_id].format(format_subject(subject))


def format_mmlu(subject: str, question: str, choices, instruction_id: int, prompt_format: str, tokenizer=None,
                layout: MMLUFormat = APPENDIX_C1) -> str:
    """A zero-shot MMLU prompt with instruction ``instruction_id`` in ``layout`` (default App. C.1's).

    The instruction, a blank line, the question and its options (:meth:`MMLUFormat.question_block`), then
    the answer cue: "Answer:" at the end of a base prompt, "The answer is:" opening the assistant turn of a
    dialogue, both cased and ended by ``layout``. The prompt ends right before the answer letter, so the
    next token is scored against " A" ... " D" (see :func:`ifhelpers.measure.mmlu.answer_letter_ids`).

    paper: App. C.1
    """
    body = f"{mmlu_instruction(subject, instruction_id)}\n\n{layout.question_block(question, choices)}"
    if prompt_format == "base":
        return f"{body}\n{layout.cue(MMLU_ANSWER_CUE['base'])}"
    return render_dialogue(body, layout.cue(MMLU_ANSWER_CUE["dialogue"]), prompt_format, tokenizer)
