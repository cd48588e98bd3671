"""A model's anatomy: where each family keeps the parts the engine reads, in one table.

Paper eq. 1 writes a decoder layer ``l`` as an update of the residual stream,

    h^{l+1} = h^l + a^l + f^l,

with ``a^l`` the multi-head self-attention (MHSA) update and ``f^l`` the MLP update. Every family
builds that sum from differently named modules, so :data:`TABLE` says, per ``config.model_type``
(in the spirit of nnterp's renaming and TransformerLens' per-architecture adapters):

* ``layers``      the list of decoder layers (a dotted path from the ``*ForCausalLM`` model);
* ``attention``   the module of a layer whose output *is* a^l as it is added to the stream: the
                  attention itself, or the norm after it where the family normalises the update
                  before adding it (Gemma 2/3, OLMo 2);
* ``mlp``         likewise for f^l (OPT's second feed-forward matrix ``fc2``; the sparse MoE block of
                  Mixtral; the post-feed-forward norm of Gemma 2/3 and OLMo 2). A layer that adds
                  attention and MLP in parallel (Falcon, GPT-NeoX, Phi, Cohere) is the same sum;
* ``final_norm``  the norm h^L goes through before the output embedding;
* ``projection``  a linear map between the final norm and the output embedding (OPT's ``project_out``,
                  where its embeddings are narrower than its stream): the output embedding reads every
                  vector through it, final-normed or not;
* ``update_scale``, ``logit_scale``, ``logit_divisor``, ``softcap``: the config attributes that scale
                  each update as it is added (Granite's residual multiplier), multiply or divide the
                  logits (Cohere, Granite) or soft-cap them (Gemma 2/3);
* ``context``     the config attribute that gives the model's context (``n_positions`` for GPT-2's
                  learned positions, ``max_position_embeddings`` elsewhere);
* ``refuse``      a config under which eq. 1 cannot hold (OPT with ``do_layer_norm_before=False``
                  normalises the stream itself after each update), refused with one line.

A family the table does not know is looked for by a general rule (:func:`found_by_rule`) on the
model built on the ``meta`` device from its config (no weight is read): the list of
``num_hidden_layers`` identical layers, in each the one attention module and the one MLP module
(or the post-norms), and the norm of the module that holds the layers. What the rule could not find
is refused with one line before any work (:func:`check_config`); what it found says so
(:meth:`Anatomy.describe`) and is proved by the engine on a probe batch before the model's first pass
(:func:`ifhelpers.model.engine.prove_anatomy`).

Encoder-decoder models have entries of their own (:data:`ENCODER_DECODER`, T5: the paper's
t5-xl-lm-adapt / flan-t5-xl pair). §2's representation is "the outermost representation of the last
token"; in an encoder-decoder only the encoder reads the input, and the decoder, before its first
prediction, has read nothing but its start token (it sees the input through cross-attention to the
encoder's output). So the state that stands for the input's last token is the encoder's: ``layers``
are the encoder's blocks, h^0 ... h^L their residual stream at the last input token, and the
representation after the final norm is the encoder's output (``encoder.final_layer_norm``), the very
states the decoder's cross-attention reads. (T5's own tokenizer ends every input with ``</s>``, so
for the released models "the last token" is that ``</s>``, as the models were trained to read
their inputs.) Predictions are the decoder's first step: the next-token distribution after the
decoder start token (:func:`ifhelpers.model.engine.run`); a response (chapter 6) is what the decoder
writes from its start token, and its likelihood under a prompt is the decoder's, the encoder reading
the prompt. The other reading is offered as a variant (:data:`DECODER_STATE`, ``encoder_decoder_state="decoder"`` in
:func:`ifhelpers.model.models.load` and chapter 1's parameters): the decoder's residual stream at its first
step, which has read the start token and, through cross-attention, the encoder's output; its representation
is the decoder's final-normed state, the one its output embedding reads for the first prediction. Eq. 1's
updates and the logit lens are read on decoder layers only (each T5 sub-layer
adds its own residual), so chapters 4 and 5, which the paper ran on decoders only, are refused for
these models before any work (:func:`check_specs`, :func:`decoder_only`), and so is a run of chapter
6 that tunes chapter 5's arms.

A text longer than the model's context keeps its last ``context`` tokens, everywhere a model reads
text (:func:`cut_to_context`): the end is what a next-token prediction and a last-token state read.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable


class AnatomyError(ValueError):
    """A model whose parts the engine cannot find or read; the message says which and what to do."""


def _opt_refusal(config) -> str | None:
    """do_layer_norm_before=False (post-LN, OPT-350m)"""
    if not getattr(config, "do_layer_norm_before", True):
        return ("it normalises the residual stream after each update (do_layer_norm_before=False, post-LN, "
                "as OPT-350m does), so h^(l+1) = h^l + a^l + f^l (paper eq. 1) does not hold; use an OPT model "
                "with do_layer_norm_before=True (every OPT size but 350m)")
    return None


@dataclass(frozen=True)
class Anatomy:
    """Where one family keeps its parts (see the module docstring for each field)."""

    layers: str
    attention: str | None
    mlp: str | None
    final_norm: tuple[str, ...]
    projection: str | None = None
    layout: str = "pre-norm: a^l and f^l are the attention and MLP outputs"
    update_scale: str | None = None
    logit_scale: str | None = None
    logit_divisor: str | None = None
    softcap: str | None = None
    context: str | None = "max_position_embeddings"
    refuse: Callable | None = None
    #: Whether the general rule found these parts (then the engine proves them on a probe batch).
    by_rule: bool = False
    #: An encoder-decoder model: ``layers`` and ``final_norm`` are its encoder's (see the module docstring).
    encoder_decoder: bool = False
    #: Which stack of an encoder-decoder model the states are read from (:data:`ENCODER_DECODER_STATES`).
    state: str = "encoder"

    def describe(self) -> str:
        """The modules chosen, in one line."""
        if self.encoder_decoder:
            return (f"{self.state} layers {self.layers}, final norm {' then '.join(self.final_norm)}; predictions "
                    f"from the decoder's first step")
        return (f"decoder layers {self.layers}, a^l from each layer's {self.attention}, f^l from its {self.mlp}, "
                f"final norm {' then '.join(self.final_norm)}")

    def backbone(self, model):
        """The model without its output embedding (embeddings, decoder layers, final norm): transformers'
        ``base_model``, whose ``last_hidden_state`` is h^L after the final norm; for an encoder-decoder, its
        encoder (whose ``last_hidden_state`` is the encoder's output)."""
        return model.get_encoder() if self.encoder_decoder else model.base_model

    def decoder_layers(self, model):
        """The list of decoder layers of ``model`` (an encoder-decoder's encoder layers)."""
        return _get(model, self.layers)

    def update_modules(self, layer) -> tuple:
        """(module whose output is a^l, module whose output is f^l) of one decoder layer."""
        if self.encoder_decoder:
            raise AnatomyError(UPDATES_OF_ENCODER_DECODER)
        return _get(layer, self.attention), _get(layer, self.mlp)

    def update_multiplier(self, model) -> float:
        """The factor each update's module output is multiplied by as it is added to the stream."""
        return float(getattr(text_config(model.config), self.update_scale)) if self.update_scale else 1.0

    def final_norm_modules(self, model) -> list:
        """The final norm's modules, then the projection where the model has one."""
        paths = (*self.final_norm, self.projection) if self.projection else self.final_norm
        return [m for m in (_get(model, path) for path in paths) if m is not None]

    def apply_final_norm(self, model, hidden):
        """``hidden`` (h^L, shape ``(..., d)``) after the model's final norm (and projection): what the output
        embedding reads."""
        for module in self.final_norm_modules(model):
            hidden = module(hidden)
        return hidden

    def project(self, model, vectors):
        """``vectors`` through the projection to the output embedding's width, where the model has one (an
        update read in vocabulary space without the final norm, paper §4)."""
        module = _get(model, self.projection) if self.projection else None
        return module(vectors) if module is not None else vectors

    def logits(self, model, normed):
        """The model's logits from final-normed hidden states: the output embedding, then the family's
        logit scaling and final soft-capping where its config sets them (float32). An encoder-decoder's
        output embedding reads its decoder's states, not the encoder's that the engine keeps: refused."""
        import torch

        if self.encoder_decoder:
            raise AnatomyError(LENS_OF_ENCODER_DECODER)
        config = text_config(model.config)
        logits = model.get_output_embeddings()(normed).float()
        if self.logit_scale and getattr(config, self.logit_scale, None):
            logits = logits * getattr(config, self.logit_scale)
        if self.logit_divisor and getattr(config, self.logit_divisor, None):
            logits = logits / getattr(config, self.logit_divisor)
        cap = getattr(config, self.softcap, None) if self.softcap else None
        if cap:
            logits = torch.tanh(logits / cap) * cap
        return logits

    def context_length(self, config) -> int | None:
        """How many positions the model reads (None: the config does not say)."""
        value = getattr(text_config(config), self.context, None) if self.context else None
        return int(value) if value else None


LLAMA = Anatomy("model.layers", "self_attn", "mlp", ("model.norm",))
POST_NORMS = dataclasses.replace(LLAMA, attention="post_attention_layernorm", mlp="post_feedforward_layernorm",
                                 layout="post-norms: a^l and f^l are the norms applied to each update before it is "
                                        "added")
#: One entry per family (``config.model_type``); every entry is tested on a tiny random model
#: (``tests/test_anatomy.py``) and listed with what was checked in the book's appendix on models.
TABLE: dict[str, Anatomy] = {
    "llama": LLAMA,
    "mistral": dataclasses.replace(LLAMA, layout="pre-norm, sliding-window attention where the config sets one"),
    "mixtral": dataclasses.replace(LLAMA, layout="pre-norm; f^l is the sparse mixture-of-experts block's output"),
    "qwen2": LLAMA,
    "qwen3": LLAMA,
    "qwen3_moe": dataclasses.replace(LLAMA, layout="pre-norm; f^l is the sparse mixture-of-experts block's output"),
    "phi3": LLAMA,
    "granite": dataclasses.replace(LLAMA, update_scale="residual_multiplier", logit_divisor="logits_scaling",
                                   layout="pre-norm; each update is scaled by residual_multiplier, the logits "
                                          "divided by logits_scaling"),
    "cohere": dataclasses.replace(LLAMA, logit_scale="logit_scale",
                                  layout="parallel attention and MLP; the logits are multiplied by logit_scale"),
    "phi": dataclasses.replace(LLAMA, final_norm=("model.final_layernorm",), layout="parallel attention and MLP"),
    "gemma2": dataclasses.replace(POST_NORMS, softcap="final_logit_softcapping"),
    "gemma3_text": dataclasses.replace(POST_NORMS, softcap="final_logit_softcapping"),
    # the multimodal Gemma 3 (its text part): transformers' Gemma3ForConditionalGeneration does not soft-cap its logits
    "gemma3": dataclasses.replace(POST_NORMS, layers="model.language_model.layers",
                                  final_norm=("model.language_model.norm",)),
    "olmo2": POST_NORMS,
    "gpt2": Anatomy("transformer.h", "attn", "mlp", ("transformer.ln_f",), context="n_positions",
                    layout="pre-norm, learned positions"),
    "gpt_neox": Anatomy("gpt_neox.layers", "attention", "mlp", ("gpt_neox.final_layer_norm",),
                        layout="parallel attention and MLP (use_parallel_residual), or sequential"),
    "opt": Anatomy("model.decoder.layers", "self_attn", "fc2",
                   ("model.decoder.final_layer_norm",), projection="model.decoder.project_out", refuse=_opt_refusal,
                   layout="pre-norm, learned positions; f^l is fc2's output (no MLP module)"),
    "falcon": Anatomy("transformer.h", "self_attention", "mlp", ("transformer.ln_f",),
                      layout="parallel attention and MLP (parallel_attn, new_decoder_architecture), or sequential"),
}
#: The encoder-decoder families the engine reads (see the module docstring), by ``config.model_type``.
ENCODER_DECODER: dict[str, Anatomy] = {
    "t5": Anatomy("encoder.block", None, None, ("encoder.final_layer_norm",), context=None, encoder_decoder=True,
                  layout="encoder-decoder: the representation is the encoder's output at the last input token, "
                         "predictions the decoder's first step; relative positions (no fixed context)"),
}
#: Which state of an encoder-decoder model stands for its input (the module docstring says why the encoder's).
ENCODER_DECODER_STATES = ("encoder", "decoder")
#: The variant of each :data:`ENCODER_DECODER` family that reads the decoder's state at its first step.
DECODER_STATE: dict[str, Anatomy] = {
    "t5": Anatomy("decoder.block", None, None, ("decoder.final_layer_norm",), context=None, encoder_decoder=True,
                  state="decoder",
                  layout="encoder-decoder, read from the decoder: the representation is the decoder's state at its "
                         "first step (after its start token), predictions that step's"),
}
#: What an encoder-decoder model cannot give (eq. 1's updates), in one line.
UPDATES_OF_ENCODER_DECODER = ("an encoder-decoder model has no decoder-layer updates h^(l+1) = h^l + a^l + f^l (paper "
                              "eq. 1) for the engine to read: each T5 sub-layer adds its own residual; ask for resid "
                              "and the first step's predictions (top_k, candidates, next_token_logits) or a continuation")
#: Why the logit lens does not read an encoder-decoder's states, in one line.
LENS_OF_ENCODER_DECODER = ("the logit lens reads decoder states through the output embedding, and an encoder-decoder's "
                           "states the engine keeps are its encoder's, which no output embedding reads; its "
                           "predictions are the decoder's first step (engine.run with top_k or candidates)")
#: The chapters an encoder-decoder model is refused for, by chapter (its notebook's name without the number), and why.
DECODER_ONLY_CHAPTERS = {
    "mechanisms": "chapter 4 reads eq. 1's updates of a decoder's residual stream and their logit lens, which the "
                  "paper measured on decoder models only",
    "tune_it_yourself": "chapter 5 tunes a decoder with LoRA on chat-formatted examples, as the paper's tuned models "
                        "are decoders",
}


def text_config(config):
    """The decoder's config (the text config of a multimodal model)."""
    return config.get_text_config(decoder=True)


def _get(root, path: str):
    for name in path.split("."):
        root = root[int(name)] if name.isdigit() else getattr(root, name)
    return root


def check_state(state: str) -> str:
    """``state`` if it is one of :data:`ENCODER_DECODER_STATES`, else ValueError with one line."""
    if state not in ENCODER_DECODER_STATES:
        raise ValueError(f"encoder_decoder_state={state!r}: use one of {', '.join(ENCODER_DECODER_STATES)}")
    return state


def encoder_decoder_refusal(name: str, model_type: str | None) -> str:
    """The one line that refuses an encoder-decoder model of a family :data:`ENCODER_DECODER` does not hold."""
    return (f"{name} is an encoder-decoder model ({model_type or 'encoder-decoder'}): the engine reads the "
            f"encoder-decoder families {', '.join(ENCODER_DECODER)} only. Use one of those, or a decoder model (e.g. "
            f"llama, qwen2, gemma3_text, olmo2).")


def decoder_only(chapter: str | None, settings: dict) -> str | None:
    """Why a run of ``chapter`` (its notebook's name without the number) with ``settings`` (its parameters) reads
    or tunes decoder models only: a chapter of :data:`DECODER_ONLY_CHAPTERS`, or a run that tunes chapter 5's
    arms (chapter 6's ``tuned_arms``); None when it reads encoder-decoder models too."""
    if chapter in DECODER_ONLY_CHAPTERS:
        return f"{DECODER_ONLY_CHAPTERS[chapter]}; run chapters 1, 2, 3 and 6 for it, or give this chapter decoder models"
    if settings.get("tuned_arms"):
        return ("the run's tuned_arms tune its base model with chapter 5's recipe (LoRA on a decoder); set "
                "tuned_arms=None (--set tuned_arms=null) to run it on encoder-decoder models")
    return None


def chapter_refusal(name: str, model_type: str, why: str) -> str:
    """The one line that refuses an encoder-decoder model for a run that reads decoders only (:func:`decoder_only`)."""
    return f"{name} is an encoder-decoder model ({model_type}): {why}."


def of(model, name: str | None = None, state: str = "encoder") -> Anatomy:
    """The anatomy of a loaded (or ``meta``) model: its family's table entry, else the general rule's
    finding; :class:`AnatomyError` with one line when the config cannot satisfy eq. 1 or a part is missing.
    ``state`` picks, for an encoder-decoder model, the stack its states are read from
    (:data:`ENCODER_DECODER_STATES`; a decoder model has one)."""
    name = name or type(model).__name__
    config = model.config
    if getattr(config, "is_encoder_decoder", False):
        if config.model_type not in ENCODER_DECODER:
            raise AnatomyError(encoder_decoder_refusal(name, config.model_type))
        if getattr(config, "decoder_start_token_id", None) is None:
            raise AnatomyError(f"{name}: its config sets no decoder_start_token_id, the token its decoder starts "
                               f"from (0, the pad token, for T5): set it in config.json.")
        entry = (DECODER_STATE if check_state(state) == "decoder" else ENCODER_DECODER)[config.model_type]
    else:
        entry = TABLE.get(config.model_type)
    if entry is None:
        return found_by_rule(model, name)
    why = entry.refuse(text_config(config)) if entry.refuse else None
    if why:
        raise AnatomyError(f"{name}: a {config.model_type!r} model the engine cannot read: {why}.")
    paths = [entry.layers, *entry.final_norm, *((entry.projection,) if entry.projection else ()),
             *(f"{entry.layers}.0.{part}" for part in (entry.attention, entry.mlp) if part)]
    for path in paths:
        try:
            _get(model, path)
        except (AttributeError, IndexError):
            raise AnatomyError(f"{name}: the anatomy table's {config.model_type!r} entry names {path}, which this "
                               f"{type(model).__name__} does not have; correct the entry in "
                               f"ifhelpers/model/anatomy.py.") from None
    return entry


def found_by_rule(model, name: str) -> Anatomy:
    """The parts of a family the table does not know, found by their shape; see the module docstring."""
    from torch import nn

    config = text_config(model.config)
    what = f"{name}: {model.config.model_type!r} is not in the anatomy table (ifhelpers/model/anatomy.py) and"
    n_layers = getattr(config, "num_hidden_layers", None)
    lists = [(path, m) for path, m in model.named_modules() if isinstance(m, nn.ModuleList) and len(m) == n_layers
             and len({type(layer) for layer in m}) == 1]
    if not n_layers or not lists:
        raise AnatomyError(f"{what} the general rule finds no list of its {n_layers} decoder layers; add the family "
                           f"to TABLE there.")
    layers_path, layers = lists[0]
    layer = layers[0]
    children = dict(layer.named_children())
    kind = type(layer).__name__
    if "post_feedforward_layernorm" in children and "post_attention_layernorm" in children:
        attention, mlp = "post_attention_layernorm", "post_feedforward_layernorm"
    else:
        attention = _one_child(children, ("attention",), what, kind, "attention module")
        mlp = _one_child(children, ("mlp", "moe", "feedforward", "ffn"), what, kind, "MLP module")
    holder_path = layers_path.rpartition(".")[0]
    holder = _get(model, holder_path) if holder_path else model
    norms = [n for n, m in holder.named_children() if "norm" in type(m).__name__.lower()]
    if not norms:
        raise AnatomyError(f"{what} the general rule finds no final norm beside its decoder layers ({layers_path}); "
                           f"add the family to TABLE there.")
    prefix = f"{holder_path}." if holder_path else ""
    return Anatomy(layers_path, attention, mlp, (prefix + norms[-1],), layout="found by the general rule",
                   logit_scale="logit_scale", logit_divisor="logits_scaling", softcap="final_logit_softcapping",
                   by_rule=True)


def _one_child(children: dict, words: tuple[str, ...], what: str, kind: str, part: str) -> str:
    found = [n for n, m in children.items() if any(w in type(m).__name__.lower() for w in words)]
    if len(found) != 1:
        raise AnatomyError(f"{what} the general rule finds {'no' if not found else len(found)} {part} in its "
                           f"{kind} (children: {', '.join(children)}); add the family to TABLE there.")
    return found[0]


def model_class(config):
    """The transformers class that reads a model of ``config``: a causal LM, or for an encoder-decoder family of
    :data:`ENCODER_DECODER` a sequence-to-sequence LM."""
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM

    return AutoModelForSeq2SeqLM if config.model_type in ENCODER_DECODER else AutoModelForCausalLM


def meta_model(config):
    """The language model of ``config`` (:func:`model_class`) built on the ``meta`` device: its modules, no
    weights."""
    import torch

    with torch.device("meta"):
        return model_class(config).from_config(config)


def check_config(config, name: str) -> Anatomy:
    """The anatomy of the model ``config`` describes, found before any weight is read (on the ``meta``
    device); :class:`AnatomyError` with one line if the engine cannot read it."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    if getattr(config, "is_encoder_decoder", False):
        if config.model_type not in ENCODER_DECODER:
            raise AnatomyError(encoder_decoder_refusal(name, config.model_type))
        return of(meta_model(config), name)
    if config.model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        raise AnatomyError(f"{name}: a {config.model_type!r} model is not a causal (decoder) language model; the "
                           f"book's engine reads decoder models (e.g. llama, qwen2, gemma3_text, olmo2).")
    return of(meta_model(config), name)


def check_spec(spec, decoders_only: str | None = None) -> Anatomy | None:
    """The anatomy of a model the registry resolved (:class:`ifhelpers.model.registry.ModelSpec`), checked before
    any work: an encoder-decoder spec of a family :data:`ENCODER_DECODER` does not hold is refused, and so is any
    encoder-decoder model for a run that reads decoders only (``decoders_only``: why, from :func:`decoder_only`);
    a local folder's config (or a Hub model's config already in the Hugging Face cache) is checked with
    :func:`check_config`. None when the config is not on this machine (the model is checked again once it
    loads)."""
    from transformers import AutoConfig

    registered_encoder_decoder = spec.architecture != "decoder-only"
    if registered_encoder_decoder and spec.family not in ENCODER_DECODER:
        raise AnatomyError(encoder_decoder_refusal(spec.name, spec.family))
    if registered_encoder_decoder and decoders_only:
        raise AnatomyError(chapter_refusal(spec.name, spec.family, decoders_only))
    location = {"local": "path", "hub": "hub_id"}.get(spec.source["kind"])
    if location is None:
        return None
    try:
        config = AutoConfig.from_pretrained(spec.source[location], local_files_only=True,
                                            revision=spec.source.get("revision"))
    except (OSError, ValueError):
        return None
    parts = check_config(config, spec.name)
    if parts.encoder_decoder and decoders_only:
        raise AnatomyError(chapter_refusal(spec.name, config.model_type, decoders_only))
    return parts


def check_specs(specs: list, decoders_only: str | None = None) -> list:
    """:func:`check_spec` for every spec of a run (``decoders_only`` as there); returns the specs."""
    for spec in specs:
        check_spec(spec, decoders_only)
    return specs


#: Llama's names for every projection of attention and the MLP: what chapter 5's recipe tunes with LoRA
#: (:class:`ifhelpers.model.tuned.Recipe`'s ``target_modules``) in a family that names them so.
PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def lora_targets(model, names: tuple[str, ...], name: str | None = None) -> list[str]:
    """The modules LoRA tunes in ``model`` for the module names ``names`` (peft's ``target_modules``).

    The linear layers of the decoder layers (:meth:`Anatomy.decoder_layers`) whose name is among ``names``, given
    as ``names`` where those are exactly the modules peft would match, else by their full paths (a multimodal
    model's vision tower has a ``q_proj`` too). Where ``names`` are :data:`PROJECTIONS` and the family names its
    projections otherwise (GPT-2's ``c_attn``/``c_fc``/``c_proj``, GPT-NeoX's and Falcon's ``query_key_value``/
    ``dense*``, OPT's ``out_proj``/``fc1``/``fc2``, Phi-3's fused ``qkv_proj``/``gate_up_proj``), every linear layer
    of the decoder layers: the same projections under the family's names (a mixture of experts keeps its experts
    as 3-D parameters, not linear layers, so its attention projections alone). :class:`AnatomyError` with one
    line when a name is missing from the decoder layers.
    """
    import torch
    from transformers.pytorch_utils import Conv1D

    name = name or type(model).__name__
    layers = of(model, name).layers
    linear = [path for path, module in model.named_modules() if isinstance(module, (torch.nn.Linear, Conv1D))
              and path.split(".")[-1] != "lm_head"]
    inside = [path for path in linear if path.startswith(layers + ".")]
    chosen = [path for path in inside if path.split(".")[-1] in names]
    missing = sorted(set(names) - {path.split(".")[-1] for path in chosen})
    if missing and tuple(names) == PROJECTIONS:
        chosen = inside
    elif missing:
        raise AnatomyError(f"{name}: LoRA target modules {', '.join(missing)} are not linear layers of its decoder "
                           f"layers ({layers}), which has {', '.join(sorted({p.split('.')[-1] for p in inside}))}: "
                           f"set the recipe's target_modules to those")
    if not chosen:
        raise AnatomyError(f"{name}: its decoder layers ({layers}) hold no linear layer for LoRA to tune")
    everywhere = [path for path in linear if path.split(".")[-1] in names]
    return list(names) if not missing and everywhere == chosen else chosen


def context_length(model) -> int | None:
    """How many positions ``model`` reads (its family's context attribute)."""
    return of(model).context_length(model.config)


def cut_to_context(ids: list[int], context: int | None) -> list[int]:
    """The last ``context`` tokens of ``ids`` (all of them when they fit, or the context is unknown)."""
    return ids if context is None or len(ids) <= context else ids[len(ids) - context:]


def narrowest_window(model) -> int | None:
    """The narrowest sliding attention window of ``model``'s layers (None: every layer sees every
    position), read from its config (``sliding_window`` and, where given, ``layer_types``)."""
    config = text_config(model.config)
    window = getattr(config, "sliding_window", None)
    layer_types = getattr(config, "layer_types", None) or ()
    if window is None or (layer_types and "sliding_attention" not in layer_types):
        return None
    return int(window)


#: What ``tests/test_anatomy.py`` checks on a tiny random model of every entry of :data:`TABLE` (it fails when an
#: entry has no tiny model).
CHECKED_FOR_EVERY_ENTRY = ("eq. 1 at every layer", "prefix reuse gives the plain pass's results",
                           "the logit lens on h^L gives the model's own logits")
#: The chapters each family's tiny random models run in the tests (``tests/test_any_architecture.py``, whose
#: families ``tests/test_anatomy.py`` checks against these): every family through ``ifhelpers run`` for chapters
#: 1-4 and 6 (a Gemma 3 base and every other family tuned, in one run per chapter) and chapter 5's recipe
#: (LoRA on the family's projections, stored, loaded back and read by the engine) in process; three bases
#: (pre-norm; post-norms with a sliding window; learned positions with Conv1D projections) run chapter 5 end
#: to end. The pocket pair (gemma3_text, llama) runs the whole book.
CHAPTERS_RUN = {**{family: "1-4 and 6 through ifhelpers run; chapter 5's tuning in process" for family in TABLE},
                **{family: "1-6 through ifhelpers run" for family in ("llama", "gemma3_text", "gpt2")},
                "t5": "1 (both states) and 6 through ifhelpers run, 1, 2, 3 and 6 in process; 4 and 5 refused"}
#: What ``tests/test_t5.py`` checks on a tiny random model of every entry of :data:`ENCODER_DECODER`.
CHECKED_FOR_ENCODER_DECODER = ("h^0 ... h^L are the encoder's states and the representation its output",
                               "the predictions are the model's own first decoder step",
                               "a continuation is scored as the decoder's output", "no prefix is shared")


def table():
    """The anatomy table as a pandas DataFrame (one row per family, with what the tests check for it), for the
    book's appendix on models."""
    import pandas as pd

    rows = []
    for family, entry in {**TABLE, **ENCODER_DECODER}.items():
        logits = [f"× {entry.logit_scale}" if entry.logit_scale else "", f"÷ {entry.logit_divisor}"
                  if entry.logit_divisor else "", f"soft-capped by {entry.softcap}" if entry.softcap else ""]
        scale = f" × {entry.update_scale}" if entry.update_scale else ""
        no_update = "none (each sub-layer adds its own residual)"
        if entry.encoder_decoder:
            logits = ["the model's own, at the decoder's first step"]
        rows.append({"model_type": family, "layout": entry.layout,
                     "decoder layers": entry.layers + (" (the encoder's)" if entry.encoder_decoder else ""),
                     "a^l": entry.attention + scale if entry.attention else no_update,
                     "f^l": entry.mlp + scale if entry.mlp else no_update,
                     "final norm": " then ".join((*entry.final_norm, *((entry.projection,) if entry.projection
                                                                        else ()))),
                     "logits": "; ".join(x for x in logits if x) or "as the output embedding gives them",
                     "context": entry.context or "none (relative positions)",
                     "refused": "when " + entry.refuse.__doc__ if entry.refuse else "",
                     "checked on a tiny random model": "; ".join(CHECKED_FOR_ENCODER_DECODER if entry.encoder_decoder
                                                                 else CHECKED_FOR_EVERY_ENTRY),
                     "chapters run on a tiny random model": CHAPTERS_RUN.get(family, "")})
    return pd.DataFrame(rows)
