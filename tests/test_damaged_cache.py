"""A damaged cache is never used and never a crash: what does not read back whole is said on one line,
removed and computed again, and the re-run gives what a clean run gives.

Every kind of file the user cache holds is damaged here (forward-pass parts, a converted or tuned model's
folder, a BECEL classifier's checkpoint), with tiny random models and function-level calls."""

from __future__ import annotations

import shutil
import zipfile

import numpy as np
import pytest

from ifhelpers.model import cache, engine

TEXTS = ["the capital of france is paris", "rome is a city in italy", "berlin is located in germany",
         "paris is a city", "it is widely known that everyone was born"]
REQUEST = engine.Request(resid=True, top_k=3)


def clean_run(tiny_lm, root):
    return engine.run(tiny_lm, TEXTS, REQUEST, cache=root, max_batch_size=2)


def parts(root):
    return sorted(root.rglob("part-*.npz"))


def truncate(part, parts_):
    part.write_bytes(part.read_bytes()[: part.stat().st_size // 2])


def empty(part, parts_):
    part.write_bytes(b"")


def flip_a_byte(part, parts_):
    data = bytearray(part.read_bytes())
    data[len(data) // 2] ^= 0xFF
    part.write_bytes(bytes(data))


def another_parts_content(part, parts_):
    other = next(p for p in parts_ if p != part)
    shutil.copyfile(other, part)


def other_row_shape(part, parts_):
    with np.load(part) as data:
        arrays = {name: data[name] for name in data.files}
    arrays["resid"] = arrays["resid"][:, :-1]  # one layer short
    np.savez(part.with_suffix(""), **arrays)


def fewer_rows(part, parts_):
    with np.load(part) as data:
        arrays = {name: data[name] for name in data.files}
    arrays["top_ids"] = arrays["top_ids"][:-1]
    np.savez(part.with_suffix(""), **arrays)


def not_a_zip(part, parts_):
    part.write_text("not a part at all")


DAMAGE = [truncate, empty, flip_a_byte, another_parts_content, other_row_shape, fewer_rows, not_a_zip]


@pytest.mark.parametrize("damage", DAMAGE, ids=[d.__name__ for d in DAMAGE])
def test_a_damaged_part_of_the_forward_pass_cache_is_said_and_computed_again(tiny_lm, tmp_path, capsys, damage):
    expected = clean_run(tiny_lm, tmp_path / "clean")
    first = clean_run(tiny_lm, tmp_path / "c")
    written = parts(tmp_path / "c")
    assert len(written) == 3 and all(np.array_equal(first[k], expected[k]) for k in expected)
    victim = written[1]
    damage(victim, written)
    capsys.readouterr()
    before = cache.PARTS_WRITTEN
    again = clean_run(tiny_lm, tmp_path / "c")
    said = [line for line in capsys.readouterr().out.splitlines() if line.startswith("ifhelpers: the cache part")]
    assert len(said) == 1 and str(victim) in said[0] and "it is removed and computed again" in said[0]
    assert cache.PARTS_WRITTEN - before >= 1  # its texts were computed again
    assert sorted(again) == sorted(expected)
    for name in expected:
        np.testing.assert_array_equal(again[name], expected[name])
    capsys.readouterr()
    clean_run(tiny_lm, tmp_path / "c")  # and the cache is whole again: nothing said, nothing computed
    assert "ifhelpers:" not in capsys.readouterr().out


def test_part_layout_reads_a_whole_part_and_names_what_is_wrong(tiny_lm, tmp_path):
    clean_run(tiny_lm, tmp_path)
    assert sum(len(cache.part_layout(p)[0]) for p in parts(tmp_path)) == len(TEXTS)
    part = parts(tmp_path)[0]
    keys, layout = cache.part_layout(part)
    assert layout["resid"] == ("float32", (4, 32)) and layout["top_ids"][1] == (3,)  # h^0 ... h^3, width 32
    truncate(part, [])
    with pytest.raises((zipfile.BadZipFile, ValueError, OSError)):
        cache.part_layout(part)


# ------------------------------------------------------------------ model folders kept in the cache

def tiny_folder(folder):
    from conftest import make_tiny_llama, make_tiny_tokenizer

    make_tiny_llama().save_pretrained(folder)
    make_tiny_tokenizer().save_pretrained(folder)
    return folder


def cut_weights(folder):
    (file,) = folder.glob("*.safetensors")
    file.write_bytes(file.read_bytes()[:1000])


def bad_config(folder):
    (folder / "config.json").write_text("{")


def no_config(folder):
    (folder / "config.json").unlink()


FOLDER_DAMAGE = [cut_weights, bad_config, no_config]


@pytest.mark.parametrize("damage", FOLDER_DAMAGE, ids=[d.__name__ for d in FOLDER_DAMAGE])
def test_a_damaged_converted_model_is_said_and_converted_again(tmp_path, monkeypatch, capsys, damage):
    from ifhelpers.model import models, registry

    monkeypatch.setenv("IFHELPERS_CACHE", str(tmp_path))
    conversions = []

    def convert(spec, target):  # the real one dequantises a GGUF file for a minute
        conversions.append(spec.name)
        models.save_atomically(*tiny_pair(), target, {"converted_from": "test"})

    monkeypatch.setattr(models, "_convert_gguf", convert)
    spec = registry.get("smollm2-135m-instruct")
    location, _ = models.weights_location(spec)
    clean = logits(location)
    damage(tmp_path / "models" / "smollm2-135m-instruct")
    capsys.readouterr()
    assert models.weights_location(spec)[0] == location and conversions == ["smollm2-135m-instruct"] * 2
    said = capsys.readouterr().out.strip().splitlines()
    assert len(said) == 1 and said[0].startswith(f"ifhelpers: the safetensors copy of smollm2-135m-instruct "
                                                 f"{tmp_path / 'models' / 'smollm2-135m-instruct'} does not read")
    np.testing.assert_array_equal(logits(location), clean)
    models.weights_location(spec)
    assert conversions == ["smollm2-135m-instruct"] * 2 and capsys.readouterr().out == ""  # whole: used as it is


def tiny_pair():
    from conftest import make_tiny_llama, make_tiny_tokenizer

    return make_tiny_llama(), make_tiny_tokenizer()


def logits(location):
    import torch
    from transformers import AutoModelForCausalLM

    with torch.no_grad():
        return AutoModelForCausalLM.from_pretrained(location)(torch.tensor([[1, 5, 6, 7]])).logits.numpy()


def tiny_adapter_folder(folder):
    """A tuned model stored as the book stores one: a LoRA adapter of a tiny Llama, its chat template and its
    provenance."""
    import json

    from peft import LoraConfig, get_peft_model

    from conftest import TINY_CHAT_TEMPLATE, make_tiny_llama
    from ifhelpers.model import tuned

    get_peft_model(make_tiny_llama(), LoraConfig(r=2, target_modules=["q_proj"])).save_pretrained(folder)
    (folder / tuned.CHAT_TEMPLATE).write_text(TINY_CHAT_TEMPLATE)
    (folder / tuned.PROVENANCE).write_text(json.dumps({"base": "tiny", "training": {}}))
    return folder


def bad_adapter_config(folder):
    (folder / "adapter_config.json").write_text("{")


def no_adapter_config(folder):
    (folder / "adapter_config.json").unlink()


def older_layout(folder):
    """A full merged copy, as tuned models were stored before adapters: no adapter, so trained again."""
    import shutil

    shutil.rmtree(folder)
    tiny_folder(folder)


ADAPTER_DAMAGE = [cut_weights, bad_adapter_config, no_adapter_config, older_layout]


@pytest.mark.parametrize("damage", ADAPTER_DAMAGE, ids=[d.__name__ for d in ADAPTER_DAMAGE])
def test_a_damaged_tuned_model_is_said_and_trained_again(tmp_path, monkeypatch, capsys, damage):
    from ifhelpers.model import registry, tuned

    monkeypatch.setenv("IFHELPERS_CACHE", str(tmp_path))
    spec = registry.get("gemma-3-270m-ift-free-form")
    target = tuned.folders(tuned.recipe_of(spec))[1]
    tiny_adapter_folder(target)
    assert tuned.is_trained(spec) and capsys.readouterr().out == ""
    damage(target)
    assert not tuned.is_trained(spec) and not target.exists()  # so book.setup trains it again
    said = capsys.readouterr().out.strip().splitlines()
    assert len(said) == 1 and said[0].startswith(f"ifhelpers: the tuned model gemma-3-270m-ift-free-form {target}")
    with pytest.raises(tuned.ModelNotTrainedError):
        tuned.location(spec)


def checkpoint(work, step):
    import json

    from safetensors.numpy import save_file

    folder = work / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    save_file({"lora_A": np.ones((2, 3), dtype=np.float32)}, str(folder / "adapter_model.safetensors"))
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    return folder


def test_a_damaged_training_checkpoint_is_said_and_the_one_before_is_resumed(tmp_path, capsys):
    from ifhelpers.train import tuning

    assert tuning.last_whole_checkpoint(tmp_path / "none") is None
    checkpoint(tmp_path, 3)
    last = checkpoint(tmp_path, 6)
    assert tuning.last_whole_checkpoint(tmp_path) == str(last)
    truncate(last / "adapter_model.safetensors", [])
    assert tuning.last_whole_checkpoint(tmp_path) == str(tmp_path / "checkpoint-3") and not last.exists()
    assert "ifhelpers: the training checkpoint" in capsys.readouterr().out
    (tmp_path / "checkpoint-3" / "trainer_state.json").write_text("{cut")
    assert tuning.last_whole_checkpoint(tmp_path) is None and not (tmp_path / "checkpoint-3").exists()
    assert "trainer_state.json" in capsys.readouterr().out


def test_a_write_that_fails_leaves_no_half_written_part(tiny_lm, tmp_path, monkeypatch):
    def full_disk(file, **arrays):
        open(file, "wb").write(b"PK\x03\x04 half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", full_disk)
    with pytest.raises(OSError, match="No space left"):
        clean_run(tiny_lm, tmp_path)
    assert [p.name for p in tmp_path.rglob("*.npz")] == []
