"""Consistent predictions (paper §3, Table 2, App. C.1): the first-token rule, answer letters, scores.

Runs in seconds without real models: tiny WordLevel / byte-level BPE tokenizers built here, a tiny
random-weight Llama, and a stand-in for the engine where the test chooses the predictions. The pocket
models' tokenizers are checked too when their folders are in the user cache (skipped otherwise).
"""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast

from ifhelpers import paper
from ifhelpers.model import engine, probes, registry, tokens
from ifhelpers import metrics
from ifhelpers.chapters import predictions
from ifhelpers.data import prompts, sources
from ifhelpers.data.sources import cache_root
from ifhelpers.model.models import LoadedModel, wrap

MIRROR = Path(__file__).resolve().parents[2] / "shared" / "data"


# ------------------------------------------------------------------------------------------ tokenizers

WORDS = ("<pad> <unk> <s> Uda District is located in , which Japan Paris France Spain New York Jersey Kresttsy "
         "Russia borders shares border with Everyone knows that It widely known the").split()


def wordlevel_tokenizer(extra=()):
    """Whitespace WordLevel: every word is one token, " Paris" and "Paris" alike."""
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate([*WORDS, *extra])}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace()])
    tok.decoder = decoders.WordPiece()
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>")


def bpe_tokenizer():
    """Byte-level BPE trained on a corpus where " Paris" becomes one token and " Uruguay" does not."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    corpus = ["Paris is located in France ."] * 50 + ["Answer: A B C D"] * 20 + ["Uruguay"] + \
             ["The capital of France is Paris , which is located in"] * 20
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<pad>"], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(corpus, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>")


def fake_lm(tokenizer, role="base", prompt_format="base"):
    spec = registry.ModelSpec(name="tiny", source={"kind": "memory"}, family="memory", role=role,
                              prompt_format=prompt_format)
    return LoadedModel(spec=spec, model=None, tokenizer=tokenizer, fingerprint="tiny")


def query_rows(facts, templates):
    """A load_queries-like frame: ``facts`` = [(relation, uuid, subject, objects)], templates per relation."""
    rows = []
    for relation, uuid, subject, objects in facts:
        for template_id, pattern in enumerate(templates[relation]):
            query = pattern.replace("[X]", subject)
            start = query.index(subject)
            rows.append(dict(relation=relation, uuid=uuid, subject=subject, object=objects[0], objects=tuple(objects),
                             template_id=template_id, pattern=pattern + " [Y]", query=query, subject_start=start,
                             subject_end=start + len(subject), final_word=query.split()[-1].lower()))
    return pd.DataFrame(rows)


def fake_engine(monkeypatch, choose):
    """Replace the engine: ``choose(prompt) -> token id`` is the top-1 prediction."""
    def run(lm, texts, request, positions=None, cache=True, progress=None, **_):
        n = len(texts)
        top = np.array([[choose(t)] + [0] * (request.top_k - 1) for t in texts], dtype=np.int64)
        return {"top_ids": top, "top_logprobs": np.zeros(top.shape, dtype=np.float32),
                "resid": np.zeros((n, 2, 4), dtype=np.float32)}
    monkeypatch.setattr(engine, "run", run)


# ------------------------------------------------------------------------------------------ first-token rule


def test_first_token_rule_wordlevel_multi_token_and_n_m(monkeypatch):
    tok = wordlevel_tokenizer()
    vocab = tok.get_vocab()
    templates = {"P17": ["[X] is located in", "[X] , which is located in"], "P47": ["[X] borders", "[X] shares border with"]}
    queries = query_rows([("P17", "u1", "Uda District", ["Japan"]), ("P17", "u2", "Kresttsy", ["New York"]),
                          ("P47", "u3", "France", ["Spain", "New Jersey"])], templates)
    lm = fake_lm(tok)
    frame = probes.pararel_prompts(lm, queries, prompt_ids=(0,))
    # " Paris"-like single tokens: the object's own id; "New York": its first token "New".
    assert frame.loc[frame["uuid"] == "u1", "object_first_ids"].iloc[0] == (vocab["Japan"],)
    assert frame.loc[frame["uuid"] == "u2", "object_first_ids"].iloc[0] == (vocab["New"],)
    # N-M: one first id per gold object.
    assert frame.loc[frame["uuid"] == "u3", "object_first_ids"].iloc[0] == (vocab["Spain"], vocab["New"])

    def choose(prompt):
        if prompt.startswith("Uda"):
            return vocab["Japan"] if "which" in prompt else vocab["Paris"]
        if prompt.startswith("Kresttsy"):
            return vocab["New"]  # first token of "New York": counted correct (lenient rule)
        return vocab["Spain"] if "borders" in prompt else vocab["New"]  # two different gold objects

    fake_engine(monkeypatch, choose)
    out, _ = probes.run_pararel(lm, queries, prompt_ids=(0,))
    got = dict(zip(zip(out["uuid"], out["template_id"]), out["correct"]))
    assert got == {("u1", 0): False, ("u1", 1): True, ("u2", 0): True, ("u2", 1): True,
                   ("u3", 0): True, ("u3", 1): True}
    scores = predictions.pararel_scores(out).set_index("relation")
    # P17: 3 of 4 queries correct; pairs: u1 disagrees, u2 agrees.
    assert scores.loc["P17", "accuracy"] == pytest.approx(0.75)
    assert scores.loc["P17", "consistency"] == pytest.approx(0.5)
    # P47: both answers are gold, but they are different objects: correct yet inconsistent.
    assert scores.loc["P47", "accuracy"] == 1.0 and scores.loc["P47", "consistency"] == 0.0


def test_first_token_rule_bpe_single_vs_split_object(monkeypatch):
    tok = bpe_tokenizer()
    prompt = "Kresttsy is located in"
    paris = tokens.continuation_ids(tok, prompt, " Paris")
    uruguay = tokens.continuation_ids(tok, prompt, " Uruguay")
    assert tok.convert_ids_to_tokens(paris) == ["ĠParis"]  # one token, with the space marker
    assert len(uruguay) > 1 and tok.convert_ids_to_tokens(uruguay[:1])[0].startswith("Ġ")
    queries = query_rows([("P17", "u1", "Kresttsy", ["Paris"]), ("P17", "u2", "Uda District", ["Uruguay"])],
                         {"P17": ["[X] is located in", "[X] , which is located in"]})
    lm = fake_lm(tok)

    def choose(text):
        # u1: "ĠParis" then the bare "Paris" (no space marker: a different token, so wrong);
        # u2: the first piece of " Uruguay" both times.
        if text.startswith("Kresttsy"):
            return paris[0] if "which" not in text else tok.convert_tokens_to_ids("Paris")
        return uruguay[0]

    fake_engine(monkeypatch, choose)
    out, _ = probes.run_pararel(lm, queries, prompt_ids=(0,))
    assert out["correct"].tolist() == [True, False, True, True]
    assert out.loc[0, "prediction"] == "Paris"  # decoded and stripped
    scores = predictions.pararel_scores(out)
    assert scores["consistency"].item() == pytest.approx(0.5)
    assert scores["accuracy"].item() == pytest.approx(0.75)


def test_prediction_ids_not_strings_decide_consistency():
    """" Paris" and "Paris" decode to the same stripped text but are different predictions."""
    frame = pd.DataFrame({"prompt_id": 0, "relation": "P1", "uuid": "a", "template_id": [0, 1],
                          "prediction_id": [5, 6], "prediction": ["Paris", "Paris"], "object_first_ids": [(5,), (5,)]})
    tidy = probes.pararel_predictions(frame)
    assert metrics.pararel.pararel_query_pairs(tidy)["consistent"].tolist() == [False]


def test_blank_first_token_is_reported():
    tok = bpe_tokenizer()
    queries = query_rows([("P17", "u1", "Kresttsy", ["1990", "Paris"])], {"P17": ["[X] is located in", "[X] , which is located in"]})
    lm = fake_lm(tok)
    frame = probes.pararel_prompts(lm, queries, prompt_ids=(0,))
    stats = predictions.object_token_stats(lm, frame)
    assert stats["n_objects"] == 2 and stats["blank_first_token"] == 1  # " 1990" -> "Ġ", "1", "9", "9", "0"
    assert stats["multi_token"] == 0.5


def test_restrict_to_candidates_reads_the_top_k(monkeypatch):
    tok = wordlevel_tokenizer()
    v = tok.get_vocab()
    queries = query_rows([("P17", "u1", "Kresttsy", ["Russia"]), ("P17", "u2", "Uda District", ["Japan"])],
                         {"P17": ["[X] is located in", "[X] , which is located in"]})
    frame = probes.pararel_prompts(fake_lm(tok), queries, prompt_ids=(0,))
    frame["prediction_id"] = v["the"]
    frame["prediction"] = "the"
    top = np.array([[v["the"], v["Russia"], v["Japan"]],   # u1: Russia is the best candidate
                    [v["the"], v["Japan"], v["Russia"]],   # u1: Japan is (wrong, and disagrees)
                    [v["the"], v["Paris"], v["It"]],       # u2: no candidate in the top k
                    [v["Japan"], v["the"], v["the"]]])     # u2: Japan
    candidates = {"P17": frozenset({v["Russia"], v["Japan"]})}
    out = predictions.restrict_to_candidates(frame, top, candidates)
    assert out["in_top_k"].tolist() == [True, True, False, True]
    assert out["correct"].tolist() == [True, False, False, True]
    assert out["prediction_id"].iloc[2] < 0 and "prediction" not in out
    scores = predictions.pararel_scores(out)
    assert scores["accuracy"].item() == 0.5 and scores["consistency"].item() == 0.0
    with pytest.raises(ValueError, match="rows"):
        predictions.restrict_to_candidates(frame, top[:2], candidates)


def test_relation_candidates_cover_every_object(monkeypatch):
    if not MIRROR.is_dir():
        pytest.skip("offline mirror not found")
    monkeypatch.setenv(sources.ENV_DATA, str(MIRROR))
    from ifhelpers.data import pararel

    tok = bpe_tokenizer()
    queries = pararel.load_queries(["P30"], 3, seed=0)
    frame = probes.pararel_prompts(fake_lm(tok), queries, prompt_ids=(0,))
    candidates = predictions.relation_candidates(fake_lm(tok), frame)
    assert set(candidates) == {"P30"}
    assert all(i in candidates["P30"] for ids in frame["object_first_ids"] for i in ids)


# ------------------------------------------------------------------------------------------ ParaRel summaries


def scores_frame():
    rows = []
    for model, role, cons in (("b", "base", (0.5, 0.6, 0.7)), ("t", "instruction-tuned", (0.8, 0.8, 0.8))):
        for p, c in enumerate(cons):
            for relation, shift in (("P1", 0.0), ("P2", 0.1)):
                rows.append(dict(model=model, role=role, prompt_id=p, relation=relation, n_facts=2, n_queries=4,
                                 n_pairs=2, accuracy=0.5 + shift, consistency=c + shift))
    return pd.DataFrame(rows)


def test_pararel_summary_mean_and_std_over_prompts():
    summary = predictions.pararel_summary(scores_frame())
    assert summary.loc["b", "consistency"] == pytest.approx(0.65)
    assert summary.loc["b", "consistency_std"] == pytest.approx(0.1)  # ddof=1 over the prompt means
    assert summary.loc["t", "consistency_std"] == pytest.approx(0.0)
    assert summary.loc["t", "accuracy"] == pytest.approx(0.55)
    rule = predictions.footnote4_rule(summary, base="b")
    assert rule.loc["t", "difference"] == pytest.approx(0.2) and rule.loc["t", "threshold"] == pytest.approx(0.1)
    assert bool(rule.loc["t", "beyond_threshold"])
    by_rel = predictions.pararel_by_relation(scores_frame())
    assert by_rel.groupby("model")["consistency"].mean().to_dict() == pytest.approx(summary["consistency"].to_dict())


def test_relations_with_one_template_are_dropped(monkeypatch):
    tok = wordlevel_tokenizer()
    vocab = tok.get_vocab()
    queries = query_rows([("P17", "u1", "Kresttsy", ["Russia"]), ("P37", "u2", "Uda District", ["Japan"])],
                         {"P17": ["[X] is located in", "[X] , which is located in"], "P37": ["[X] is located in"]})
    fake_engine(monkeypatch, lambda text: vocab["Russia"])
    frame, _ = probes.run_pararel(fake_lm(tok), queries, prompt_ids=(0, 1, 2))
    scores = predictions.pararel_scores(frame)
    assert set(scores["relation"]) == {"P17"} and scores.attrs["dropped_relations"] == ["P37"]
    assert sorted(scores["prompt_id"]) == [0, 1, 2]
    assert (scores["accuracy"] == 1).all() and (scores["consistency"] == 1).all()


# ------------------------------------------------------------------------------------------ answer letters


@pytest.mark.parametrize("make", [wordlevel_tokenizer, bpe_tokenizer])
def test_answer_letter_ids_tiny_tokenizers(make):
    tok = make(extra=("A", "B", "C", "D", "Answer", ":")) if make is wordlevel_tokenizer else make()
    texts = ["Q?\nA. x\nB. y\nC. z\nD. w\nAnswer:", "The answer is:"]
    ids = predictions.answer_letter_ids(tok, texts)
    assert ids.shape == (2, 4) and (ids == ids[0]).all() and len(set(ids[0])) == 4
    names = tok.convert_ids_to_tokens(ids[0].tolist())
    if make is bpe_tokenizer:
        assert names == ["ĠA", "ĠB", "ĠC", "ĠD"]  # the spaced letter, not the bare "A"
        assert tok.convert_tokens_to_ids("A") not in ids[0]
    else:
        assert names == ["A", "B", "C", "D"]


POCKET = ["gemma-3-270m", "smollm2-135m-instruct"]


@pytest.mark.parametrize("name", POCKET)
def test_answer_letter_ids_pocket_tokenizers(name):
    # Read-only use of the user's converted models (conftest points IFHELPERS_CACHE at a private folder).
    folder = cache_root("models", name)
    if not (folder / "tokenizer_config.json").exists():
        pytest.skip(f"{name} is not converted in {folder} (run the pocket models once)")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    spec = registry.get(name)
    texts = [prompts.format_mmlu("high_school_biology", "Which is a cell?", ["a", "b", "c", "d"], i,
                                 spec.prompt_format, tok) for i in range(3)]
    texts += [prompts.format_mmlu("anatomy", "Q", ["1", "2", "3", "4"], 0, "base", tok)]
    ids = predictions.answer_letter_ids(tok, texts)
    assert (ids == ids[0]).all()
    names = tok.convert_ids_to_tokens(ids[0].tolist())
    marker = "▁" if spec.family == "gemma3" else "Ġ"
    assert names == [marker + letter for letter in "ABCD"]
    bare = tok.convert_tokens_to_ids(list("ABCD"))
    assert not set(bare) & set(ids[0].tolist())


def test_answer_letter_ids_reject_merged_letters():
    tok = wordlevel_tokenizer()  # "A".."D" are unknown: every letter is <unk>
    with pytest.raises(ValueError, match="share a first token"):
        predictions.answer_letter_ids(tok, ["Answer :"])


# ------------------------------------------------------------------------------------------ MMLU


def tiny_llama():
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = bpe_tokenizer()
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, pad_token_id=tok.pad_token_id)
    return wrap(LlamaForCausalLM(config), tok, "tiny-llama")


def questions_frame(n=4):
    return pd.DataFrame({
        "question_id": [f"anatomy/test/{i}" for i in range(n)], "subject": "anatomy", "split": "test",
        "question": [f"Question {i} is located in" for i in range(n)],
        "A": "Paris", "B": "France", "C": "Answer", "D": "located", "answer": list("ABCD"[:n]),
        "answer_index": list(range(n))})


def test_mmlu_setups_nine_per_question():
    setups = predictions.mmlu_setups(questions_frame(), n_shuffles=3, seed=0)
    assert len(setups) == 4 * 9
    assert setups.groupby(["instruction", "shuffle"]).size().eq(4).all()
    original = setups[setups["shuffle"] == 0]
    assert (original["A"] == "Paris").all()
    # the options move with the answer: the text at the answer letter is the original correct option
    original = questions_frame().set_index("question_id")
    for row in setups.to_dict("records"):
        q = original.loc[row["question_id"]]
        assert row[row["answer"]] == q[q["answer"]]


def test_run_mmlu_scores_letters_at_last_position():
    import torch

    lm = tiny_llama()
    setups = predictions.mmlu_setups(questions_frame(), n_shuffles=2, instruction_ids=(0, 2))
    out = predictions.run_mmlu(lm, setups, cache=False, progress=False)
    assert out.attrs["letter_ids_shared"] and len(out.attrs["letter_ids"]) == 4
    ids = list(out.attrs["letter_ids"])
    with torch.no_grad():
        for row in out.head(3).itertuples():
            enc = torch.tensor([tokens.encode(lm.tokenizer, row.prompt)])
            logp = torch.log_softmax(lm.model(enc).logits[0, -1], -1)[ids].numpy()
            got = np.array([row.logprob_A, row.logprob_B, row.logprob_C, row.logprob_D])
            np.testing.assert_allclose(got, logp, atol=1e-4)
            assert row.prediction_index == int(np.argmax(logp))
    assert ((out["prediction_index"] == out["answer_index"]) == out["correct"]).all()
    assert out["prompt"].str.endswith("Answer:").all()
    summary = predictions.mmlu_summary(out)
    assert summary.loc["tiny-llama", "n_setups"] == 4 and 0 < summary.loc["tiny-llama", "letter_mass"] <= 1


def results_frame(acc_by_instruction, n=60, seed=0):
    """Synthetic MMLU results: instruction i answers a question right with probability acc_by_instruction[i]."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(3):
        for q in range(n):
            for i, p in enumerate(acc_by_instruction):
                rows.append(dict(model="m", role="base", question_id=f"q{q}", shuffle=s, instruction=i,
                                 correct=bool(rng.random() < p), letter_mass=1.0))
    return pd.DataFrame(rows)


