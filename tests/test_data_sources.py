"""Where data comes from: the mirror setting, the download cache, errors, and row parsing."""

import json
import warnings
from pathlib import Path

import pytest

from ifhelpers.data import pararel, sources
from ifhelpers.data.sources import (
    DataFormatError,
    DataNotFoundError,
    MalformedRowsWarning,
    GitHubFile,
)

# CI clones the repo and puts shared/ beside it: <repo>/../shared/data
MIRROR = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(autouse=True)
def _mirror(monkeypatch, tmp_path):
    assert MIRROR.is_dir(), f"offline mirror not found at {MIRROR} (shared/ must sit beside the repo)"
    monkeypatch.setenv(sources.ENV_DATA, str(MIRROR))
    monkeypatch.setenv(sources.ENV_CACHE, str(tmp_path / "cache"))


def test_env_sets_mirror_and_argument_wins(tmp_path):
    assert sources.mirror_root() == MIRROR
    assert sources.mirror_root(data_dir=tmp_path) == tmp_path
    assert "offline mirror" in sources.describe_source()


def test_no_setting_means_online(monkeypatch, tmp_path):
    monkeypatch.delenv(sources.ENV_DATA)
    assert sources.mirror_root() is None
    assert sources.cache_root() == tmp_path / "cache"
    assert "online" in sources.describe_source()


