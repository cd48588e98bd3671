"""Wikipedia snippets that mention a subject, for the subject-attribute sets (paper §4 Fig. 2, App. D).

The paper builds, for each ParaRel subject ``s``, a set of attribute tokens ``A_s`` from the
top 500 English Wikipedia search snippets mentioning ``s`` (MediaWiki search API, "classic"
ranking profile), then tokenizes them and drops duplicates, NLTK stopwords and tokens under
3 characters (Geva et al., 2023). Footnote 14: "the mention can include extra text in
between words of the subject". This module provides the snippet lists; tokenization needs
the model's tokenizer and lives elsewhere.

Two sources, chosen like every loader (``data_dir=`` / ``IFHELPERS_DATA``):

* online (no mirror): :func:`search_mediawiki`, the paper's method: ``list=search`` with
  ``srqiprofile=classic``, ``srlimit=500``, the subject unquoted (so its words may be apart,
  as in footnote 14). Responses are cached as JSON per subject under the cache folder.
* offline (mirror set): :func:`search_corpus` over the mirror's 2,201 WikiHop support
  paragraphs and 200 DBpedia abstracts, labelled ``source = CORPUS_SOURCE``. It is tiny next
  to Wikipedia: most subjects have no snippet (see :func:`usable_subjects`).

Offline matching rule (our reading of footnote 14): text and subject are split into word
tokens (runs of letters/digits; punctuation ignored), accents removed and case folded; a
paragraph mentions the subject when the subject's tokens occur in order with at most
``max_gap`` (default 3) other tokens between consecutive ones. ``"Pius VII"`` matches
"Pius VII" and "Pope Pius the VII"; ``"Paris"`` does not match "Parisian". One snippet
per paragraph (as search returns one per page): the first mention with ``window`` tokens
(default 20) of context on each side.
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import re
import unicodedata
from typing import Iterable, Sequence

import pandas as pd

from ifhelpers.data.sources import (
    DataSelectionError,
    cache_lock,
    cache_root,
    locate,
    mirror_root,
    note_malformed,
    read_jsonl,
    file_key,
)

__all__ = [
    "API_URL",
    "MEDIAWIKI_SOURCE",
    "CORPUS_SOURCE",
    "load_corpus",
    "word_tokens",
    "match_mention",
    "search_corpus",
    "search_mediawiki",
    "load_snippets",
    "usable_subjects",
]

API_URL = "https://en.wikipedia.org/w/api.php"
MEDIAWIKI_SOURCE = "mediawiki search (srqiprofile=classic)"
CORPUS_SOURCE = "offline corpus: wikihop paragraphs + dbpedia abstracts (stand-in for MediaWiki search)"
_SNIPPET_COLUMNS = ["subject", "rank", "doc_id", "title", "snippet", "source"]
_WORD = re.compile(r"\w+")
_TAG = re.compile(r"<[^>]+>")


def _norm(token: str) -> str:
    decomposed = unicodedata.normalize("NFKD", token)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def word_tokens(text: str) -> tuple[list[str], list[tuple[int, int]]]:
    """The word tokens of ``text`` (case and accents folded) and their character spans."""
    matches = list(_WORD.finditer(text))
    return [_norm(m.group()) for m in matches], [m.span() for m in matches]


def match_mention(doc_tokens: Sequence[str], subject_tokens: Sequence[str], max_gap: int) -> tuple[int, int] | None:
    """The mention rule (see the module docstring): the first ``(first, last)`` token indices of
    ``subject_tokens`` in ``doc_tokens`` in order, with at most ``max_gap`` other tokens between two
    consecutive subject tokens; None when there is no mention."""
    k, n = len(subject_tokens), len(doc_tokens)

    def extend(pos: int, m: int) -> int | None:
        if m == k:
            return pos
        for q in range(pos + 1, min(n, pos + 2 + max_gap)):
            if doc_tokens[q] == subject_tokens[m]:
                end = extend(q, m + 1)
                if end is not None:
                    return end
        return None

    for p in range(n):
        if doc_tokens[p] == subject_tokens[0]:
            end = extend(p, 1)
            if end is not None:
                return p, end
    return None



# --------------------------------------------------------------------------- offline corpus

_INDEX: dict = {}


def load_corpus(data_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """The offline snippet corpus (mirror only): WikiHop paragraphs and DBpedia abstracts.

    Columns ``doc_id`` (``"wikihop:<id>"`` / ``"dbpedia:<id>"``), ``corpus``, ``title``
    (empty for WikiHop paragraphs), ``text``. Malformed lines are counted in
    ``attrs["n_malformed"]`` and warned about.
    """
    if mirror_root(data_dir) is None:
        raise DataSelectionError(
            "The offline Wikipedia corpus exists only in the mirror; with no mirror set, snippets come "
            "from the MediaWiki search API (search_mediawiki / load_snippets). Set IFHELPERS_DATA=/path/to/"
            "shared/data to use the corpus."
        )
    parts, bad_all = [], []
    for corpus, name, keys in (("wikihop", "wikihop_paragraphs.jsonl", ["id", "text"]),
                               ("dbpedia", "dbpedia_abstracts.jsonl", ["id", "title", "text"])):
        path = locate(f"wikipedia/{name}", data_dir, None, what=f"{corpus} snippet corpus")
        records, bad = read_jsonl(path, required=keys, nonempty=["text"])
        bad_all.append((bad, path))
        parts.append(pd.DataFrame({
            "doc_id": [f"{corpus}:{r['id']}" for r in records],
            "corpus": corpus,
            "title": [r.get("title", "") or "" for r in records],
            "text": [r["text"] for r in records],
        }))
    frame = pd.concat(parts, ignore_index=True)
    frame.attrs.update(n_malformed=0, malformed=[], source=CORPUS_SOURCE)
    for bad, path in bad_all:
        note_malformed(frame, bad, "Wikipedia snippet corpus", path)
    return frame


class _CorpusIndex:
    """Token lists, spans and an inverted index of the corpus (built once per mirror)."""

    def __init__(self, corpus: pd.DataFrame):
        self.corpus = corpus
        self.texts = corpus["text"].tolist()
        self.tokens, self.spans, self.postings = [], [], {}
        for d, text in enumerate(self.texts):
            toks, spans = word_tokens(text)
            self.tokens.append(toks)
            self.spans.append(spans)
            for t in set(toks):
                self.postings.setdefault(t, set()).add(d)

    def search(self, subject: str, max_gap: int, limit: int | None) -> list[tuple[int, int, int]]:
        """(doc, first token, last token) of documents mentioning ``subject``, in corpus order."""
        subject_tokens, _ = word_tokens(subject)
        if not subject_tokens:
            return []
        candidates = None
        for t in set(subject_tokens):
            docs = self.postings.get(t)
            if not docs:
                return []
            candidates = docs if candidates is None else candidates & docs
        hits = []
        for d in sorted(candidates):
            hit = match_mention(self.tokens[d], subject_tokens, max_gap)
            if hit is not None:
                hits.append((d, hit[0], hit[1]))
                if limit is not None and len(hits) >= limit:
                    break
        return hits


def _index(data_dir) -> _CorpusIndex:
    root = mirror_root(data_dir)
    paths = [root / "wikipedia" / n for n in ("wikihop_paragraphs.jsonl", "dbpedia_abstracts.jsonl")]
    key = tuple(file_key(p) if p.is_file() else str(p) for p in paths)
    if key not in _INDEX:
        _INDEX[key] = _CorpusIndex(load_corpus(data_dir))
    return _INDEX[key]


def search_corpus(
    subject: str,
    limit: int = 500,
    max_gap: int = 3,
    window: int = 20,
    data_dir: str | os.PathLike | None = None,
) -> pd.DataFrame:
    """Snippets of the offline corpus that mention ``subject`` (App. D, offline stand-in).

    Columns
        subject : str
        rank : int       1-based; corpus order (WikiHop then DBpedia), as there is no ranking.
        doc_id : str
        title : str      DBpedia title, empty for WikiHop paragraphs.
        snippet : str    the first mention with ``window`` tokens of context on each side.
        source : str     :data:`CORPUS_SOURCE`.
        match_start, match_end : int   character span of the mention in ``snippet``.
    """
    index = _index(data_dir)
    rows = []
    for rank, (d, first, last) in enumerate(index.search(subject, max_gap, limit), start=1):
        spans = index.spans[d]
        lo = spans[max(0, first - window)][0]
        hi = spans[min(len(spans) - 1, last + window)][1]
        text = index.texts[d]
        rows.append((subject, rank, index.corpus.at[d, "doc_id"], index.corpus.at[d, "title"], text[lo:hi],
                     CORPUS_SOURCE, spans[first][0] - lo, spans[last][1] - lo))
    frame = pd.DataFrame(rows, columns=_SNIPPET_COLUMNS + ["match_start", "match_end"])
    frame.attrs["source"] = CORPUS_SOURCE
    return frame


# --------------------------------------------------------------------------- online search


def search_mediawiki(
    subject: str,
    limit: int = 500,
    profile: str = "classic",
    session=None,
    refresh: bool = False,
    timeout: float = 30.0,
) -> pd.DataFrame:
    """Top ``limit`` (<= 500) English Wikipedia search snippets for ``subject`` (App. D).

    Calls the MediaWiki API ``action=query&list=search`` with ``srsearch=<subject>``
    (unquoted), ``srqiprofile=<profile>`` ("classic" ranks by incoming links, templates,
    page language and recency), ``srlimit=<limit>``, ``srprop=snippet``. The JSON response is
    cached under ``<cache>/mediawiki/``; ``refresh=True`` ignores the cache.
    The highlight markup (``<span class="searchmatch">``) is removed and entities unescaped.

    Columns ``subject``, ``rank`` (1-based, the API's order), ``doc_id`` (``"enwiki:<pageid>"``),
    ``title``, ``snippet``, ``source`` (:data:`MEDIAWIKI_SOURCE`).
    """
    if not 1 <= limit <= 500:
        raise DataSelectionError(f"limit must be between 1 and 500 (the API's srlimit maximum), got {limit}")
    digest = hashlib.sha1(f"{subject}\x00{limit}\x00{profile}".encode("utf-8")).hexdigest()
    cache_file = cache_root() / "mediawiki" / f"{digest}.json"
    if cache_file.is_file() and not refresh:
        results = json.loads(cache_file.read_text(encoding="utf-8"))["results"]
    else:
        import requests

        from ifhelpers.data.sources import USER_AGENT

        params = {"action": "query", "list": "search", "srsearch": subject, "srlimit": limit,
                  "srqiprofile": profile, "srprop": "snippet", "srnamespace": 0, "format": "json",
                  "formatversion": 2}
        http = session or requests.Session()
        response = http.get(API_URL, params=params, timeout=timeout, headers={"User-Agent": USER_AGENT})
        response.raise_for_status()
        payload = response.json()
        if "error" in payload:
            raise RuntimeError(f"MediaWiki API error for {subject!r}: {payload['error']}")
        results = payload.get("query", {}).get("search", [])
        with cache_lock(cache_file):
            tmp = cache_file.with_suffix(f".{os.getpid()}.part")
            tmp.write_text(json.dumps({"subject": subject, "params": params, "results": results}), encoding="utf-8")
            os.replace(tmp, cache_file)
    rows = [(subject, rank, f"enwiki:{r.get('pageid')}", r.get("title", ""),
             html.unescape(_TAG.sub("", r.get("snippet", ""))), MEDIAWIKI_SOURCE)
            for rank, r in enumerate(results, start=1)]
    frame = pd.DataFrame(rows, columns=_SNIPPET_COLUMNS)
    frame.attrs["source"] = MEDIAWIKI_SOURCE
    return frame


def load_snippets(
    subject: str, limit: int = 500, max_gap: int = 3, data_dir: str | os.PathLike | None = None
) -> pd.DataFrame:
    """Snippets mentioning ``subject``: the offline corpus when a mirror is set, else MediaWiki.

    The ``source`` column (and ``attrs["source"]``) says which, so figures can label it.
    """
    if mirror_root(data_dir) is None:
        return search_mediawiki(subject, limit=limit)
    return search_corpus(subject, limit=limit, max_gap=max_gap, data_dir=data_dir)


def usable_subjects(
    subjects: Iterable[str],
    min_snippets: int = 1,
    limit: int = 500,
    max_gap: int = 3,
    data_dir: str | os.PathLike | None = None,
) -> pd.DataFrame:
    """How many snippets each subject has, and whether that reaches ``min_snippets`` (§4, App. D).

    Columns ``subject``, ``n_snippets`` (capped at ``limit``), ``usable`` (bool).
    ``attrs``: ``n_subjects``, ``n_usable``, ``min_snippets``, ``source``. Offline this uses the
    corpus index and is fast; online it makes one (cached) API request per subject.
    """
    subjects = list(dict.fromkeys(subjects))
    if not subjects:
        raise DataSelectionError("subjects is empty")
    if mirror_root(data_dir) is None:
        counts = [len(search_mediawiki(s, limit=limit)) for s in subjects]
        source = MEDIAWIKI_SOURCE
    else:
        index = _index(data_dir)
        counts = [len(index.search(s, max_gap, limit)) for s in subjects]
        source = CORPUS_SOURCE
    frame = pd.DataFrame({"subject": subjects, "n_snippets": counts})
    frame["usable"] = frame["n_snippets"] >= min_snippets
    frame.attrs.update(n_subjects=len(frame), n_usable=int(frame["usable"].sum()), min_snippets=min_snippets,
                       source=source)
    return frame
