"""Shared fixtures: the offline data mirror, a private cache, and a tiny random-weight Llama."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MIRROR = REPO.parent / "shared" / "data"


@pytest.fixture(autouse=True, scope="session")
def _offline_environment(tmp_path_factory):
    """Tests read the real mirror beside the repository and never touch the user's caches."""
    os.environ.setdefault("IFHELPERS_DATA", str(MIRROR))
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ.setdefault("NLTK_DATA", str(MIRROR / "nltk_data"))
    if "IFHELPERS_TEST_USE_USER_CACHE" not in os.environ:
        os.environ["IFHELPERS_CACHE"] = str(tmp_path_factory.mktemp("ifhelpers-cache"))
    yield


def make_tiny_tokenizer():
    """A word-level tokenizer over a small vocabulary (no download)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ("the capital of france is paris a city in europe rome italy berlin germany was born "
             "located . , known that everyone it widely").split()
    vocab = {"<pad>": 0, "<bos>": 1, "<eos>": 2, "<unk>": 3, **{w: i + 4 for i, w in enumerate(words)}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    from tokenizers.processors import TemplateProcessing

    tok.post_processor = TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>",
                                   pad_token="<pad>", unk_token="<unk>")


def make_tiny_llama(tie: bool = False, seed: int = 0, n_layers: int = 3):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=40, hidden_size=32, intermediate_size=64, num_hidden_layers=n_layers,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                         tie_word_embeddings=tie, pad_token_id=0, bos_token_id=1, eos_token_id=2)
    model = LlamaForCausalLM(config).float()
    return model


@pytest.fixture
def tiny_lm():
    from ifhelpers.model.models import wrap

    return wrap(make_tiny_llama(), make_tiny_tokenizer(), "tiny-llama")
