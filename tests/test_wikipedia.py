"""Subject snippets (paper §4 Fig. 2, App. D) and NLTK stopwords, on the real mirror."""

import json
from pathlib import Path

import pytest

from ifhelpers.data import pararel, sources, stopwords, wikipedia
from ifhelpers.data.sources import DataSelectionError

MIRROR = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(autouse=True)
def _mirror(monkeypatch, tmp_path):
    assert MIRROR.is_dir(), f"offline mirror not found at {MIRROR} (shared/ must sit beside the repo)"
    monkeypatch.setenv(sources.ENV_DATA, str(MIRROR))
    monkeypatch.setenv(sources.ENV_CACHE, str(tmp_path / "cache"))


def test_mention_rule():
    def span(text, subject, max_gap=3):
        (doc, spans), (sub, _) = wikipedia.word_tokens(text), wikipedia.word_tokens(subject)
        hit = wikipedia.match_mention(doc, sub, max_gap) if sub else None
        return None if hit is None else (spans[hit[0]][0], spans[hit[1]][1])

    assert span("Pius VII was pope.", "Pius VII") == (0, 8)
    assert span("Pope Pius the VII", "Pius VII") == (5, 17)  # extra text in between (footnote 14)
    assert span("Pius a b c d VII", "Pius VII") is None  # more than max_gap=3 words apart
    assert span("Pius a b c d VII", "Pius VII", max_gap=4) is not None
    assert span("a Parisian cafe", "Paris") is None  # whole words only
    assert span("born in ZÜRICH.", "Zurich") == (8, 14)  # case and accents ignored
    assert span("VII Pius", "Pius VII") is None  # in order
    assert span("anything", "...") is None


def test_corpus():
    corpus = wikipedia.load_corpus()
    assert len(corpus) == 2201 + 200 and corpus["doc_id"].is_unique
    assert corpus.attrs["n_malformed"] == 0


def test_search_corpus():
    hits = wikipedia.search_corpus("Goldman", limit=500)
    assert len(hits) >= 2 and (hits["source"] == wikipedia.CORPUS_SOURCE).all()
    assert hits["rank"].tolist() == list(range(1, len(hits) + 1))
    for snippet, a, b in zip(hits["snippet"], hits["match_start"], hits["match_end"]):
        assert snippet[a:b].lower() == "goldman"
    assert len(wikipedia.search_corpus("Goldman", limit=1)) == 1
    assert wikipedia.load_snippets("Zzyzx Qwerty").empty


def test_usable_subjects_on_pararel_subjects():
    subjects = sorted(set(pararel.load_facts("P17")["subject"]) | set(pararel.load_facts("P36")["subject"]))
    u = wikipedia.usable_subjects(subjects, min_snippets=1)
    assert u.attrs["n_subjects"] == len(subjects) == len(u)
    assert u.attrs["n_usable"] == int((u["n_snippets"] >= 1).sum()) > 0
    u5 = wikipedia.usable_subjects(subjects, min_snippets=5)
    assert u5["usable"].sum() <= u["usable"].sum()
    with pytest.raises(DataSelectionError):
        wikipedia.usable_subjects([])


def test_mediawiki_request_and_cache(monkeypatch):
    """The online path, with a fake HTTP session: parameters, markup removal, caching."""
    monkeypatch.delenv(sources.ENV_DATA)
    calls = []

    class Response:
        def raise_for_status(self):
            pass

        def json(self):
            return {"query": {"search": [
                {"pageid": 7, "title": "Pius VII", "snippet": '<span class="searchmatch">Pius</span> VII &amp; Napoleon'},
            ]}}

    class Session:
        def get(self, url, params, timeout, headers):
            calls.append((url, params))
            return Response()

    frame = wikipedia.search_mediawiki("Pius VII", session=Session())
    url, params = calls[0]
    assert url == "https://en.wikipedia.org/w/api.php"
    assert params["srqiprofile"] == "classic" and params["srlimit"] == 500 and params["srsearch"] == "Pius VII"
    assert frame.iloc[0]["snippet"] == "Pius VII & Napoleon" and frame.iloc[0]["doc_id"] == "enwiki:7"
    assert (frame["source"] == wikipedia.MEDIAWIKI_SOURCE).all()
    again = wikipedia.search_mediawiki("Pius VII", session=Session())  # served from the JSON cache
    assert len(calls) == 1 and again.equals(frame)
    cached = list((Path(sources.cache_root()) / "mediawiki").glob("*.json"))
    assert len(cached) == 1 and json.loads(cached[0].read_text())["subject"] == "Pius VII"
    with pytest.raises(DataSelectionError):
        wikipedia.search_mediawiki("x", limit=501)


def test_corpus_needs_the_mirror(monkeypatch):
    monkeypatch.delenv(sources.ENV_DATA)
    with pytest.raises(DataSelectionError, match="MediaWiki"):
        wikipedia.load_corpus()


def test_stopwords():
    words = stopwords.english_stopwords()
    assert isinstance(words, frozenset) and len(words) == 178
    assert {"the", "and", "of", "is"} <= words and "paris" not in words
