"""NLTK's English stopword list, for the subject-attribute sets (paper §4 Fig. 2, App. D).

App. D removes "stopwords using the NLTK package" from the tokens of the Wikipedia snippets
(following Geva et al., 2023). Sources, in order:

1. the offline mirror (``data_dir=`` or ``IFHELPERS_DATA``): ``nltk_data/corpora/stopwords/english``,
   read directly (the same file ``NLTK_DATA=<mirror>/nltk_data`` would give NLTK);
2. otherwise NLTK's own data search path (which honours ``NLTK_DATA``);
3. otherwise ``nltk.download("stopwords")`` into ``<cache>/nltk_data``.
"""

from __future__ import annotations

import os
from functools import lru_cache

from ifhelpers.data.sources import DataFormatError, DataNotFoundError, cache_root, locate, mirror_root

__all__ = ["english_stopwords"]


def english_stopwords(data_dir: str | os.PathLike | None = None) -> frozenset[str]:
    """NLTK's English stopwords as a frozenset of lower-case words (178 in the mirror), e.g. ``"the"``."""
    root = mirror_root(data_dir)
    if root is not None:
        path = locate("nltk_data/corpora/stopwords/english", data_dir, None, what="NLTK English stopwords")
        return _read(str(path))
    return _from_nltk()


@lru_cache(maxsize=None)
def _read(path: str) -> frozenset[str]:
    with open(path, encoding="utf-8") as fh:
        words = frozenset(line.strip() for line in fh if line.strip())
    if not words:
        raise DataFormatError(f"NLTK stopword file {path} is empty; expected one word per line")
    return words


def _from_nltk() -> frozenset[str]:  # pragma: no cover - needs NLTK data or the network
    import nltk

    try:
        return frozenset(nltk.corpus.stopwords.words("english"))
    except LookupError:
        pass
    target = cache_root() / "nltk_data"
    try:
        ok = nltk.download("stopwords", download_dir=str(target), quiet=True)
    except Exception as err:
        ok, why = False, err
    else:
        why = "nltk.download returned False"
    path = target / "corpora" / "stopwords" / "english"
    if not ok or not path.is_file():
        raise DataNotFoundError(
            "NLTK English stopwords not found.\n"
            f"  looked in: NLTK's data path {list(nltk.data.path)}, then tried nltk.download into {target} ({why})\n"
            "  what to do: set IFHELPERS_DATA=/path/to/shared/data (the offline mirror), or NLTK_DATA to a "
            "folder holding corpora/stopwords/english."
        )
    return _read(str(path))
