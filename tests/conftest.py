"""Shared fixtures: the offline data mirror, a private cache, and a tiny random-weight Llama."""

from __future__ import annotations

import os
import signal
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


def run_chapter(chapter: str, models: str, runs_dir, cache, *settings: str, name: str = "tiny") -> Path:
    """``ifhelpers run CHAPTER --models MODELS`` at smoke sizes (with ``settings`` beyond them) and its own
    cache; the run folder (the run must succeed)."""
    from ifhelpers import cli

    with pytest.MonkeyPatch.context() as patch:  # the chapter's kernel inherits the environment
        patch.setenv("IFHELPERS_CACHE", str(cache))
        code = cli.main(["run", chapter, "--models", models, *smoke_settings(cli.chapter_path(chapter).stem),
                         *settings, "--name", name, "--runs-dir", str(runs_dir)])
    assert code == 0
    return Path(runs_dir) / name


@pytest.fixture(autouse=True, scope="session")
def _offline_environment(tmp_path_factory):
    """Tests read the real mirror beside the repository and never touch the user's caches."""
    os.environ.setdefault("IFHELPERS_DATA", str(MIRROR))
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ.setdefault("NLTK_DATA", str(MIRROR / "nltk_data"))
    if "IFHELPERS_TEST_USE_USER_CACHE" not in os.environ:
        os.environ["IFHELPERS_CACHE"] = str(tmp_path_factory.mktemp("ifhelpers-cache"))
    yield


def _reads_the_book(item) -> bool:
    return "built_book" in getattr(item, "fixturenames", ())


def pytest_collection_modifyitems(items):
    """The tests that read the smoke-size book run last: it builds in the background meanwhile (:func:`smoke_book`)."""
    items.sort(key=_reads_the_book)  # stable: every other test keeps its order


@pytest.fixture(autouse=True, scope="session")
def smoke_book(request, _offline_environment, tmp_path_factory):
    """(root, chapters, process) of the smoke-size book (``tests/test_book.py``), whose build starts with the
    session and runs while the other tests do; None when no selected test reads it, and the error when the
    build could not start (the book's tests report it; the others run). A build still running at the end of
    the session is stopped."""
    if not any(_reads_the_book(item) for item in request.session.items):
        yield None
        return
    from test_book import start_build

    # The build and this session share the cores, half each: torch's OpenMP threads spin-wait at every
    # barrier, so two processes each running a thread per core slow each other several times over.
    threads = max(1, (os.cpu_count() or 2) // 2)
    os.environ["OMP_NUM_THREADS"] = str(threads)  # the build, and every kernel a test starts, inherit it
    import torch

    torch.set_num_threads(threads)
    root = tmp_path_factory.mktemp("book")
    try:
        chapters, process = start_build(root)
    except (Exception, SystemExit) as error:  # a chapter's sources that do not parse, say
        yield error
        return
    yield root, chapters, process
    if process.poll() is None:  # the build and its kernels: one process group
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


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

TINY_CHAT_TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}"
                      "{% if add_generation_prompt %}<|assistant|>\n{% endif %}")


