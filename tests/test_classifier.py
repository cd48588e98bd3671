"""The BECEL classifier machinery (paper §3, App. C.2; ifhelpers.train.classifier), on a tiny
random-weight Llama: the inputs, the capped data, seeded training, per-epoch checkpoints and resume,
the three modes and the shared evaluation."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from ifhelpers.data import sources
from ifhelpers.train import classifier
from ifhelpers.model import models

MIRROR = Path(__file__).resolve().parents[2] / "shared" / "data"

WORDS = ("premise hypothesis does the entail ? : answer sentence 1 2 do two sentences mean same thing word "
         "is used with meaning in both a cat dog sat ran on mat park yes no not big small red blue").split()


def _tokenizer():
    from tokenizers import Tokenizer, models as tmodels, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"[PAD]": 0, "[UNK]": 1, "[BOS]": 2, "[EOS]": 3}
    for w in WORDS:
        vocab.setdefault(w, len(vocab))
    tok = Tokenizer(tmodels.WordLevel(vocab, unk_token="[UNK]"))
    tok.normalizer = None
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace()])
    from tokenizers.normalizers import Lowercase

    tok.normalizer = Lowercase()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", bos_token="[BOS]",
                                   eos_token="[EOS]")


def _tiny_lm(name="tiny", seed=0):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    tok = _tokenizer()
    config = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, pad_token_id=0, bos_token_id=2,
                         eos_token_id=3)
    return models.wrap(LlamaForCausalLM(config), tok, name)


def _pairs(n, seed):
    rng = np.random.default_rng(seed)
    nouns = ["cat", "dog", "mat", "park"]
    rows = []
    for i in range(n):
        label = int(rng.integers(0, 2))
        a = f"a {rng.choice(nouns)} sat on the {rng.choice(nouns)}"
        b = f"a {rng.choice(nouns)} is {'big' if label == 0 else 'small'}"
        rows.append({"task": "rte", "row": i, "index": i, "text_a": a, "text_b": b, "label": label})
    return pd.DataFrame(rows)


def _set(frame, kind):
    out = frame.copy()
    out["kind"] = kind
    if kind == "symmetric":
        out["perturbed_a"], out["perturbed_b"] = out["text_b"], out["text_a"]
    elif kind == "semantic":
        out["perturbed_a"], out["perturbed_b"] = out["text_a"], out["text_b"].str.replace("a ", "the ", n=1)
    else:
        out["perturbed_a"], out["perturbed_b"] = out["text_a"], out["text_b"].str.replace(" is ", " is not ")
    out["perturbed_label"] = pd.array(1 - out["label"] if kind == "negational" else [pd.NA] * len(out),
                                      dtype="Int64")
    return out


def _data(n_train=40, n_eval=12):
    ev = _pairs(n_eval, 2)
    return classifier.TaskData("rte", _pairs(n_train, 0), _pairs(n_eval, 1), ev,
                             {k: _set(ev, k) for k in ("symmetric", "semantic", "negational")}, "synthetic")


@pytest.fixture()
def isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("IFHELPERS_CACHE", str(tmp_path / "cache"))
    return tmp_path


CONFIG = classifier.FinetuneConfig(mode="probe", learning_rates=(5e-2, 1e-2), batch_size=8, max_epochs=4, patience=2)


# ------------------------------------------------------------------------------------------ inputs


def test_format_input_per_task():
    assert classifier.format_input("snli", "A man.", "A person.") == (
        "Premise: A man.\nHypothesis: A person.\nDoes the premise entail the hypothesis?\nAnswer:")
    assert classifier.format_input("mrpc", "x", "y").startswith("Sentence 1: x\nSentence 2: y\n")
    wic = classifier.format_input("wic", "He ran.", "She ran.", word="run")
    assert wic.startswith("Word: run\nSentence 1: He ran.") and wic.endswith("Answer:")
    with pytest.raises(ValueError):
        classifier.format_input("wic", "a", "b")
    dialogue = classifier.format_input("rte", "a", "b", prompt_format="open-instruct")
    assert dialogue.startswith("<|user|>\nPremise: a") and dialogue.endswith("<|assistant|>\nAnswer:")


def test_task_texts_perturbed_side():
    frame = _set(_pairs(3, 0), "symmetric")
    orig = classifier.task_texts(frame, "rte")
    swapped = classifier.task_texts(frame, "rte", which="perturbed")
    assert orig[0].startswith(f"Premise: {frame.text_a[0]}") and swapped[0].startswith(f"Premise: {frame.text_b[0]}")


@pytest.mark.skipif(not MIRROR.is_dir(), reason="offline mirror not found")
def test_task_data_caps_are_seeded(monkeypatch):
    monkeypatch.setenv(sources.ENV_DATA, str(MIRROR))
    a = classifier.task_data("rte", n_train=10, n_eval=5, seed=0)
    b = classifier.task_data("rte", n_train=10, n_eval=5, seed=0)
    c = classifier.task_data("rte", n_train=10, n_eval=5, seed=1)
    assert a.sizes() == {"train": 10, "dev": 5, "eval": 5, "symmetric": 5, "semantic": 5, "negational": 5}
    assert a.train["row"].tolist() == b.train["row"].tolist() != c.train["row"].tolist()
    assert a.sets["negational"]["row"].tolist() == b.sets["negational"]["row"].tolist()
    assert "n_train=10" in a.note and a.n_labels == 2
    # RTE's symmetric pairs are swapped training pairs: drawn from this run's training pairs first
    big = classifier.task_data("rte", n_train=200, n_eval=20, seed=0)
    trained = set(zip(big.train["text_a"], big.train["text_b"]))
    sym = big.sets["symmetric"]
    assert all(p in trained for p in zip(sym["perturbed_a"], sym["perturbed_b"]))


# ------------------------------------------------------------------------------------------ training


def test_probe_features_are_the_sequence_classifier_input(isolated):
    lm = _tiny_lm()
    texts = classifier.task_texts(_pairs(5, 0), "rte")
    probe = classifier.ProbeBackend(lm, 2, cache=isolated / "acts", progress=False)
    probe.prepare(texts)
    ids = [lm.tokenizer(t)["input_ids"] for t in texts]
    with torch.no_grad():
        for t, seq in zip(texts, ids):
            state = lm.model.base_model(input_ids=torch.tensor([seq])).last_hidden_state[0, -1].numpy()
            np.testing.assert_allclose(probe.features[t], state, atol=1e-5)


def _probe_run(root, callback=None, config=CONFIG, lm=None):
    lm = lm or _tiny_lm()
    return classifier.finetune_task(lm, _data(), config, cache=root / "acts", checkpoint_root=root / "ckpt",
                                  progress=False, callback=callback)


def test_probe_training_is_reproducible(isolated):
    a = _probe_run(isolated / "a")
    b = _probe_run(isolated / "b")
    pd.testing.assert_frame_equal(a.history, b.history)
    pd.testing.assert_frame_equal(a.predictions, b.predictions)
    assert a.mode == "probe" and (a.predictions["mode"] == "probe").all()
    assert a.runs["chosen"].sum() == 1 and a.lr == a.runs.loc[a.runs["chosen"], "lr"].item()
    assert set(a.predictions["set"]) == {"eval", "symmetric", "semantic", "negational"}
    first = a.history[a.history["lr"] == CONFIG.learning_rates[0]]["train_loss"]
    assert first.iloc[-1] < first.iloc[0] < np.log(2) + 1e-6  # the head learns from a uniform start


def test_interrupted_training_resumes_from_last_checkpoint(isolated):
    reference = _probe_run(isolated / "ref")

    class Interrupted(Exception):
        pass

    def stop_at_second_epoch(epoch, record):
        if epoch == 2:
            raise Interrupted

    with pytest.raises(Interrupted):
        _probe_run(isolated / "run", callback=stop_at_second_epoch)
    folders = sorted((isolated / "run" / "ckpt").iterdir())
    assert len(folders) == 1 and torch.load(folders[0] / "checkpoint.pt", weights_only=True)["epoch"] == 2
    epochs_run = []
    resumed = _probe_run(isolated / "run", callback=lambda epoch, record: epochs_run.append(epoch))
    assert epochs_run and epochs_run[0] == 3  # continued after the saved epoch, not from scratch
    pd.testing.assert_frame_equal(resumed.history, reference.history)
    pd.testing.assert_frame_equal(resumed.predictions, reference.predictions)
    again = []
    _probe_run(isolated / "run", callback=lambda epoch, record: again.append(epoch))
    assert again == []  # finished runs are read back, not retrained


def _half(path, others):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _garbage(path, others):
    path.write_bytes(b"\0" * 64)


def _other_lr(path, others):
    path.write_bytes(next(p for p in others if p != path).read_bytes())


def _other_shapes(path, others):
    saved = torch.load(path, weights_only=True)
    saved["state"] = {k: v[:, :-1] if v.ndim == 2 else v for k, v in saved["state"].items()}
    torch.save(saved, path)


def _no_record(path, others):
    torch.save({"state": torch.load(path, weights_only=True)["state"]}, path)


@pytest.mark.parametrize("damage", [_half, _garbage, _other_lr, _other_shapes, _no_record],
                         ids=["truncated", "garbage", "another-lr", "other-shapes", "no-record"])
def test_a_damaged_checkpoint_is_said_and_trained_again(isolated, capsys, damage):
    reference = _probe_run(isolated / "ref")
    _probe_run(isolated / "run")
    checkpoints = sorted((isolated / "run" / "ckpt").glob("*/checkpoint.pt"))
    assert len(checkpoints) == 2  # one per learning rate
    damage(checkpoints[0], checkpoints)
    capsys.readouterr()
    epochs_run = []
    again = _probe_run(isolated / "run", callback=lambda epoch, record: epochs_run.append(epoch))
    said = [line for line in capsys.readouterr().out.splitlines() if line.startswith("ifhelpers: ")]
    assert len(said) == 1 and f"the classifier checkpoint {checkpoints[0]} does not read back whole" in said[0]
    assert epochs_run[0] == 1  # trained again from the start, only the damaged run
    pd.testing.assert_frame_equal(again.history, reference.history)
    pd.testing.assert_frame_equal(again.predictions, reference.predictions)


def test_checkpoint_key_depends_on_hyperparameters(isolated):
    lm = _tiny_lm()
    args = (["x"], [0], ["y"], [1])
    base = classifier.run_folder(lm, "rte", 1e-4, CONFIG, *args, root=isolated)
    assert base == classifier.run_folder(lm, "rte", 1e-4, CONFIG, *args, root=isolated)
    assert base != classifier.run_folder(lm, "rte", 5e-5, CONFIG, *args, root=isolated)
    from dataclasses import replace

    assert base != classifier.run_folder(lm, "rte", 1e-4, replace(CONFIG, seed=1), *args, root=isolated)
    assert base != classifier.run_folder(lm, "rte", 1e-4, replace(CONFIG, mode="lora"), *args, root=isolated)
    assert base != classifier.run_folder(lm, "mrpc", 1e-4, CONFIG, *args, root=isolated)


@pytest.mark.parametrize("mode", ["lora", "full"])
def test_lora_and_full_give_the_model_back_unchanged(isolated, mode):
    lm = _tiny_lm()
    before = {k: v.clone() for k, v in lm.model.state_dict().items()}
    grads = {n: p.requires_grad for n, p in lm.model.named_parameters()}
    config = classifier.FinetuneConfig(mode=mode, learning_rates=(1e-2,), batch_size=8, max_epochs=2, patience=1)
    result = classifier.finetune_task(lm, _data(16, 6), config, checkpoint_root=isolated / "ckpt", progress=False)
    after = lm.model.state_dict()
    assert set(after) == set(before)  # no adapter left behind
    for k, v in before.items():
        assert torch.equal(v, after[k]), k
    assert grads == {n: p.requires_grad for n, p in lm.model.named_parameters()}
    assert not lm.model.training
    assert result.mode == mode and len(result.history) >= 1
    assert set(result.predictions["pred_original"]) <= {0, 1}
    # the fine-tuned weights of the chosen epoch are in the checkpoint
    saved = torch.load(next((isolated / "ckpt").iterdir()) / "checkpoint.pt", weights_only=True)
    assert any(k.startswith("model.") for k in saved["best_state"])
    assert saved["history"] == result.history.drop(columns=["task", "mode", "lr"]).to_dict("records")


def test_resolve_mode():
    assert classifier.resolve_mode("probe") == "probe"
    assert classifier.resolve_mode("auto") in ("probe", "full")
    with pytest.raises(ValueError):
        classifier.resolve_mode("adapter")


def test_predict_task_sends_each_text_once_and_keeps_both_sides():
    data = classifier.TaskData("rte", _pairs(4, 0), _pairs(2, 1), _pairs(3, 2),
                               {"negational": _set(_pairs(3, 2), "negational")}, "")
    calls = []

    def predict(texts):
        calls.append(list(texts))
        return [int("not" in t) for t in texts]  # 1 on a negated input

    def text_fn(frame, which="original"):
        return classifier.task_texts(frame, "rte", which=which)

    out = classifier.predict_task(predict, data, text_fn)
    assert len(calls) == 1 and len(calls[0]) == len(set(calls[0])) == 6  # 3 originals, 3 negated, shared
    assert out["set"].tolist() == ["eval"] * 3 + ["negational"] * 3
    assert out["pred_original"].tolist() == [0] * 6
    assert out["pred_perturbed"].tolist() == [-1] * 3 + [1] * 3
    assert out["perturbed_label"].dtype == "Int64" and out["perturbed_label"].isna().sum() == 3
