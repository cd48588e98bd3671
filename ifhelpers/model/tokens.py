"""Tokenization details that silently change results if done naively.

* Where a word starts after a prompt: " A" after "Answer:" is one token for most tokenizers, but
  which one depends on the tokenizer (``▁A`` for SentencePiece, ``ĠA`` for byte-level BPE) and on the
  prompt's last characters. :func:`continuation_ids` finds it by tokenizing prompt and prompt +
  continuation and taking the difference.
* Where the subject ends inside a prompt (paper §4: the last subject token), from character offsets.
"""

from __future__ import annotations


def encode(tokenizer, text: str) -> list[int]:
    """Token ids of ``text`` as the engine feeds it (special tokens added unless the text starts with BOS)."""
    bos = getattr(tokenizer, "bos_token", None)
    add_special = not (bos and text.startswith(bos))
    return tokenizer(text, add_special_tokens=add_special)["input_ids"]


def continuation_ids(tokenizer, prompt: str, continuation: str) -> list[int]:
    """Token ids that ``continuation`` adds after ``prompt`` (e.g. ``" A"`` after ``"Answer:"``).

    Raises if tokenizing ``prompt + continuation`` changes the prompt's own tokens, since the
    continuation's first token is then not a next-token prediction after the prompt. A tokenizer that
    ends every input with special tokens (:func:`closing_ids`: T5's ``</s>``) ends both texts with them;
    they are left out, so the continuation is what comes between the prompt's tokens and them: for an
    encoder-decoder model, which reads the prompt whole, what its decoder writes first.
    """
    head = encode(tokenizer, prompt)
    full = encode(tokenizer, prompt + continuation)
    close = closing_ids(tokenizer)
    if close and head[-len(close):] == close and full[-len(close):] == close:
        head, full = head[:-len(close)], full[:-len(close)]
    if full[: len(head)] != head:
        raise ValueError(
            f"Appending {continuation!r} re-tokenizes the end of the prompt {prompt[-30:]!r}; "
            f"score the continuation without the merged characters."
        )
    if len(full) == len(head):
        raise ValueError(f"{continuation!r} adds no token after the prompt")
    return full[len(head):]


def closing_ids(tokenizer) -> list[int]:
    """The special tokens ``tokenizer`` ends every input with (T5's ``</s>``; none for most decoders'
    tokenizers, which add a BOS token in front, if anything)."""
    bare = tokenizer("x", add_special_tokens=False)["input_ids"]
    full = tokenizer("x", add_special_tokens=True)["input_ids"]
    for start in range(len(full) - len(bare) + 1):
        if full[start:start + len(bare)] == bare:
            return full[start + len(bare):]
    return []


def first_continuation_id(tokenizer, prompt: str, continuation: str) -> int:
    """The first token of ``continuation`` after ``prompt``: the one a next-token prediction must hit."""
    return continuation_ids(tokenizer, prompt, continuation)[0]


def token_index_at_char(tokenizer, text: str, char_index: int) -> int:
    """Index (in :func:`encode`'s ids) of the token that covers character ``char_index`` of ``text``.

    Used for the last subject token: ``token_index_at_char(tok, prompt, subject_end - 1)``.
    """
    if not 0 <= char_index < len(text):
        raise ValueError(f"char_index {char_index} is outside the text (length {len(text)})")
    bos = getattr(tokenizer, "bos_token", None)
    add_special = not (bos and text.startswith(bos))
    enc = tokenizer(text, add_special_tokens=add_special, return_offsets_mapping=True)
    for index, (start, end) in enumerate(enc["offset_mapping"]):
        if start <= char_index < end:
            return index
    # Some tokenizers give a leading-space token an offset that starts after the space: take the
    # first token that starts after the character.
    for index, (start, end) in enumerate(enc["offset_mapping"]):
        if end > start and start > char_index:
            return index
    raise ValueError(f"no token covers character {char_index} of {text!r}")
