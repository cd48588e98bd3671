"""A local model folder that cannot load is refused before any work starts, with what it lacks."""

from __future__ import annotations

import json
import shutil

import pytest

from ifhelpers import cli
from ifhelpers.model import folders, registry


@pytest.fixture(scope="module")
def good_folder(tmp_path_factory):
    from conftest import make_tiny_llama, make_tiny_tokenizer

    folder = tmp_path_factory.mktemp("models") / "tiny-llama"
    make_tiny_llama().save_pretrained(folder)
    make_tiny_tokenizer().save_pretrained(folder)
    return folder


def broken(good_folder, tmp_path, remove=(), config=None, add=()):
    """A copy of the good folder with files removed, config.json changed, or files added."""
    folder = tmp_path / "model"
    shutil.copytree(good_folder, folder)
    for pattern in remove:
        for path in folder.glob(pattern):
            path.unlink()
    if config is not None:
        data = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps(config(data)) if callable(config) else config)
    for name in add:
        (folder / name).write_bytes(b"\0" * 16)
    return folder


def refusal(path, **kwargs) -> str:
    with pytest.raises(folders.ModelFolderError) as error:
        registry.resolve(str(path), role="base", **kwargs)
    return str(error.value)


def test_a_good_folder_resolves(good_folder):
    spec = registry.resolve(str(good_folder), role="base")
    assert spec.source == {"kind": "local", "path": str(good_folder.resolve())}


def test_a_missing_folder_is_named_as_a_folder_not_an_unknown_registry_name(tmp_path):
    assert "No such model folder: ./no-such-model" in refusal("./no-such-model")
    assert "No such model folder" in refusal(tmp_path / "absent")
    with pytest.raises(registry.UnknownModelError, match="Unknown model 'no-such-model'"):
        registry.resolve("no-such-model", role="base")  # no slash, no dot: a registry name


def test_a_file_is_not_a_folder(good_folder):
    assert "is a file, not a model folder" in refusal(good_folder / "config.json")


@pytest.mark.parametrize("case, expected", [
    (dict(remove=["config.json"]), "no config.json"),
    (dict(config="{not json"), "is not valid JSON"),
    (dict(config="[1, 2]"), "holds no JSON object"),
    (dict(config=lambda c: {**c, "model_type": "llama-from-the-future"}), "model_type 'llama-from-the-future'"),
    (dict(config=lambda c: {**c, "model_type": "longt5"}), "is an encoder-decoder model (longt5): the engine reads the encoder-decoder families t5 only"),
    (dict(remove=["*.safetensors"]), "no weights (no *.safetensors file)"),
    (dict(remove=["*.safetensors"], add=["pytorch_model.bin"]), "its weights are pickles (pytorch_model.bin)"),
    (dict(remove=["*.safetensors"], add=["model.gguf"]), "It has a GGUF file (model.gguf)"),
    (dict(remove=["tokenizer*", "special_tokens_map.json"]), "no tokenizer"),
], ids=["no-config", "config-not-json", "config-not-object", "unknown-model-type", "encoder-decoder", "no-weights",
        "pickles-only", "gguf-only", "no-tokenizer"])
def test_each_missing_piece_gets_its_own_message(good_folder, tmp_path, case, expected):
    assert expected in refusal(broken(good_folder, tmp_path, **case))


def test_pickles_are_refused_with_the_conversion_to_safetensors(good_folder, tmp_path):
    message = refusal(broken(good_folder, tmp_path, remove=["*.safetensors"], add=["pytorch_model.bin"]))
    assert "unpickling runs code" in message and ".save_pretrained(" in message


def test_remote_code_is_refused_unless_the_user_opts_in(good_folder, tmp_path, monkeypatch):
    folder = broken(good_folder, tmp_path, config=lambda c: {**c, "auto_map": {"AutoModelForCausalLM": "m.M"}})
    message = refusal(folder)
    assert "refuses remote code by default" in message and "IFHELPERS_TRUST_REMOTE_CODE=1" in message
    assert registry.resolve(str(folder), role="base", trust_remote_code=True).source["kind"] == "local"
    monkeypatch.setenv(folders.TRUST_REMOTE_CODE, "1")
    assert registry.resolve(str(folder), role="base").source["kind"] == "local"