def test_empty_mirror_names_path_and_remedy(monkeypatch, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv(sources.ENV_DATA, str(empty))
    with pytest.raises(DataNotFoundError) as err:
        pararel.load_patterns("P19")
    message = str(err.value)
    assert str(empty) in message and "IFHELPERS_DATA" in message and "P19.jsonl" in message
    with pytest.raises(FileNotFoundError):  # DataNotFoundError is a FileNotFoundError
        sources.locate("mmlu/test/anatomy_test.csv")


def test_missing_mirror_folder_is_an_error_not_a_silent_download(monkeypatch, tmp_path):
    gone = tmp_path / "does-not-exist"
    monkeypatch.setenv(sources.ENV_DATA, str(gone))
    with pytest.raises(DataNotFoundError, match="does-not-exist"):
        sources.mirror_root()


def test_locate_names_file_and_place(tmp_path):
    (tmp_path / "pararel").mkdir()
    with pytest.raises(DataNotFoundError) as err:
        sources.locate("pararel/trex/P19.jsonl", data_dir=tmp_path, what="T-REx facts")
    assert str(tmp_path / "pararel" / "trex" / "P19.jsonl") in str(err.value)


def test_github_urls_are_pinned():
    f = GitHubFile.from_source("pararel_patterns", "P19.jsonl")
    assert f.url == ("https://raw.githubusercontent.com/yanaiela/pararel/"
                     "cb5554678457beb5ac163d888f1ce8cf174b3f0b/data/pattern_data/graphs_json/P19.jsonl")
    b = GitHubFile.from_source("becel", "snli/test.tsv")
    assert b.url.endswith("MJ-Jang/BECEL/f5bdd1196e46323e6ec3f4e651bcad78b1883b04/data/snli/test.tsv")


def test_online_mode_reads_the_download_cache(monkeypatch, tmp_path):
    """Without a mirror, a file already in the cache is used (no network needed)."""
    monkeypatch.delenv(sources.ENV_DATA)
    f = GitHubFile.from_source("pararel_patterns", "P19.jsonl")
    cached = tmp_path / "cache" / "github" / "yanaiela__pararel" / f.commit / f.path
    cached.parent.mkdir(parents=True)
    cached.write_text((MIRROR / "pararel/patterns/P19.jsonl").read_text())
    assert sources.locate("pararel/patterns/P19.jsonl", online=f) == cached


def test_online_download_failure_explains(monkeypatch, tmp_path):
    monkeypatch.delenv(sources.ENV_DATA)

    def fail(url, dest, timeout=60.0):
        raise OSError("network unreachable")

    monkeypatch.setattr(sources, "download", fail)
    f = GitHubFile.from_source("becel", "rte/train.tsv")
    with pytest.raises(DataNotFoundError) as err:
        sources.locate("becel/rte/train.tsv", online=f)
    assert f.url in str(err.value) and "IFHELPERS_DATA" in str(err.value)


def test_read_delimited_counts_bad_rows(tmp_path):
    path = tmp_path / "t.tsv"
    path.write_text("a\tb\tlabel\nx\ty\t0\nonly-two\tfields\n\"multi\nline\"\tz\t1\n")
    frame, bad = sources.read_delimited(path, ["a", "b", "label"], sep="\t")
    assert len(frame) == 2 and frame["a"].tolist() == ["x", "multi\nline"]
    assert bad == [(3, "2 fields, header has 3")]
    assert frame["__line__"].tolist() == [2, 4] and frame["__row__"].tolist() == [0, 2]


def test_read_delimited_missing_column(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("question,answer\nq,0\n")
    with pytest.raises(DataFormatError, match="choice0"):
        sources.read_delimited(path, ["question", "choice0", "answer"])


def test_read_jsonl_counts_bad_lines(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text("\n".join([json.dumps({"a": "1"}), "{not json", json.dumps([1]), json.dumps({"b": 2}),
                               json.dumps({"a": " "})]) + "\n")
    records, bad = sources.read_jsonl(path, required=["a"], nonempty=["a"])
    assert [r["a"] for r in records] == ["1"]
    assert [line for line, _ in bad] == [2, 3, 4, 5]


def test_note_malformed_warns_and_counts():
    import pandas as pd

    frame = pd.DataFrame({"x": [1]})
    with pytest.warns(MalformedRowsWarning, match="2 malformed"):
        sources.note_malformed(frame, [(3, "bad"), (7, "worse")], "demo", "f.tsv")
    assert frame.attrs["n_malformed"] == 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sources.note_malformed(frame, [], "demo", "g.tsv")  # nothing to report: no warning
    assert frame.attrs["n_malformed"] == 2


def test_rng_for_depends_only_on_its_keys():
    a = sources.rng_for(0, "P19").integers(1 << 30, size=3)
    sources.rng_for(0, "P20").integers(1 << 30, size=3)
    assert (a == sources.rng_for(0, "P19").integers(1 << 30, size=3)).all()
    assert (a != sources.rng_for(1, "P19").integers(1 << 30, size=3)).any()


def test_choose_lists_valid_choices():
    with pytest.raises(sources.DataSelectionError, match="valid choices.*'a', 'b'"):
        sources.choose("thing", "c", ["a", "b"])


# --------------------------------------------------------------------------- online mode, offline
# The online code paths, exercised without a network: GitHub files pre-placed in the download
# cache, and Hugging Face loads replaced by frames built from the mirror.


def _seed_cache(tmp_path, source, names, mirror_folder):
    for name in names:
        f = GitHubFile.from_source(source, name)
        dest = tmp_path / "cache" / "github" / f.repo.replace("/", "__") / f.commit / f.path
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes((MIRROR / mirror_folder / name).read_bytes())


def test_online_pararel_and_becel_match_the_mirror(monkeypatch, tmp_path):
    from ifhelpers.data import becel

    offline_q = pararel.load_queries("P19")
    offline_b = becel.load_consistency_set("rte", "negational")
    _seed_cache(tmp_path, "pararel_patterns", ["P19.jsonl"], "pararel/patterns")
    _seed_cache(tmp_path, "pararel_trex", ["P19.jsonl"], "pararel/trex")
    _seed_cache(tmp_path, "becel", ["rte/negational.tsv"], "becel")
    monkeypatch.delenv(sources.ENV_DATA)
    assert pararel.load_relations() == pararel.PATTERN_RELATIONS
    assert pararel.load_queries("P19").equals(offline_q)
    assert becel.load_consistency_set("rte", "negational").equals(offline_b)


def test_online_mmlu_and_tapaco_through_load_hf(monkeypatch):
    import pandas as pd

    from ifhelpers.data import mmlu, paraphrases

    offline = mmlu.load_mmlu("dev")
    fake_mmlu = pd.DataFrame({
        "question": offline["question"], "subject": offline["subject"],
        "choices": offline[list("ABCD")].to_numpy().tolist(), "answer": offline["answer_index"],
    }).sample(frac=1.0, random_state=0)  # the hub's row order need not match the files'
    fake_tapaco = pd.DataFrame({"paraphrase_set_id": ["1", "1", "2", "2", "3"],
                                "sentence_id": ["10", "11", "20", "21", "30"],
                                "paraphrase": ["I am.", "I exist.", "Go!", "Leave!", "Alone."]})
    calls = []

    def fake_load_hf(name, split, config=None):
        calls.append((name, config, split))
        return fake_mmlu if name == "cais/mmlu" else fake_tapaco

    monkeypatch.setattr(mmlu, "load_hf", fake_load_hf)
    monkeypatch.setattr(paraphrases, "load_hf", fake_load_hf)
    monkeypatch.delenv(sources.ENV_DATA)
    mmlu._ONLINE.clear()
    online = mmlu.load_mmlu("dev")
    mmlu._ONLINE.clear()
    key = ["subject", "question"]
    pd.testing.assert_frame_equal(online.sort_values(key).reset_index(drop=True)[key + list("ABCD") + ["answer"]],
                                  offline.sort_values(key).reset_index(drop=True)[key + list("ABCD") + ["answer"]])
    sets = paraphrases.load_tapaco_sets()
    assert ("cais/mmlu", "all", "dev") in calls and ("community-datasets/tapaco", "en", "train") in calls
    assert sets["set_id"].tolist() == ["1", "1", "2", "2"] and (sets["source"] == "tapaco").all()
    assert sets.attrs["source"] == "tapaco"
