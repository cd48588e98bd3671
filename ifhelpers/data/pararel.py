"""ParaRel: paraphrased factual queries (paper §2 Table 1, §3 Table 2, §4 Figs. 2-5).

ParaRel (Elazar et al., 2021) gives, for each Wikidata relation, a set of paraphrased
templates such as ``"[X] was born in [Y]."`` and ``"[X] is originally from [Y]."``, and
T-REx facts (subject, object) for that relation. A *query* is a template with ``[X]``
filled by the subject and the object slot ``[Y]`` removed: ``"Allan Peiper was born in"``.
All queries of one fact form a paraphrase set (§2, §B.1); the model's next-token
predictions on them give factual consistency (§3).

Which templates are kept
    An autoregressive LM predicts the object as the *next* tokens, so only templates whose
    ``[Y]`` is at the end (optionally followed by ``"."`` or ``" ."``) make a query: the
    query is the text before ``[Y]``, stripped. Templates with ``[Y]`` first
    (``"[Y] is the capital of [X]."``) or in the middle (``"[X] is a [Y] by profession."``)
    are kept in :func:`load_patterns` with ``ends_with_object=False`` and left out of
    :func:`load_queries`. In the mirror this keeps 214 of 329 templates; all 39 pattern
    relations keep at least one, 35 keep two or more (only those give paraphrase pairs).
    :func:`relation_summary` has the per-relation counts.

Which relations are usable
    The mirror has templates for 39 relations and T-REx facts for 41; P31 and P527 have
    facts but no templates, so the 39 relations with both are usable (the paper's footnote 1
    says 38).

Warts handled here
    * Duplicate subjects within a relation (several rows with the same ``sub_label``) are
      merged into one fact per subject; ``attrs["n_duplicate_subject_rows"]`` counts the
      rows merged.
    * N-M relations (P47 shares-border-with, P530 diplomatic-relations, P190 twin-city, ...):
      one subject can have several correct objects. They are gathered in the ``objects``
      column (a tuple, file order); ``object`` is the first. A prediction is correct when it
      matches any of ``objects``.
    * T-REx objects were filtered to be single tokens for BERT-style vocabularies; for
      LLaMA-style tokenizers an object may be several tokens. The data layer keeps the
      object string; matching predictions to objects is the evaluation's job.
    * Templates differing only by ``a``/``an`` (``"[X] works as a [Y]."``/``"... an [Y]."``)
      are both kept, as in ParaRel.

Only the JSON-lines files are read (never the pickled graph files of the ParaRel repo).
"""

from __future__ import annotations

import os
import re
from typing import Sequence

import numpy as np
import pandas as pd

from ifhelpers.data.sources import (
    GITHUB_SOURCES,
    DataNotFoundError,
    DataSelectionError,
    GitHubFile,
    locate,
    mirror_root,
    note_malformed,
    read_jsonl,
    rng_for,
)

__all__ = [
    "PATTERN_RELATIONS",
    "TREX_RELATIONS",
    "load_relations",
    "load_patterns",
    "load_facts",
    "load_queries",
    "fill_template",
    "template_ends_with_object",
    "final_word",
    "relation_summary",
    "paraphrase_sets",
    "relation_query_pairs",
]

# The relations at the pinned commit (cb55546) of github.com/yanaiela/pararel; used to list
# relations online, where a folder cannot be listed without the GitHub API.
PATTERN_RELATIONS = (
    "P1001 P101 P103 P106 P108 P127 P1303 P131 P136 P1376 P138 P140 P1412 P159 P17 P176 "
    "P178 P19 P190 P20 P264 P27 P276 P279 P30 P36 P361 P364 P37 P39 P407 P413 P449 P463 "
    "P47 P495 P530 P740 P937"
).split()
TREX_RELATIONS = sorted(PATTERN_RELATIONS + ["P31", "P527"], key=lambda r: int(r[1:]))
PATTERN_RELATIONS = sorted(PATTERN_RELATIONS, key=lambda r: int(r[1:]))

