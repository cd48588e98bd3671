"""Shared fixtures: the offline data mirror, a private cache, and a tiny random-weight Llama."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MIRROR = REPO.parent / "shared" / "data"


def smoke_settings(stem: str) -> list[str]:
    """A chapter's smoke sizes (``notebooks/smoke.yaml``) as ``ifhelpers run`` arguments: ``--set k=v ...``."""
    import yaml

    from ifhelpers.cli import yaml_flow

    smoke = yaml.safe_load((REPO / "notebooks" / "smoke.yaml").read_text())[stem]
    return [arg for key, value in smoke.items() for arg in ("--set", f"{key}={yaml_flow(value)}")]


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


# ------------------------------------------------------------------------------------------------
# Tiny random-weight models of several families, saved as a researcher's local folders

TINY_FAMILIES = ("llama", "qwen2", "gemma3", "olmo2")
TINY_CHAT_TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}"
                      "{% if add_generation_prompt %}<|assistant|>\n{% endif %}")


def make_tiny_bpe_tokenizer(chat: bool = False):
    """A byte-level BPE tokenizer (every text tokenizes, as with a real model's), trained on a few sentences."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    corpus = ["The capital of France is Paris.", "Everyone knows that Rome is located in Italy.",
              "Please finish the sentence. Answer: A B C D", "Berlin was born in Germany, a city in Europe."]
    trainer = trainers.BpeTrainer(vocab_size=320, special_tokens=["<pad>", "<bos>", "<eos>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(corpus * 4, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>")
    if chat:
        fast.chat_template = TINY_CHAT_TEMPLATE
    return fast


def make_tiny_family(family: str, seed: int = 0, vocab_size: int = 320):
    """A random-weight causal LM of ``family`` with 3 layers of width 32 (Gemma 3 with a sliding window)."""
    import torch
    import transformers as tf

    torch.manual_seed(seed)
    common = dict(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                  pad_token_id=0, bos_token_id=1, eos_token_id=2)
    config, model_class = {
        "llama": (lambda: tf.LlamaConfig(**common), tf.LlamaForCausalLM),
        "qwen2": (lambda: tf.Qwen2Config(**common), tf.Qwen2ForCausalLM),
        "gemma3": (lambda: tf.Gemma3TextConfig(**common, head_dim=8, query_pre_attn_scalar=8, sliding_window=16,
                                                layer_types=["sliding_attention", "sliding_attention",
                                                             "full_attention"]), tf.Gemma3ForCausalLM),
        "olmo2": (lambda: tf.Olmo2Config(**common), tf.Olmo2ForCausalLM),
    }[family]
    return model_class(config()).float()


def save_tiny_family(folder, family: str, tuned: bool = False, seed: int = 0):
    """Save a tiny ``family`` model and its tokenizer (with a chat template when ``tuned``) under ``folder``."""
    make_tiny_family(family, seed=seed).save_pretrained(folder)
    make_tiny_bpe_tokenizer(chat=tuned).save_pretrained(folder)
    return folder
