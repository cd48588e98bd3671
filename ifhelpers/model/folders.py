"""What a local model folder must hold before the book loads it, checked before any work starts.

A folder passed as a model (``ifhelpers run --models base=./my-model``, or ``models=["./my-model"]``
in a chapter) is looked at once, without importing its code or reading its weights, and refused
with one message that says what is missing and what to do:

* no such folder;
* no ``config.json``, or one that is not JSON;
* a ``config.json`` that asks for the repository's own code (``auto_map``): refused unless the user
  opts in with ``IFHELPERS_TRUST_REMOTE_CODE=1`` (``ifhelpers run --trust-remote-code``), because
  such code runs with the user's rights;
* a ``model_type`` this version of transformers does not know, an encoder-decoder model of a family the
  engine does not read (T5 it reads), or an architecture that is not a causal (decoder) language model;
* weights only as pickles (``*.bin``, ``*.pt``, ...): refused, because unpickling runs code; the
  message gives the one line that converts them to safetensors;
* no weights at all (or only a GGUF file, which loads through a registry entry);
* no tokenizer files;
* weights that do not read back whole (:func:`check_weights`, from the safetensors headers only, never
  the tensors): a header that does not parse, a file shorter or longer than its header says (a copy cut
  short), an embedding table whose rows differ from the config's ``vocab_size``, or a tokenizer with more
  tokens than the embedding table has rows (its last ids would index past the table mid-chapter).
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
    check_weights(folder, config)
    return folder.resolve()


def check_adapter_folder(path: str | Path, files: tuple[str, ...]) -> Path:
    """``path`` resolved, if it holds a stored LoRA adapter that reads back whole (a tuned model the book
    stores as what tuning changed, :mod:`ifhelpers.model.tuned`): every one of ``files`` there, the JSON ones
    parse, and every safetensors file is as long as its header says; else :class:`ModelFolderError` saying
    why (a folder of the older layout, a full merged copy, has no adapter)."""
    folder = Path(path)
    for name in files:
        file = folder / name
        if not file.is_file():
            raise ModelFolderError(f"{path}: no {name} (a folder of an older layout, or one cut short); it is "
                                   f"made again.")
        if name.endswith(".json"):
            try:
                json.loads(file.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError):
                raise ModelFolderError(f"{path}: its {name} does not parse; the file is damaged.") from None
    weights = sorted(folder.glob("*.safetensors"))
    if not weights:
        raise ModelFolderError(f"{path}: no adapter weights (no *.safetensors file).")
    for file in weights:
        safetensors_header(file)
    return folder.resolve()


def stored_whole(folder: str | Path, what: str, adapter_files: tuple[str, ...] = ()) -> bool:
    """Whether a model folder the book keeps in its cache (a converted, recovered or tuned model) is there and
    reads back whole (:func:`check_folder`; with ``adapter_files``, a stored adapter: :func:`check_adapter_folder`).
    One that is there but damaged is said on one line and removed (:func:`ifhelpers.data.sources.discard`), so
    that its maker makes it again."""
    from ifhelpers.data.sources import discard

    folder = Path(folder)
    if not folder.exists():
        return False
    try:
        if adapter_files:
            check_adapter_folder(folder, adapter_files)
        else:
            check_folder(folder, trust_remote_code=False)
        return True
    except ModelFolderError as error:
        discard(folder, str(error).splitlines()[0].removeprefix(f"{folder}: "), what)
        return False


def safetensors_header(file: Path) -> dict:
    """The tensors a safetensors file holds (name -> dtype, shape, data_offsets), read from its header
    alone; :class:`ModelFolderError` when the header does not parse or the file is not as long as the
    header says (8 bytes of header length, the JSON header, then the data the offsets cover)."""
    size = file.stat().st_size
    with open(file, "rb") as fh:
        head = fh.read(8)
        length = int.from_bytes(head, "little") if len(head) == 8 else -1
        if not 0 < length <= size - 8:
            raise ModelFolderError(f"{file}: not a readable safetensors file ({size} bytes, no valid header); "
                                   f"the copy is damaged or cut short: copy or save the model again.")
        try:
            header = json.loads(fh.read(length))
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ModelFolderError(f"{file}: its safetensors header does not parse; the file is damaged: copy or "
                                   f"save the model again.") from None
    tensors = {k: v for k, v in header.items() if k != "__metadata__"} if isinstance(header, dict) else {}
    end = 8 + length + max((t["data_offsets"][1] for t in tensors.values()), default=0)
    if end != size:
        raise ModelFolderError(f"{file}: {size} bytes where its header promises {end}; the file is "
                               f"{'cut short' if size < end else 'longer than its tensors'}: copy or save the "
                               f"model again.")
    return tensors


def tokenizer_size(folder: Path) -> int | None:
    """How many token ids the folder's tokenizer can produce (one more than its largest id), read from
    ``tokenizer.json``; None without one (a sentencepiece or vocab-file tokenizer, left unchecked)."""
    file = folder / "tokenizer.json"
    if not file.is_file():
        return None
    data = json.loads(file.read_text(encoding="utf-8"))
    vocab = (data.get("model") or {}).get("vocab") or {}
    ids = list(vocab.values()) if isinstance(vocab, dict) else [len(vocab) - 1] if vocab else []
    ids += [t["id"] for t in data.get("added_tokens") or []]
    return max(ids) + 1 if ids else None


#: Tensor names that are a model's input embedding table (llama-like, GPT-2, GPT-NeoX, BLOOM; T5's shared one).
EMBEDDING_NAMES = ("embed_tokens.weight", "wte.weight", "embed_in.weight", "word_embeddings.weight", "shared.weight")


#: Folders :func:`check_weights` found whole in this process, with their files' sizes and times: a folder
#: is read once per process unless a file changes.
_WHOLE: set = set()


def check_weights(folder: str | Path, config: dict | None = None) -> None:
    """:class:`ModelFolderError` unless every ``*.safetensors`` file of ``folder`` reads back whole
    (:func:`safetensors_header`), its embedding table has the config's ``vocab_size`` rows and the tokenizer
    (:func:`tokenizer_size`) fits in it. Reads headers and the tokenizer, not the weights; once per process
    for a folder whose files do not change."""
    folder = Path(folder)
    stamp = (str(folder.resolve()), tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns)
                                          for p in sorted(folder.iterdir()) if p.is_file()))
    if stamp in _WHOLE:
        return
    config = _config(folder) if config is None else config
    rows = None
    for file in sorted(folder.glob("*.safetensors")):
        for name, tensor in safetensors_header(file).items():
            if name.endswith(EMBEDDING_NAMES) and rows is None:
                rows = tensor["shape"][0]
    vocab = config.get("vocab_size", (config.get("text_config") or {}).get("vocab_size"))
    if rows is not None and vocab is not None and rows != vocab:
        raise ModelFolderError(f"{folder}: its embedding table has {rows} rows but config.json says vocab_size "
                               f"{vocab}; the weights and the config are from different models: save them together "
                               f"again with save_pretrained.")
    tokens = tokenizer_size(folder)
    if rows is not None and tokens is not None and tokens > rows:
        raise ModelFolderError(f"{folder}: its tokenizer has {tokens} tokens but the embedding table only {rows} "
                               f"rows (ids from {rows} on would fail mid-chapter); use the tokenizer saved with "
                               f"this model (tokenizer.save_pretrained), or resize the embeddings and save again.")
    _WHOLE.add(stamp)


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
    """The folder's ``model_type`` is known to transformers and loads as a causal language model, or is an
    encoder-decoder family the engine reads (:data:`ifhelpers.model.anatomy.ENCODER_DECODER`)."""
    import transformers
    from transformers import CONFIG_MAPPING
    from transformers.models.auto.modeling_auto import (MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
                                                        MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES)

    from ifhelpers.model.anatomy import ENCODER_DECODER, encoder_decoder_refusal

    model_type = config.get("model_type")
    if model_type in ENCODER_DECODER:
        return
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