_END_Y = re.compile(r"\[Y\]\s*\.?\s*$")
_TOKEN = re.compile(r"\w+|[^\w\s]+")


# --------------------------------------------------------------------------- templates


def template_ends_with_object(pattern: str) -> bool:
    """True when ``[Y]`` ends the template (optionally followed by ``"."``/``" ."``)."""
    return bool(_END_Y.search(pattern))


def fill_template(pattern: str, subject: str) -> tuple[str, int, int]:
    """The query for ``subject``: ``[X]`` filled, ``[Y]`` and what follows removed.

    Returns ``(query, subject_start, subject_end)``, the character span of the subject in
    the query (``query[subject_start:subject_end] == subject``), so a caller can find the
    subject's last token with a tokenizer's offsets (§4, Fig. 2). The template must contain
    ``[X]`` once and ``[Y]`` once, after ``[X]``.
    """
    if pattern.count("[X]") != 1 or pattern.count("[Y]") != 1:
        raise ValueError(f"template needs one [X] and one [Y]: {pattern!r}")
    x, y = pattern.index("[X]"), pattern.index("[Y]")
    if y < x:
        raise ValueError(f"[Y] comes before [X], so the query would contain no subject: {pattern!r}")
    before, between = pattern[:x], pattern[x + 3 : y]
    lead = len(before) - len(before.lstrip())
    query = (before + subject + between).strip()
    start = x - lead
    return query, start, start + len(subject)


def final_word(query: str) -> str:
    """The query's last token, lower-cased: a run of word characters or of punctuation.

    ``"Eibenstock, located in"`` -> ``"in"``; ``"Bing Crosby label :"`` -> ``":"``.
    """
    tokens = _TOKEN.findall(query)
    return tokens[-1].lower() if tokens else ""


# --------------------------------------------------------------------------- loading


def _relations_available(sub: str, data_dir) -> list[str]:
    root = mirror_root(data_dir)
    if root is None:
        return list(PATTERN_RELATIONS if sub == "patterns" else TREX_RELATIONS)
    folder = root / "pararel" / sub
    found = sorted((p.stem for p in folder.glob("P*.jsonl")), key=lambda r: int(r[1:]))
    if not found:
        raise DataNotFoundError(
            f"No ParaRel {sub} files in the offline mirror.\n"
            f"  expected: pararel/{sub}/P<id>.jsonl (e.g. pararel/{sub}/P19.jsonl)\n"
            f"  looked in: {folder}\n"
            f"  what to do: point IFHELPERS_DATA (or data_dir=) at a complete copy of shared/data, or unset it "
            f"to download from github.com/{GITHUB_SOURCES['pararel_' + sub][0]} at the pinned commit."
        )
    return found


def load_relations(data_dir: str | os.PathLike | None = None) -> list[str]:
    """The usable relations: those with both templates and T-REx facts (39 in the mirror).

    Sorted by Wikidata id number. See :func:`relation_summary` for the ones left out.
    """
    patterns = set(_relations_available("patterns", data_dir))
    trex = set(_relations_available("trex", data_dir))
    both = sorted(patterns & trex, key=lambda r: int(r[1:]))
    if not both:
        root = mirror_root(data_dir)
        raise DataSelectionError(
            "No ParaRel relation has both templates and facts"
            + (f" under {root / 'pararel'} (expected patterns/P*.jsonl and trex/P*.jsonl)" if root else "")
        )
    return both


def _check_relation(relation: str, data_dir, sub: str) -> str:
    usable = load_relations(data_dir)
    if relation in usable:
        return relation
    root = mirror_root(data_dir)
    where = str(root / "pararel" / sub) if root else "the pinned ParaRel commit"
    why = ""
    if relation in _relations_available("trex", data_dir):
        why = " It has T-REx facts but no paraphrased templates, so it makes no queries."
    raise DataSelectionError(
        f"Unknown ParaRel relation {relation!r} (looked in {where}).{why}\n"
        f"  valid choices ({len(usable)}): {', '.join(usable)}"
    )


