"""benchmarks/lora_vs_full.py at tiny size: both arms through the one training path, measured."""

from __future__ import annotations

import importlib.util

import numpy as np
import pandas as pd
import pytest

from ifhelpers.train import tuning

from conftest import REPO, make_tiny_family, make_tiny_llama, save_tiny_family


def benchmark():
    spec = importlib.util.spec_from_file_location("lora_vs_full", REPO / "benchmarks" / "lora_vs_full.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_target_loss_is_the_mean_loss_per_assistant_token():
    import torch

    from test_tuning_datasets import TWO_TURNS, word_tokenizer

    tokenizer, model = word_tokenizer(), make_tiny_llama()
    short = [{"role": "user", "content": "berlin is located in"}, {"role": "assistant", "content": "germany"}]
    chats = pd.DataFrame({"messages": [TWO_TURNS, short, short]})
    losses = []
    with torch.no_grad():
        for chat in chats["messages"]:
            ids, targets = tuning.chat_tokens(tokenizer, chat)
            logprobs = torch.log_softmax(model(torch.tensor([ids])).logits[0], -1)
            losses += [-float(logprobs[p - 1, ids[p]]) for p, t in enumerate(targets) if t]
    assert tuning.target_loss(model, tokenizer, chats, 64, batch_size=2) == pytest.approx(np.mean(losses), rel=1e-5)


def test_lora_and_full_fine_tuning_are_measured_side_by_side(tmp_path, capsys):
    base = save_tiny_family(tmp_path / "base", "gemma3")
    table = benchmark().main(["--model", str(base), "--dataset", "gpt4-alpaca", "--n-examples", "4", "--n-heldout", "3",
                              "--batch-size", "2", "--max-tokens", "192", "--full-learning-rate", "1e-2",
                              "--relations", "P36", "P19", "--n-per-relation", "2"])
    assert list(table.index) == [f"{base} (base)", "lora (lr 0.0005)", "full (lr 0.01)"]
    lora, full = table.iloc[1], table.iloc[2]
    assert full["trainable params"] == sum(p.numel() for p in make_tiny_family("gemma3").parameters())
    # r = 16 on 3 layers: q 32->32, k and v 32->16, o 32->32, gate and up 32->64, down 64->32: r (in + out) each
    assert lora["trainable params"] == 3 * 16 * (64 + 48 + 48 + 64 + 96 + 96 + 96)
    for arm in (lora, full):
        assert arm["steps"] == 2 and arm["tokens/s"] > 0 and arm["peak RSS GiB"] > 0
        assert arm["KL(base||tuned) nats"] > 0 and 0 <= arm["top-1 unchanged"] <= 1
        assert 0 <= arm["ParaRel consistency"] <= 1
    assert np.isfinite(table["held-out loss"]).all() and table["held-out loss"].nunique() == 3
    assert full["KL(base||tuned) nats"] > lora["KL(base||tuned) nats"]
    assert "tokens/s" in capsys.readouterr().out