def test_the_cli_prints_one_line_and_starts_nothing(good_folder, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = broken(good_folder, tmp_path, remove=["*.safetensors"], add=["pytorch_model.bin"])
    code = cli.main(["run", "predictions", "--models", f"base={folder},ift=./missing-tuned"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("ifhelpers: ") and "Traceback" not in err
    assert "\n    python -c \"from transformers" in err  # the conversion command prints as it can be copied
    assert not (tmp_path / "runs").exists()


def cut(folder, keep=None):
    """Truncate the folder's safetensors file to ``keep`` bytes (default: half)."""
    (file,) = folder.glob("*.safetensors")
    data = file.read_bytes()
    file.write_bytes(data[: len(data) // 2 if keep is None else keep])
    return folder


def more_tokens(folder, n):
    """Give the folder's tokenizer ``n`` extra tokens."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    tok.add_tokens([f"extra{i}" for i in range(n)])
    tok.save_pretrained(folder)
    return folder


@pytest.mark.parametrize("damage, expected", [
    (lambda f: cut(f), "bytes where its header promises"),
    (lambda f: cut(f, keep=5), "not a readable safetensors file (5 bytes, no valid header)"),
    (lambda f: (f / "model.safetensors").write_bytes((30).to_bytes(8, "little") + b"{not json" + b" " * 40), "header does not parse"),
    (lambda f: (f / "model.safetensors").open("ab").write(b"\0" * 8), "longer than its tensors"),
    (lambda f: more_tokens(f, 40), "its tokenizer has 68 tokens but the embedding table only 40 rows"),
], ids=["truncated-half", "truncated-to-5-bytes", "header-not-json", "trailing-bytes", "tokenizer-too-large"])
def test_weights_that_do_not_read_back_whole_are_refused_from_their_headers(good_folder, tmp_path, damage, expected):
    folder = broken(good_folder, tmp_path)
    damage(folder)
    assert expected in refusal(folder)


def test_an_embedding_table_that_disagrees_with_the_config_is_refused(good_folder, tmp_path):
    folder = broken(good_folder, tmp_path, config=lambda c: {**c, "vocab_size": 64})
    assert "embedding table has 40 rows but config.json says vocab_size 64" in refusal(folder)
    assert folders.tokenizer_size(good_folder) == 28  # 4 specials + 24 words, from tokenizer.json alone


@pytest.mark.parametrize("damage, expected", [
    (lambda f: cut(f), "ifhelpers: " ),
    (lambda f: more_tokens(f, 40), "ifhelpers: "),
], ids=["truncated", "tokenizer-too-large"])
def test_a_broken_folder_is_one_line_before_any_kernel(good_folder, tmp_path, capsys, monkeypatch, damage, expected):
    monkeypatch.chdir(tmp_path)
    folder = broken(good_folder, tmp_path)
    damage(folder)
    assert cli.main(["run", "vector_space", "--models", f"base={folder},ift=smollm2-135m-instruct"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(expected) and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "runs").exists()


def hub_snapshot(folder, cache, hub_id="org/tiny-llama"):
    """Lay ``folder``'s files out as the Hugging Face cache keeps a downloaded Hub model (blobs, a snapshot
    of links, ``refs/main``) under ``cache``."""
    repo = cache / f"models--{hub_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (repo / "blobs").mkdir()
    for i, file in enumerate(sorted(p for p in folder.iterdir() if p.is_file())):
        blob = repo / "blobs" / f"{i:040d}"
        shutil.copyfile(file, blob)
        (snapshot / file.name).symlink_to(blob)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    return hub_id


@pytest.mark.parametrize("damage, expected", [
    (lambda f: cut(f), "bytes where its header promises"),
    (lambda f: more_tokens(f, 40), "its tokenizer has 68 tokens but the embedding table only 40 rows"),
], ids=["truncated", "tokenizer-too-large"])
def test_a_hub_model_damaged_in_the_hugging_face_cache_is_one_line_before_any_kernel(
        good_folder, tmp_path, capsys, monkeypatch, damage, expected):
    import huggingface_hub.constants

    monkeypatch.chdir(tmp_path)
    folder = broken(good_folder, tmp_path)
    damage(folder)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    hub_id = hub_snapshot(folder, tmp_path / "hf")
    assert cli.main(["run", "vector_space", "--models", f"base={hub_id},ift=smollm2-135m-instruct"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ifhelpers: ") and expected in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "runs").exists()


def test_a_whole_hub_model_in_the_hugging_face_cache_passes_the_check(good_folder, tmp_path, monkeypatch):
    import huggingface_hub.constants

    from ifhelpers.model import models

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    hub_id = hub_snapshot(good_folder, tmp_path / "hf")
    models.check_installed(registry.resolve(hub_id, role="base"))  # reads the headers, raises nothing