def load_patterns(relation: str, data_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """All ParaRel templates of one relation (§3, footnote 1).

    Columns
        relation : str            Wikidata relation id, e.g. ``"P19"``.
        template_id : int         0-based line number in the relation's file (stable id).
        pattern : str             template with ``[X]`` (subject) and ``[Y]`` (object).
        lemma, extended_lemma, tense : str   ParaRel's annotations.
        ends_with_object : bool   ``[Y]`` ends the template; only these make queries.
        final_word : str          the word before ``[Y]`` for kept templates, else ``""``.

    Malformed lines (no ``pattern``, or not exactly one ``[X]`` and one ``[Y]``) are left out,
    counted in ``attrs["n_malformed"]`` and warned about.
    """
    _check_relation(relation, data_dir, "patterns")
    path = locate(
        f"pararel/patterns/{relation}.jsonl",
        data_dir,
        GitHubFile.from_source("pararel_patterns", f"{relation}.jsonl"),
        what=f"ParaRel templates for {relation}",
    )
    records, bad = read_jsonl(path, required=["pattern"], nonempty=["pattern"])
    rows = []
    for rec in records:
        pattern, line = rec["pattern"], rec["__line__"]
        if pattern.count("[X]") != 1 or pattern.count("[Y]") != 1:
            bad.append((line, f"pattern needs one [X] and one [Y]: {pattern!r}"))
            continue
        keep = template_ends_with_object(pattern) and pattern.index("[X]") < pattern.index("[Y]")
        rows.append(
            {
                "relation": relation,
                "template_id": line - 1,
                "pattern": pattern,
                "lemma": rec.get("lemma", ""),
                "extended_lemma": rec.get("extended_lemma", ""),
                "tense": rec.get("tense", ""),
                "ends_with_object": keep,
                "final_word": final_word(fill_template(pattern, "X")[0]) if keep else "",
            }
        )
    frame = pd.DataFrame(
        rows,
        columns=["relation", "template_id", "pattern", "lemma", "extended_lemma", "tense",
                 "ends_with_object", "final_word"],
    )
    return note_malformed(frame, bad, f"ParaRel templates {relation}", path)


def load_facts(
    relation: str,
    n_per_relation: int | None = None,
    seed: int = 0,
    data_dir: str | os.PathLike | None = None,
) -> pd.DataFrame:
    """T-REx facts of one relation, one row per distinct subject (§3).

    ``n_per_relation`` keeps at most that many subjects, drawn without replacement by a
    generator seeded from ``(seed, relation)`` alone, so the same arguments give the same
    rows whatever else was loaded; rows stay in file order.

    Columns
        relation : str
        uuid : str             T-REx id of the subject's first row (the fact id).
        subject : str          ``sub_label``, stripped.
        object : str           ``obj_label`` of the first row.
        objects : tuple[str]   every distinct correct object for the subject (N-M relations).
        n_objects : int

    ``attrs``: ``n_rows`` (raw rows), ``n_duplicate_subject_rows`` (rows merged into an
    earlier row with the same subject), ``n_multi_object_subjects``, ``n_malformed``.
    """
    if n_per_relation is not None and int(n_per_relation) < 1:
        raise DataSelectionError(f"n_per_relation must be a positive int or None, got {n_per_relation!r}")
    _check_relation(relation, data_dir, "trex")
    path = locate(
        f"pararel/trex/{relation}.jsonl",
        data_dir,
        GitHubFile.from_source("pararel_trex", f"{relation}.jsonl"),
        what=f"T-REx facts for {relation}",
    )
    keys = ["sub_label", "obj_label", "uuid"]
    records, bad = read_jsonl(path, required=keys, nonempty=keys)
    order: list[str] = []
    facts: dict[str, dict] = {}
    duplicates = 0
    for rec in records:
        subject, obj = rec["sub_label"].strip(), rec["obj_label"].strip()
        if subject in facts:
            duplicates += 1
            if obj not in facts[subject]["objects"]:
                facts[subject]["objects"].append(obj)
            continue
        order.append(subject)
        facts[subject] = {"uuid": rec["uuid"], "object": obj, "objects": [obj]}
    rows = [
        {
            "relation": relation,
            "uuid": facts[s]["uuid"],
            "subject": s,
            "object": facts[s]["object"],
            "objects": tuple(facts[s]["objects"]),
            "n_objects": len(facts[s]["objects"]),
        }
        for s in order
    ]
    frame = pd.DataFrame(rows, columns=["relation", "uuid", "subject", "object", "objects", "n_objects"])
    if n_per_relation is not None and len(frame) > n_per_relation:
        pick = rng_for(seed, "pararel", relation).choice(len(frame), size=int(n_per_relation), replace=False)
        frame = frame.iloc[np.sort(pick)].reset_index(drop=True)
    frame.attrs.update(
        n_rows=len(records) + len(bad),
        n_duplicate_subject_rows=duplicates,
        n_multi_object_subjects=int(sum(len(f["objects"]) > 1 for f in facts.values())),
    )
    return note_malformed(frame, bad, f"T-REx facts {relation}", path)


_QUERY_COLUMNS = [
    "relation", "uuid", "subject", "object", "objects", "template_id", "pattern", "query",
    "subject_start", "subject_end", "final_word",
]


def load_queries(
    relations: Sequence[str] | str | None = None,
    n_per_relation: int | None = None,
    seed: int = 0,
    data_dir: str | os.PathLike | None = None,
) -> pd.DataFrame:
    """The tidy table of ParaRel queries: every fact crossed with every kept template.

    Serves §2 (paraphrase sets, Table 1), §3 (factual consistency, Table 2) and §4 (query
    representations, Figs. 2-5). ``relations=None`` means all usable relations;
    ``n_per_relation`` and ``seed`` subsample subjects as in :func:`load_facts`.

    Columns
        relation : str          Wikidata relation id.
        uuid : str              fact id (T-REx uuid); one paraphrase set per (relation, uuid).
        subject : str
        object : str            first gold object.
        objects : tuple[str]    all gold objects of the subject (N-M relations).
        template_id : int       the template's line in the relation's pattern file.
        pattern : str           the template.
        query : str             template with ``[X]`` = subject and ``[Y]`` (and what follows)
                                removed, stripped; the model continues it with the object.
        subject_start, subject_end : int  character span of the subject in ``query``.
        final_word : str        the query's last word (lower-cased), for §4 footnote 6.

    ``attrs``: ``n_templates``, ``n_templates_kept``, ``n_malformed``,
    ``n_duplicate_subject_rows``, ``relations_without_templates`` (relations asked for that
    kept no template; they contribute no rows).
    """
    if relations is None:
        relations = load_relations(data_dir)
    elif isinstance(relations, str):
        relations = [relations]
    relations = list(dict.fromkeys(relations))
    if not relations:
        raise DataSelectionError("relations is empty; valid choices: " + ", ".join(load_relations(data_dir)))
    parts = []
    stats = dict(n_templates=0, n_templates_kept=0, n_malformed=0, n_duplicate_subject_rows=0)
    malformed, no_templates = [], []
    for relation in relations:
        patterns = load_patterns(relation, data_dir)
        facts = load_facts(relation, n_per_relation, seed, data_dir)
        kept = patterns[patterns["ends_with_object"]]
        stats["n_templates"] += len(patterns)
        stats["n_templates_kept"] += len(kept)
        stats["n_malformed"] += patterns.attrs["n_malformed"] + facts.attrs["n_malformed"]
        stats["n_duplicate_subject_rows"] += facts.attrs["n_duplicate_subject_rows"]
        malformed += patterns.attrs["malformed"] + facts.attrs["malformed"]
        if kept.empty:
            no_templates.append(relation)
            continue
        templates = list(zip(kept["template_id"].tolist(), kept["pattern"], kept["final_word"]))
        rows = []
        for uuid, subject, obj, objects in zip(facts["uuid"], facts["subject"], facts["object"],
                                               facts["objects"]):
            for template_id, pattern, last in templates:
                query, start, end = fill_template(pattern, subject)
                rows.append((relation, uuid, subject, obj, objects, template_id, pattern, query,
                             start, end, last))
        parts.append(pd.DataFrame(rows, columns=_QUERY_COLUMNS))
    frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=_QUERY_COLUMNS)
    if frame.empty:
        raise DataSelectionError(
            f"No ParaRel queries for relations {relations}: none kept a template ending in [Y]."
        )
    frame.attrs.update(stats, malformed=malformed, relations_without_templates=no_templates)
    return frame


