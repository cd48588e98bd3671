"""What a local model folder must hold before the book loads it, checked before any work starts.

A folder passed as a model (``ifhelpers run --models base=./my-model``, or ``models=["./my-model"]``
in a chapter) is looked at once, without importing its code or reading its weights, and refused
with one message that says what is missing and what to do:

* no such folder;
* no ``config.json``, or one that is not JSON;
* a ``config.json`` that asks for the repository's own code (``auto_map``): refused unless the user
  opts in with ``IFHELPERS_TRUST_REMOTE_CODE=1`` (``ifhelpers run --trust-remote-code``), because
  such code runs with the user's rights;
* a ``model_type`` this version of transformers does not know, an encoder-decoder model (T5), or an
  architecture that is not a causal (decoder) language model;
* weights only as pickles (``*.bin``, ``*.pt``, ...): refused, because unpickling runs code; the
  message gives the one line that converts them to safetensors;
* no weights at all (or only a GGUF file, which loads through a registry entry);
* no tokenizer files.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

#: The environment variable that allows a model folder's own code (``trust_remote_code``) to run.
TRUST_REMOTE_CODE = "IFHELPERS_TRUST_REMOTE_CODE"
PICKLE_WEIGHTS = ("*.bin", "*.pt", "*.pth", "*.ckpt", "*.pkl")
#: Any one of these makes a tokenizer transformers can load (fast JSON, sentencepiece, BPE or WordPiece vocab).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "spiece.model", "vocab.json", "vocab.txt")


class ModelFolderError(ValueError):
    """A local model folder the book cannot load; the message says what it lacks and what to do."""


def remote_code_allowed() -> bool:
    """Whether the user opted in to running a model repository's own code (``IFHELPERS_TRUST_REMOTE_CODE=1``)."""
    return os.environ.get(TRUST_REMOTE_CODE, "").strip().lower() in {"1", "true", "yes"}


def looks_like_path(name: str) -> bool:
    """A name the user meant as a folder: it starts with ``.``, ``/`` or ``~``, or has more than one ``/``
    (a Hub id is exactly ``owner/name``)."""
    return name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name


def check_folder(path: str | Path, trust_remote_code: bool | None = None) -> Path:
    """``path`` resolved, if it holds a loadable decoder model; else :class:`ModelFolderError` saying why."""
    folder = Path(path).expanduser()
    if not folder.exists():
        raise ModelFolderError(f"No such model folder: {path}. Give an existing folder (as written by "
                               f"save_pretrained), a Hugging Face Hub id (owner/name) or a registry name.")
    if not folder.is_dir():
        raise ModelFolderError(f"{path} is a file, not a model folder: give the folder that holds config.json, "
                               f"the weights and the tokenizer.")
    config = _config(folder)
    trust = remote_code_allowed() if trust_remote_code is None else trust_remote_code
    if config.get("auto_map") and not trust:
        raise ModelFolderError(
            f"{path}: its config.json asks to run the model's own code (auto_map: "
            f"{', '.join(sorted(config['auto_map']))}); the book refuses remote code by default. If you trust "
            f"it, opt in with IFHELPERS_TRUST_REMOTE_CODE=1 (or `ifhelpers run --trust-remote-code`).")
    if not config.get("auto_map"):
        _check_architecture(path, config)
    names = {p.name for p in folder.iterdir()}
    if not any(n.endswith(".safetensors") for n in names):
        pickles = sorted(p.name for pattern in PICKLE_WEIGHTS for p in folder.glob(pattern))
        if pickles:
            raise ModelFolderError(
                f"{path}: its weights are pickles ({', '.join(pickles)}), which the book does not load (unpickling "
                f"runs code). If you trust them, convert once to safetensors:\n    python -c \"from transformers "
                f"import AutoModelForCausalLM as M; M.from_pretrained('{folder}', use_safetensors=False)"
                f".save_pretrained('{folder}-safetensors')\"\n  and use {folder}-safetensors (copy the tokenizer "
                f"files too).")
        ggufs = sorted(n for n in names if n.endswith(".gguf"))
        hint = (f" It has a GGUF file ({', '.join(ggufs)}): add it to ifhelpers/model/models.yaml as a "
                f"pypi_gguf-style entry, or convert it with transformers (from_pretrained(..., gguf_file=...))."
                if ggufs else "")
        raise ModelFolderError(f"{path}: no weights (no *.safetensors file).{hint} A folder written by "
                               f"model.save_pretrained(folder) has them.")
    if not names & set(TOKENIZER_FILES):
        raise ModelFolderError(
            f"{path}: no tokenizer (none of {', '.join(TOKENIZER_FILES)}). Save the model's tokenizer beside it: "
            f"tokenizer.save_pretrained('{folder}').")
    return folder.resolve()


def _config(folder: Path) -> dict:
    file = folder / "config.json"
    if not file.exists():
        raise ModelFolderError(f"{folder}: no config.json, so this is not a transformers model folder. Save "
                               f"the model with model.save_pretrained(folder), which writes it.")
    try:
        config = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ModelFolderError(f"{file} is not valid JSON ({err}); save the model again with save_pretrained.") \
            from None
    if not isinstance(config, dict):
        raise ModelFolderError(f"{file} holds no JSON object; save the model again with save_pretrained.")
    return config


def _check_architecture(path, config: dict) -> None:
    """The folder's ``model_type`` is known to transformers and loads as a causal language model."""
    import transformers
    from transformers import CONFIG_MAPPING
    from transformers.models.auto.modeling_auto import (MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
                                                        MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES)

    from ifhelpers.model.anatomy import encoder_decoder_refusal

    model_type = config.get("model_type")
    if model_type not in CONFIG_MAPPING:
        raise ModelFolderError(
            f"{path}: config.json has model_type {model_type!r}, which transformers {transformers.__version__} does "
            f"not know. Use a transformers version that has it, or a folder written by save_pretrained.")
    encoder_decoder = model_type in MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES
    if encoder_decoder and model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        raise ModelFolderError(encoder_decoder_refusal(str(path), model_type))
    if model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        raise ModelFolderError(
            f"{path}: a {model_type!r} model is not a causal (decoder) language model; the book's engine reads "
            f"decoder models (e.g. llama, qwen2, gemma3_text, olmo2).")