def make_tiny_bpe_tokenizer(chat: bool = False, closing_eos: bool = False):
    """A byte-level BPE tokenizer (every text tokenizes, as with a real model's), trained on a few sentences;
    with ``closing_eos`` it ends every input with ``<eos>``, as T5's tokenizer ends it with ``</s>``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    corpus = ["The capital of France is Paris.", "Everyone knows that Rome is located in Italy.",
              "Please finish the sentence. Answer: A B C D", "Berlin was born in Germany, a city in Europe."]
    trainer = trainers.BpeTrainer(vocab_size=320, special_tokens=["<pad>", "<bos>", "<eos>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(corpus * 4, trainer)
    if closing_eos:
        tok.post_processor = processors.TemplateProcessing(single="$A <eos>", special_tokens=[("<eos>", 2)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>")
    if chat:
        fast.chat_template = TINY_CHAT_TEMPLATE
    return fast


#: Every family of the anatomy table (``ifhelpers/model/anatomy.py``, by builder name: "gemma3" builds a
#: ``gemma3_text`` model, "gemma3_vision" the multimodal ``gemma3``), each checked on a tiny random model by
#: ``tests/test_anatomy.py``; then families the table does not know, which the general rule finds ("stablelm"),
#: finds wrongly ("bloom", whose attention adds the residual itself) or does not find ("xglm", no MLP module).
ANATOMY_FAMILIES = ("llama", "mistral", "mixtral", "qwen2", "qwen3", "qwen3_moe", "phi3", "phi", "granite", "cohere",
                    "gemma2", "gemma3", "gemma3_vision", "olmo2", "gpt2", "gpt_neox", "opt", "falcon")
RULE_FAMILIES = ("stablelm", "bloom", "xglm")
#: The families whose tiny random models run chapters 1-4 and 6 through ``ifhelpers run`` (a Gemma 3 base, the
#: others tuned) and chapter 5's recipe in process: every family of the table and one the general rule finds.
RUN_FAMILIES = (*ANATOMY_FAMILIES, "stablelm")
#: The families whose base also runs chapter 5 end to end here: pre-norm (Llama), learned positions with Conv1D
#: projections (GPT-2). Gemma 3 (post-norms, a sliding window) runs it in the smoke book (tests/test_book.py).
CHAPTER_5_FAMILIES = ("llama", "gpt2")


def make_tiny_family(family: str, seed: int = 0, vocab_size: int = 320, context: int = 512):
    """A random-weight causal LM of ``family`` (:data:`ANATOMY_FAMILIES`, :data:`RULE_FAMILIES`) with 3 layers of
    width 32 and ``context`` positions; Gemma 2/3 and Mistral with a
    sliding window, Granite and Cohere with their update and logit scales, OPT with a projection after its
    final norm."""
    import torch
    import transformers as tf

    torch.manual_seed(seed)
    common = dict(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=context,
                  pad_token_id=0, bos_token_id=1, eos_token_id=2)
    heads = dict(vocab_size=vocab_size, pad_token_id=0, bos_token_id=1, eos_token_id=2)
    sliding = dict(head_dim=8, query_pre_attn_scalar=8, sliding_window=16,
                   layer_types=["sliding_attention", "sliding_attention", "full_attention"])
    experts = dict(num_experts_per_tok=2, head_dim=8)
    config, model_class = {
        "llama": (lambda: tf.LlamaConfig(**common), tf.LlamaForCausalLM),
        "mistral": (lambda: tf.MistralConfig(**common, sliding_window=16), tf.MistralForCausalLM),
        "mixtral": (lambda: tf.MixtralConfig(**common, num_local_experts=4, **experts), tf.MixtralForCausalLM),
        "qwen2": (lambda: tf.Qwen2Config(**common), tf.Qwen2ForCausalLM),
        "qwen3": (lambda: tf.Qwen3Config(**common, head_dim=8), tf.Qwen3ForCausalLM),
        "qwen3_moe": (lambda: tf.Qwen3MoeConfig(**common, num_experts=4, moe_intermediate_size=16, **experts),
                      tf.Qwen3MoeForCausalLM),
        "phi3": (lambda: tf.Phi3Config(**common), tf.Phi3ForCausalLM),
        "phi": (lambda: tf.PhiConfig(**common), tf.PhiForCausalLM),
        "granite": (lambda: tf.GraniteConfig(**common, residual_multiplier=0.5, logits_scaling=2.0,
                                             embedding_multiplier=2.0), tf.GraniteForCausalLM),
        "cohere": (lambda: tf.CohereConfig(**common, logit_scale=0.5), tf.CohereForCausalLM),
        "gemma2": (lambda: tf.Gemma2Config(**common, **sliding, final_logit_softcapping=3.0), tf.Gemma2ForCausalLM),
        "gemma3": (lambda: tf.Gemma3TextConfig(**common, **sliding), tf.Gemma3ForCausalLM),
        "gemma3_vision": (lambda: tf.Gemma3Config(
            text_config=tf.Gemma3TextConfig(**common, **sliding, final_logit_softcapping=3.0).to_dict(),
            vision_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                               image_size=28, patch_size=14), mm_tokens_per_image=4),
            tf.Gemma3ForConditionalGeneration),
        "olmo2": (lambda: tf.Olmo2Config(**common), tf.Olmo2ForCausalLM),
        "gpt2": (lambda: tf.GPT2Config(**heads, n_embd=32, n_layer=3, n_head=4, n_positions=context),
                 tf.GPT2LMHeadModel),
        "gpt_neox": (lambda: tf.GPTNeoXConfig(**heads, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                                              num_attention_heads=4, max_position_embeddings=context),
                     tf.GPTNeoXForCausalLM),
        "opt": (lambda: tf.OPTConfig(**heads, hidden_size=32, ffn_dim=64, num_hidden_layers=3, num_attention_heads=4,
                                     max_position_embeddings=context, word_embed_proj_dim=16), tf.OPTForCausalLM),
        "falcon": (lambda: tf.FalconConfig(**heads, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                                           parallel_attn=True, max_position_embeddings=context),
                   tf.FalconForCausalLM),
        "stablelm": (lambda: tf.StableLmConfig(**common), tf.StableLmForCausalLM),
        "bloom": (lambda: tf.BloomConfig(**heads, hidden_size=32, n_layer=3, n_head=4), tf.BloomForCausalLM),
        "xglm": (lambda: tf.XGLMConfig(**heads, d_model=32, ffn_dim=64, num_layers=3, attention_heads=4,
                                       max_position_embeddings=context), tf.XGLMForCausalLM),
    }[family]
    return model_class(config()).float()


def save_tiny_family(folder, family: str, tuned: bool = False, seed: int = 0, context: int = 512):
    """Save a tiny ``family`` model and its tokenizer (with a chat template when ``tuned``) under ``folder``."""
    make_tiny_family(family, seed=seed, context=context).save_pretrained(folder)
    make_tiny_bpe_tokenizer(chat=tuned).save_pretrained(folder)
    return folder


def make_tiny_t5(seed: int = 0, vocab_size: int = 320):
    """A random-weight T5 (encoder-decoder) with 2 encoder and 2 decoder layers of width 16; its decoder starts
    from the pad token, as T5's does."""
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    torch.manual_seed(seed)
    config = T5Config(vocab_size=vocab_size, d_model=16, d_kv=4, d_ff=32, num_layers=2, num_decoder_layers=2,
                      num_heads=4, relative_attention_num_buckets=8, relative_attention_max_distance=16,
                      pad_token_id=0, eos_token_id=2, decoder_start_token_id=0)
    return T5ForConditionalGeneration(config).float().eval()


def save_tiny_t5(folder, tuned: bool = False, seed: int = 0):
    """Save a tiny T5 and a tokenizer that ends every input with ``<eos>`` (with a chat template when ``tuned``)
    under ``folder``."""
    make_tiny_t5(seed=seed).save_pretrained(folder)
    make_tiny_bpe_tokenizer(chat=tuned, closing_eos=True).save_pretrained(folder)
    return folder