def relation_summary(data_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """Per-relation counts: which relations are usable and what the template rule drops.

    Columns
        relation : str
        has_patterns, has_facts : bool
        n_templates, n_templates_kept, n_templates_dropped : int   (``[Y]`` not at the end)
        n_fact_rows : int                 raw T-REx rows
        n_subjects : int                  distinct subjects (facts after merging duplicates)
        n_duplicate_subject_rows : int
        n_multi_object_subjects : int     subjects with several gold objects
        usable : bool                     has templates, facts and >= 1 kept template
        usable_for_pairs : bool           >= 2 kept templates (paraphrase pairs exist)
    """
    patterns = set(_relations_available("patterns", data_dir))
    trex = set(_relations_available("trex", data_dir))
    rows = []
    for relation in sorted(patterns | trex, key=lambda r: int(r[1:])):
        row = dict(relation=relation, has_patterns=relation in patterns, has_facts=relation in trex,
                   n_templates=0, n_templates_kept=0, n_fact_rows=0, n_subjects=0,
                   n_duplicate_subject_rows=0, n_multi_object_subjects=0)
        if row["has_patterns"] and row["has_facts"]:
            p = load_patterns(relation, data_dir)
            f = load_facts(relation, data_dir=data_dir)
            row.update(n_templates=len(p), n_templates_kept=int(p["ends_with_object"].sum()),
                       n_fact_rows=f.attrs["n_rows"], n_subjects=len(f),
                       n_duplicate_subject_rows=f.attrs["n_duplicate_subject_rows"],
                       n_multi_object_subjects=f.attrs["n_multi_object_subjects"])
        rows.append(row)
    frame = pd.DataFrame(rows)
    frame["n_templates_dropped"] = frame["n_templates"] - frame["n_templates_kept"]
    frame["usable"] = frame["has_patterns"] & frame["has_facts"] & (frame["n_templates_kept"] > 0)
    frame["usable_for_pairs"] = frame["usable"] & (frame["n_templates_kept"] > 1)
    return frame


# --------------------------------------------------------------------------- pairs and sets


def paraphrase_sets(queries: pd.DataFrame) -> pd.DataFrame:
    """ParaRel paraphrase sets in the tidy form of :mod:`ifhelpers.data.paraphrases` (§2, Eq. 2-3).

    One set per fact: all its queries. Columns ``set_id`` (``"<relation>:<uuid>"``),
    ``item_id`` (the template id), ``text`` (the query), ``source`` (``"pararel"``), plus
    ``relation``, ``uuid``, ``subject``, ``subject_start``, ``subject_end``. Sets of one
    query are kept (they count for Eq. 4's non-paraphrases but give no pair).
    """
    frame = pd.DataFrame(
        {
            "set_id": queries["relation"] + ":" + queries["uuid"],
            "item_id": queries["template_id"].astype(int),
            "text": queries["query"],
            "source": "pararel",
            "relation": queries["relation"],
            "uuid": queries["uuid"],
            "subject": queries["subject"],
            "subject_start": queries["subject_start"],
            "subject_end": queries["subject_end"],
        }
    ).reset_index(drop=True)
    frame.attrs["source"] = "pararel"
    return frame




def relation_query_pairs(
    queries: pd.DataFrame,
    n_pairs_per_relation: int = 50,
    seed: int = 0,
    max_tries: int = 200,
    require_different_final_word: bool = True,
) -> pd.DataFrame:
    """Same-relation vs different-relation query pairs (§4, Fig. 3 and footnote 6).

    For each relation ``r`` in ``queries``, up to ``n_pairs_per_relation`` pairs of each kind:

    * ``"same_relation"``: two queries of ``r`` with different subjects, disjoint gold
      objects, different templates, and different final words;
    * ``"different_relation"``: a query of ``r`` and one of another relation (drawn uniformly
      among the others), with different subjects, disjoint gold objects and different final
      words.

    So in the same-relation pairs the only shared information is the relation. The
    final-word rule (footnote 6) leaves no same-relation pair in relations whose kept
    templates all end in the same word (20 of the 39 in the mirror, e.g. P17's three
    templates all end in "in"); ``require_different_final_word=False`` relaxes it. Pairs are
    drawn by rejection sampling with a generator seeded from ``(seed, relation)``;
    ``max_tries * n_pairs_per_relation`` draws at most per relation and kind. Relations
    where not enough valid pairs exist (e.g. a single kept template) are listed with their
    shortfall in ``attrs["shortfall"]``.

    Columns ``kind``, ``relation_a``, ``relation_b``, ``uuid_a``, ``uuid_b``, ``subject_a``,
    ``subject_b``, ``template_id_a``, ``template_id_b``, ``final_word_a``, ``final_word_b``,
    ``query_a``, ``query_b``, ``row_a``, ``row_b`` (row positions in ``queries``).
    """
    q = queries.reset_index(drop=True)
    relations = list(dict.fromkeys(q["relation"]))
    if not relations:
        raise DataSelectionError("queries is empty: no relation to pair")
    by_rel = {r: np.flatnonzero((q["relation"] == r).to_numpy()) for r in relations}
    subj = q["subject"].to_numpy()
    objs = [frozenset(o) for o in q["objects"]]
    tpl = q["template_id"].to_numpy()
    fw = q["final_word"].to_numpy()
    rel = q["relation"].to_numpy()

    def valid(i, j, same):
        if subj[i] == subj[j] or objs[i] & objs[j]:
            return False
        if require_different_final_word and fw[i] == fw[j]:
            return False
        return tpl[i] != tpl[j] if same else True

    rows, shortfall = [], {}
    for r in relations:
        rng = rng_for(seed, "relation_pairs", r)
        others = [o for o in relations if o != r]
        for kind in ("same_relation", "different_relation"):
            if kind == "different_relation" and not others:
                shortfall[(r, kind)] = n_pairs_per_relation
                continue
            seen, found = set(), 0
            for _ in range(max_tries * n_pairs_per_relation):
                if found == n_pairs_per_relation:
                    break
                i = by_rel[r][rng.integers(len(by_rel[r]))]
                pool = by_rel[r] if kind == "same_relation" else by_rel[others[rng.integers(len(others))]]
                j = pool[rng.integers(len(pool))]
                key = (min(i, j), max(i, j))
                if key in seen or not valid(i, j, kind == "same_relation"):
                    continue
                seen.add(key)
                found += 1
                rows.append((kind, rel[i], rel[j], q.at[i, "uuid"], q.at[j, "uuid"], subj[i], subj[j],
                             tpl[i], tpl[j], fw[i], fw[j], q.at[i, "query"], q.at[j, "query"], i, j))
            if found < n_pairs_per_relation:
                shortfall[(r, kind)] = n_pairs_per_relation - found
    frame = pd.DataFrame(rows, columns=["kind", "relation_a", "relation_b", "uuid_a", "uuid_b", "subject_a",
                                        "subject_b", "template_id_a", "template_id_b", "final_word_a",
                                        "final_word_b", "query_a", "query_b", "row_a", "row_b"])
    frame.attrs["shortfall"] = shortfall
    return frame