def test_spread_null_and_interval():
    same = results_frame((0.25, 0.25, 0.25))
    identical = same[same["instruction"] == 0].copy()
    copies = pd.concat([identical.assign(instruction=i) for i in range(3)])
    null = predictions.spread_null(copies, n_permutations=200).iloc[0]
    assert null["spread"] == 0 and null["p_value"] == 1.0
    strong = results_frame((0.1, 0.5, 0.9), n=80)
    null = predictions.spread_null(strong, n_permutations=400).iloc[0]
    assert null["spread"] > 0.6 and null["p_value"] < 0.01 and null["null_mean"] < 0.2
    ci = predictions.spread_interval(strong, n_resamples=400).iloc[0]
    assert ci["low"] <= ci["estimate"] <= ci["high"] and ci["n"] == 80
    assert ci["estimate"] == pytest.approx(metrics.mmlu.mmlu_summary(strong)["spread"])


def test_sample_questions_total_and_balanced(monkeypatch):
    if not MIRROR.is_dir():
        pytest.skip("offline mirror not found")
    monkeypatch.setenv(sources.ENV_DATA, str(MIRROR))
    q = predictions.sample_questions(None, 40, seed=0)
    assert len(q) == 40 and q["subject"].nunique() == 40 and q["question_id"].is_unique
    again = predictions.sample_questions(None, 40, seed=0)
    assert q["question_id"].tolist() == again["question_id"].tolist()
    q = predictions.sample_questions(["anatomy", "astronomy"], 5, seed=1)
    assert sorted(q.groupby("subject").size().tolist()) == [2, 3]


# ------------------------------------------------------------------------------------------ tables


def test_table2_layout():
    pararel = pd.DataFrame({"role": ["base", "instruction-tuned"], "accuracy": [0.1, 0.2], "consistency": [0.5, 0.6]},
                           index=pd.Index(["b", "t"], name="model"))
    mmlu_ = pd.DataFrame({"role": ["base", "instruction-tuned"], "accuracy": [0.25, 0.26], "spread": [0.02, 0.01]},
                         index=pd.Index(["b", "t"], name="model"))
    table = predictions.table2_layout(pararel, mmlu_)
    assert list(table.columns) == ["source", "model", "role", *paper.TABLE2_COLUMNS]
    assert table.set_index("model").loc["t", "PARAREL Cons."] == pytest.approx(60.0)
