"""Subject attribute rate of the logit lens (paper §4 "Subjects", App. D, Fig. 2; Geva et al. 2023).

Pure: arrays or tidy frames in, numbers out; nothing here imports the rest of the package
except its sibling metric modules.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


_MARKERS = " \t\r\n\u2581\u0120\u010a"  # whitespace, sentencepiece '▁', GPT-2 'Ġ' and 'Ċ'
#: App. D's length filter (Geva et al. 2023): tokens shorter than this many characters are dropped.
MIN_CHARS = 3


def clean_token(token: str) -> str:
    """Strip whitespace and word-boundary markers ('▁' sentencepiece, 'Ġ'/'Ċ' byte-BPE)
    from both ends of a decoded token, before the length and stopword filters (App. D)."""
    if not isinstance(token, str):
        raise TypeError(f"tokens must be strings; got {type(token).__name__}")
    return token.strip(_MARKERS)


def _keep(token: str, stopwords: frozenset, min_chars: int) -> bool:
    return len(token) >= min_chars and token.lower() not in stopwords


def _first_kept(ranked, stop: frozenset, k: int, min_chars: int, lowercase: bool) -> list[str]:
    kept = []
    for tok in ranked:
        tok = clean_token(tok)
        if _keep(tok, stop, min_chars):
            kept.append(tok.lower() if lowercase else tok)
            if len(kept) == k:
                break
    return kept


def kept_tokens(ranked, stopwords, k: int, min_chars: int = MIN_CHARS, lowercase: bool = False) -> list[str]:
    """The first ``k`` tokens of a ranking (best first) that survive App. D's filters: cleaned
    (:func:`clean_token`), without stopwords (case-insensitive) and tokens shorter than ``min_chars``;
    what :func:`subject_attribute_rate` compares with A_s."""
    return _first_kept(ranked, _stopword_set(stopwords), k, min_chars, lowercase)


def _stopword_set(stopwords) -> frozenset:
    if isinstance(stopwords, str):
        raise TypeError("stopwords must be a collection of words, not a single string")
    return frozenset(w.lower() for w in stopwords)


def _flatten_tokens(tokens) -> list[str]:
    if isinstance(tokens, str):
        raise TypeError("pass a sequence of token strings, not a single string")
    flat = []
    for tok in tokens:
        if isinstance(tok, str):
            flat.append(tok)
        elif isinstance(tok, Iterable):
            flat.extend(_flatten_tokens(tok))
        else:
            raise TypeError(f"tokens must be strings; got {type(tok).__name__}")
    return flat


def attribute_set(
    snippet_tokens, stopwords, min_chars: int = MIN_CHARS, lowercase: bool = False
) -> frozenset:
    """The subject's attribute set A_s from its Wikipedia snippets (§4, App. D).

    Following Geva et al. (2023) as App. D describes: the tokens of the top-500
    snippets mentioning the subject, deduplicated, without NLTK stopwords and without
    tokens shorter than ``min_chars`` (3) characters. Tokenisation is the caller's
    (App. D's length filter targets "short sub-words", i.e. model tokens); pass a flat
    sequence of tokens or one sequence per snippet.

    Case: tokens are kept as they are by default (``lowercase=False``), since model
    vocabularies are case-sensitive ("Apple" and "apple" are different tokens) and
    neither paper mentions lower-casing. The stopword test is case-insensitive ("The"
    is dropped like "the") because NLTK's list is lower-case. Use ``lowercase=True``
    here *and* in :func:`subject_attribute_rate` to match case-insensitively.

    paper: App. D
    """
    stop = _stopword_set(stopwords)
    out = set()
    for tok in _flatten_tokens(snippet_tokens):
        tok = clean_token(tok)
        if _keep(tok, stop, min_chars):
            out.add(tok.lower() if lowercase else tok)
    return frozenset(out)


def subject_attribute_rate(
    top_tokens,
    attributes,
    stopwords,
    k: int = 50,
    min_chars: int = MIN_CHARS,
    lowercase: bool = False,
):
    """Attribute rate: share of the top-k projected tokens found in A_s (§4, Fig. 2).

    ``top_tokens`` are the decoded tokens of E h^l (last subject token at layer l),
    ranked best first: one ranked list for one layer, or one list per layer. Tokens
    are cleaned (:func:`clean_token`); stopwords and tokens shorter than ``min_chars``
    are dropped; the first ``k`` survivors are kept and the share of them in
    ``attributes`` is returned. Pass a ranking longer than ``k`` (e.g. top 100-200) so
    that k tokens survive the filter. Distinct vocabulary entries that clean to the
    same string (e.g. '▁Paris' and 'Paris') count separately, as separate tokens. If
    fewer than ``k`` survive, the share is over the survivors; if none survive the
    rate is NaN for that layer.

    Returns
    -------
    float for one list, array (L,) for one list per layer.

    paper: Fig. 2
    """
    if isinstance(top_tokens, str):
        raise TypeError("pass a ranked sequence of token strings, not a single string")
    if k < 1:
        raise ValueError(f"k must be >= 1; got {k}")
    attrs = frozenset(attributes)
    stop = _stopword_set(stopwords)
    seq = list(top_tokens)
    if len(seq) == 0:
        raise ValueError("top_tokens is empty")
    is_str = [isinstance(t, str) for t in seq]
    single = all(is_str)
    if any(is_str) and not single:
        raise TypeError("top_tokens must be a list of strings or a list of such lists")
    layers = [seq] if single else [list(layer) for layer in seq]
    rates = []
    for ranked in layers:
        if len(ranked) == 0 or not all(isinstance(t, str) for t in ranked):
            raise TypeError("each layer's top_tokens must be a non-empty list of strings")
        kept = _first_kept(ranked, stop, k, min_chars, lowercase)
        rates.append(np.mean([t in attrs for t in kept]) if kept else np.nan)
    return float(rates[0]) if single else np.asarray(rates, dtype=np.float64)
