"""The paper's ten instruction datasets: the registry, open-instruct's conversions, the mirror, the check."""

from __future__ import annotations

import functools

import pandas as pd
import pytest

import ifhelpers as ifh
from ifhelpers.data import instruction_sets as sets

PAPER = ("baize", "cot", "dolly", "flan-v2", "gpt4-alpaca", "oasst1", "sharegpt", "sni", "stanford-alpaca",
         "unnatural-instructions")
OFFLINE = {"stanford-alpaca": {}, "gpt4-alpaca": {}, "cot": {}, "flan-v2": {},
           "oasst1": {"stand_in": True}, "sharegpt": {"stand_in": True}}
ONLINE_ONLY = ("dolly", "oasst1", "sharegpt", "sni", "unnatural-instructions", "baize")


@functools.lru_cache(maxsize=None)
def loaded(name: str) -> pd.DataFrame:
    """An offline set as :func:`sets.load` gives it, loaded once for this module's tests."""
    return sets.load(name, **OFFLINE[name])


class Pick:
    """A stand-in for the random generator that always draws template ``k``."""

    def __init__(self, k):
        self.k = k

    def choice(self, n, p):
        assert len(p) == n and abs(sum(p) - 1) < 1e-9
        return self.k


def user_then_assistant(chat):
    return ([t["role"] for t in chat] == ["user", "assistant"] * (len(chat) // 2) and len(chat) >= 2
            and all(isinstance(t["content"], str) and t["content"].strip() for t in chat))


# ---------------------------------------------------------------------------------------- registry


def test_the_registry_holds_the_papers_ten_with_their_offline_status_and_label():
    table = sets.table()
    assert tuple(table.index) == PAPER
    assert {"online", "formatting", "offline_file", "offline", "label"} <= set(table.columns)
    assert table["offline"].to_dict() == {
        "baize": "online only", "cot": "stand-in", "dolly": "online only", "flan-v2": "stand-in",
        "gpt4-alpaca": "stand-in", "oasst1": "online only", "sharegpt": "online only", "sni": "online only",
        "stanford-alpaca": "subset", "unnatural-instructions": "online only"}
    for name, entry in sets.SETS.items():
        if entry.offline_file and name != "stanford-alpaca":  # data other than the dataset itself
            assert "stand-in" in entry.label, name
    assert sets.SETS["stanford-alpaca"].label == "stanford-alpaca (mirror: 5,000-example subset)"
    assert "databricks/databricks-dolly-15k" in sets.SETS["dolly"].online
    with pytest.raises(ValueError, match="offline status"):
        sets.InstructionSet("x", "y", "z", None, "partly", "x")


# ----------------------------------------------------------------------------- the mirror's data


@pytest.mark.parametrize("name", list(OFFLINE))
def test_each_offline_set_loads_from_the_mirror_with_its_label_as_chats(name):
    frame = loaded(name)
    label = sets.SETS[name].label
    assert len(frame) > 500 and set(frame["source"]) == {label} and frame.attrs["source"] == label
    assert set(frame["dataset"]) == {name} and frame["id"].is_unique
    assert frame["messages"].map(user_then_assistant).all()
    assert sum(frame.attrs["n_contaminated"].values()) > 0  # the check ran and dropped something
    sample = frame.sample(200, random_state=0)
    assert not ifh.data.contamination.contamination(sample)["contaminated"].any()


def test_mirror_sizes_and_the_cot_layout():
    alpaca = loaded("stanford-alpaca")
    assert alpaca.attrs["n_empty_turn"] == 2  # two outputs of the subset are empty
    assert len(alpaca) + alpaca.attrs["n_empty_turn"] + sum(alpaca.attrs["n_contaminated"].values()) >= 5000
    cot = loaded("cot")
    assert cot["messages"].iloc[0] == [  # aqua_train.tsv, line 1
        {"role": "user", "content": "Rs. 5600 is divided into three parts A, B and C. How much A is more than C if "
                                    "their ratio is 1/7:1/7:1/14?\nOptions:\n(A) 300\n(B) 992\n(C) 1120\n(D) 552\n"
                                    "(E) 312\nLet's think step by step.\n"},
        {"role": "assistant", "content": "1/7:1/7:1/14 = 2:2:1\n1/5*5600 = 1120\n2240-1120 = 1120\n"
                                         "So the answer is (C)."}]


@pytest.mark.parametrize("name", ONLINE_ONLY)
def test_an_online_only_set_offline_says_where_it_lives_in_one_line(name):
    with pytest.raises(sets.OnlineOnlyError) as err:
        sets.load(name)
    message = str(err.value)
    assert "\n" not in message and sets.SETS[name].online in message and "IFHELPERS_DATA" in message
    assert ("stand_in=True" in message and "LIMA" in message) if name in ("oasst1", "sharegpt") \
        else "no stand-in" in message


# ------------------------------------------------------------------ open-instruct's conversions


def test_random_templates_give_exactly_open_instructs_messages():
    chat = sets.instruction_example(" Name a colour. ", "Red or blue?\n", " Blue ", Pick(0))
    assert chat == [{"role": "user", "content": "Name a colour.\n\nRed or blue?\n\n"},
                    {"role": "assistant", "content": "Blue"}]
    assert sets.instruction_example("Name a colour.", "Red or blue?", "Blue", Pick(13))[0]["content"] == (
        "Below is an instruction that describes a task, paired with an input that provides further context. "
        "Write a response that appropriately completes the request.\n\n### Instruction:\nName a colour.\n\n"
        "### Input:\nRed or blue?\n\n### Response:")
    assert sets.instruction_example("Name a colour.", "  ", "Blue", Pick(2)) == [  # a blank input: no input
        {"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "\nBlue"}]
    assert sets.instruction_example("Help.", "", "Yes", Pick(11))[0]["content"] == \
        "Plase answer the following request: Help.\nAnswer:"
    # drawn by weight: the first template (0.2) about twice as often as the second (0.1)
    rng = ifh.data.sources.rng_for(42, "weights")
    drawn = pd.Series([sets.instruction_example("I", "x", "o", rng)[0]["content"] for _ in range(4000)])
    share = drawn.value_counts(normalize=True)
    assert abs(share["I\n\nx\n\n"] - 0.2) < 0.03 and abs(share["I\nx\n\n"] - 0.1) < 0.03
    assert len(share) == len(sets.WITH_INPUT)


def test_each_dataset_record_becomes_open_instructs_messages():
    alpaca = [{"instruction": f"Say {w}.", "input": "", "output": w} for w in ("a", "b", "c", "d", "e", "f")]
    first = sets.to_messages("stanford-alpaca", alpaca)
    assert first == sets.to_messages("stanford-alpaca", alpaca) != sets.to_messages("stanford-alpaca", alpaca, seed=1)
    assert sets.to_messages("dolly", [{"instruction": "Sum up.", "context": "A text.", "response": "Short."}],
                            seed=3)[0][1] == {"role": "assistant", "content": "Short."}
    assert "A text." in sets.to_messages("dolly", [{"instruction": "Sum up.", "context": "A text.",
                                                    "response": "Short."}])[0][0]["content"]
    assert sets.inputs_targets_example("Q", "A") == [{"role": "user", "content": "Q\n"},
                                                     {"role": "assistant", "content": "A"}]
    assert sets.inputs_targets_example("Q:", "A")[0]["content"] == "Q:"
    assert sets.to_messages("flan-v2", [{"inputs": "Q\n", "targets": "A"}])[0][0]["content"] == "Q\n"

    unnatural = {"instruction": "Add the numbers.", "instances": [
        {"input": "1 2", "output": "3", "constraints": "None."},
        {"input": "2 2", "output": "4", "constraints": "Answer with a digit."}]}
    chats = sets.to_messages("unnatural-instructions", [unnatural])
    assert len(chats) == 2 and "Add the numbers.\nAnswer with a digit." in chats[1][0]["content"]
    assert "Add the numbers." in chats[0][0]["content"] and "None" not in chats[0][0]["content"]

    baize = {"input": "The conversation between human and AI assistant.\n[|Human|] Hi there\n[|AI|] Hello! "
                      "How can I help?\n[|Human|] What is 2+2?\n[|AI|] 4\n[|Human|] "}
    assert sets.to_messages("baize", [baize]) == [[
        {"role": "user", "content": "Hi there"}, {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "4"}]]

    def node(role, text, *replies):
        return {"role": role, "text": text, "replies": list(replies)}

    tree = {"prompt": node("prompter", "P1", node("assistant", "A1", node("prompter", "P2", node("assistant", "A2"))),
                           node("assistant", "A1b"))}
    assert [[t["content"] for t in chat] for chat in sets.to_messages("oasst1", [tree])] == [
        ["P1", "A1"], ["P1", "A1", "P2", "A2"], ["P1", "A1b"]]


def test_sharegpt_is_cut_into_whole_pairs_under_the_token_limit():
    def turn(who, n):
        return {"from": who, "value": " ".join(["w"] * n)}

    conversation = {"id": "x", "conversations": [turn("human", 2), turn("gpt", 2), turn("human", 2), turn("gpt", 2),
                                                 turn("human", 30), turn("gpt", 1), turn("human", 1), turn("gpt", 1),
                                                 turn("human", 5)]}  # pairs of 16, 16, 43 (too long), 14; an odd turn
    words = lambda text: len(text.split())  # noqa: E731
    chunks = sets._sharegpt_chunks(conversation, words, max_length=30)
    assert [(start, len(chat)) for start, chat in chunks] == [(0, 2), (2, 2), (6, 2)]
    assert chunks[0][1][0] == {"role": "user", "content": "w w"}
    with_system = {"id": "y", "conversations": [turn("system", 2), turn("human", 2), turn("gpt", 2)]}
    assert sets.to_messages("sharegpt", [with_system], n_tokens=words) == []


def test_sni_takes_sixty_zero_shot_and_twenty_two_shot_instances_per_task():
    task = {"Definition": ["Copy the input."], "Positive Examples": [{"input": f"e{i}", "output": f"e{i}"} for i in
                                                                     range(3)],
            "Instances": [{"id": f"t-{i}", "input": f"x{i}", "output": [f"x{i}"]} for i in range(100)]}
    chats = sets.to_messages("sni", [task])
    assert len(chats) == 80
    few = [c for c in chats if c[0]["content"].startswith("Copy the input.\n\nInput:\ne")]
    assert len(few) == 20 and all(c[0]["content"].count("Input:\n") == 3 for c in few)
    assert sets.few_shot_example("Copy.", [{"input": "a", "output": "a"}, {"input": "b", "output": "b"}], "c", "c") == [
        {"role": "user", "content": "Copy.\n\nInput:\na\nOutput:\na\n\nInput:\nb\nOutput:\nb\n\nInput:\nc\nOutput:\n"},
        {"role": "assistant", "content": "c"}]


# ------------------------------------------------------------------------------ the contamination check


def raw_records(name: str, pairs: list[tuple[str, str]]) -> list[dict]:
    """Each (user, assistant) pair as a raw record of ``name``, as its authors publish it."""
    def one(user, assistant):
        return {
            "stanford-alpaca": {"instruction": user, "input": "", "output": assistant},
            "gpt4-alpaca": {"instruction": user, "input": "", "output": assistant},
            "dolly": {"instruction": user, "context": "", "response": assistant},
            "unnatural-instructions": {"instruction": user, "instances": [
                {"input": "", "output": assistant, "constraints": "None"}]},
            "sni": {"Definition": [user], "Positive Examples": [{"input": "bread", "output": "baked"}] * 2,
                    "Instances": [{"id": "1", "input": "", "output": [assistant]}]},
            "cot": {"inputs": user, "targets": assistant},
            "flan-v2": {"inputs": user, "targets": assistant},
            "oasst1": {"prompt": {"role": "prompter", "text": user,
                                  "replies": [{"role": "assistant", "text": assistant, "replies": []}]}},
            "sharegpt": {"id": "1", "conversations": [{"from": "human", "value": user},
                                                      {"from": "gpt", "value": assistant}]},
            "baize": {"input": f"The conversation between human and AI assistant.\n[|Human|] {user}\n"
                               f"[|AI|] {assistant}\n[|Human|] "},
        }[name]

    return [one(user, assistant) for user, assistant in pairs]


@pytest.mark.parametrize("name", PAPER)
def test_the_check_drops_planted_evaluation_data_from_every_dataset(name):
    fact = ifh.data.pararel.load_facts("P36").iloc[0]
    question = ifh.data.mmlu.load_mmlu(split="test").iloc[0]["question"]
    becel_text = ifh.data.becel.load_task_split("rte", "validation").iloc[0]["text_a"]
    pairs = [(f"Tell me about {fact.subject}.", f"Its capital is {fact.object}."), ("Quiz: " + question, "A"),
             ("Read: " + becel_text, "ok"), ("Tell me about bread.", "It is baked.")]
    chats = sets.to_messages(name, raw_records(name, pairs), n_tokens=lambda text: len(text.split()))
    assert len(chats) == 4
    clean = sets.checked(pd.DataFrame({"messages": chats}))
    assert clean["messages"].tolist() == [chats[3]]
    assert clean.attrs["n_contaminated"] == {"pararel_fact": 1, "mmlu_ngram": 1, "becel_ngram": 1}


@pytest.mark.parametrize("name", PAPER)
def test_online_loaders_read_the_files_open_instruct_downloaded(name, tmp_path, monkeypatch):
    """The online readers on stand-in downloads (no network here): each file in its published format."""
    import gzip
    import json
    import zipfile

    import transformers

    from conftest import make_tiny_tokenizer

    pairs = [("Tell me about bread.", "It is baked."), ("Name a colour.", "Blue.")]
    records = raw_records(name, pairs)
    asked = []

    def fake(*where):
        asked.append("/".join(where))
        path = tmp_path / where[-1].replace("/", "_")
        if path.suffix == ".zip":
            with zipfile.ZipFile(path, "w") as archive:
                archive.writestr("core_data.jsonl", "".join(json.dumps(r) + "\n" for r in records))
        elif path.suffix == ".gz":
            with gzip.open(path, "wt") as fh:
                fh.writelines(json.dumps(r) + "\n" for r in records)
        elif path.suffix == ".txt":
            path.write_text("task001_copy\ntask002_mmmlu_answer\n")
        elif path.suffix == ".jsonl":
            path.write_text("".join(json.dumps(r) + "\n" for r in records))
        else:
            path.write_text(json.dumps(records[0] if name == "sni" else records))
        return path

    monkeypatch.setattr(sets, "_github", fake)
    monkeypatch.setattr(sets, "_hub", fake)
    monkeypatch.setattr(sets, "_beaker", fake)
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", lambda *a, **k: make_tiny_tokenizer())
    raw, n_tokens = sets._online_records(name, seed=42)
    chats = sets.to_messages(name, raw, n_tokens=n_tokens)
    assert all(user_then_assistant(c) for c in chats) and chats
    assert {c[-1]["content"].strip() for c in chats} <= {"It is baked.", "Blue."}
    assert not any("mmmlu" in a for a in asked)  # SNI leaves out the MMMLU tasks
    files = {"cot": 2, "sharegpt": 2, "baize": 4}.get(name, 1)  # files that open-instruct concatenated
    assert len(chats) == (1 if name == "sni" else 2 * files)  # sni: one task file (one instance) besides MMMLU's
