"""One batched forward pass per (model, texts), collecting what a chapter asks for, cached on disk.

A decoder layer ``l`` updates the residual stream at every position as (paper eq. 1)

    h^{l+1} = h^l + a^l + f^l,

with ``a^l`` the multi-head self-attention (MHSA) update and ``f^l`` the MLP update. For each text
the engine can return, at one captured token position (default: the last token):

* ``resid``        h^0 ... h^L, the residual stream before every layer and after the last
                   (shape ``(n, L+1, d)``; h^L is *before* the final norm);
* ``attn_update``  a^0 ... a^{L-1}  (``(n, L, d)``);
* ``mlp_update``   f^0 ... f^{L-1}  (``(n, L, d)``);

and, at the last position only (the next-token prediction; the full vocabulary is never computed
at other positions):

* ``top_ids`` / ``top_logprobs``   the ``top_k`` most likely next tokens and their log-probabilities;
* ``candidate_logprobs``          log-probabilities of given candidate token ids (``(n, C)``);
* ``next_token_logits``           the full next-token logits (``(n, V)``; large, off by default).

Texts are tokenized once, sorted by length and packed into batches under a padded-token budget;
left padding with explicit position ids makes each text's result equal to its unpadded single run.
Every finished batch is written to the on-disk cache (:mod:`ifhelpers.model.cache`) keyed by model, request
and the exact text and position, so repeating a run repeats no forward pass and an interrupted run
resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ifhelpers.model.cache import ActivationStore, content_key, store_for
from ifhelpers.model.models import LoadedModel
from ifhelpers.model.tokens import encode


@dataclass(frozen=True)
class Request:
    """What one pass collects; see the module docstring for the output names and shapes."""

    resid: bool = False
    updates: bool = False
    top_k: int = 0
    candidates: tuple[int, ...] = ()
    next_token_logits: bool = False

    def __post_init__(self):
        object.__setattr__(self, "candidates", tuple(int(c) for c in self.candidates))
        if not (self.resid or self.updates or self.top_k or self.candidates or self.next_token_logits):
            raise ValueError("The request collects nothing: set resid, updates, top_k, candidates or next_token_logits.")
        if self.top_k < 0:
            raise ValueError("top_k must be >= 0")

    @property
    def needs_logits(self) -> bool:
        return bool(self.top_k or self.candidates or self.next_token_logits)

    def key(self) -> str:
        return content_key("request-v1", dataclasses.asdict(self))


# --------------------------------------------------------------------------------------------------
# Where the updates are: the module whose output is added to the residual stream.


def decoder_layers(model):
    """The list of decoder layers of a causal LM (Llama, Gemma, Qwen, OLMo, Falcon, GPT-2 layouts)."""
    base = model.base_model
    for name in ("layers", "h"):
        if hasattr(base, name):
            return getattr(base, name)
    raise NotImplementedError(f"Cannot find the decoder layers of {type(model).__name__}")


def update_modules(layer):
    """(module producing a^l, module producing f^l) of one decoder layer.

    Gemma 2/3 and OLMo 2 normalise each update before adding it (``post_attention_layernorm`` and
    ``post_feedforward_layernorm``); Llama-style layers add the attention and MLP outputs directly.
    The engine checks eq. 1 on the first batch, so a wrong guess for a new architecture fails loudly.
    """
    if hasattr(layer, "post_feedforward_layernorm"):
        return layer.post_attention_layernorm, layer.post_feedforward_layernorm
    for name in ("self_attn", "self_attention", "attn"):
        if hasattr(layer, name):
            return getattr(layer, name), layer.mlp
    raise NotImplementedError(f"Cannot find the attention/MLP modules of {type(layer).__name__}")


def final_norm(model):
    """The norm applied to h^L before the output embedding (``model.norm`` / ``ln_f``)."""
    base = model.base_model
    for name in ("norm", "ln_f", "final_layernorm"):
        if hasattr(base, name):
            return getattr(base, name)
    raise NotImplementedError(f"Cannot find the final norm of {type(model).__name__}")


def _first(output):
    return output[0] if isinstance(output, tuple) else output


class _Recorder:
    """Forward hooks that keep, for each row of the batch, the vector at its captured position."""

    def __init__(self, model, request: Request):
        self.request = request
        self.index = None  # (rows, positions) into the padded batch, set before each pass
        self.store: dict[str, list] = {"resid": [], "attn_update": [], "mlp_update": []}
        self.handles = []
        layers = decoder_layers(model)
        if request.resid:
            for layer in layers:
                self.handles.append(layer.register_forward_pre_hook(self._pre_hook("resid"), with_kwargs=True))
            self.handles.append(layers[-1].register_forward_hook(self._hook("resid")))
        if request.updates:
            for layer in layers:
                attn, mlp = update_modules(layer)
                self.handles.append(attn.register_forward_hook(self._hook("attn_update")))
                self.handles.append(mlp.register_forward_hook(self._hook("mlp_update")))

    def _take(self, name, hidden):
        self.store[name].append(hidden[self.index].float())

    def _pre_hook(self, name):
        def hook(module, args, kwargs):
            self._take(name, args[0] if args else kwargs["hidden_states"])
        return hook

    def _hook(self, name):
        def hook(module, args, output):
            self._take(name, _first(output))
        return hook

    def collect(self) -> dict:
        out = {name: torch_stack(values) for name, values in self.store.items() if values}
        for values in self.store.values():
            values.clear()
        return out

    def remove(self):
        for handle in self.handles:
            handle.remove()


def torch_stack(values):
    import torch

    return torch.stack(values, dim=1).cpu().numpy()


# --------------------------------------------------------------------------------------------------
# Batching


def plan_batches(lengths: Sequence[int], max_batch_tokens: int, max_batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length, longest first, under a padded-token budget."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches, current = [], []
    for i in order:
        longest = lengths[current[0]] if current else lengths[i]
        if current and ((len(current) + 1) * longest > max_batch_tokens or len(current) >= max_batch_size):
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


def pad_left(ids: list[list[int]], pad_id: int, device):
    """Left-pad token id lists into one batch: ``(input_ids, attention_mask, position_ids)``.

    Padding goes on the left so that every text's last token is the batch's last column; position ids
    count real tokens only, so a padded text sees the positions it would see alone.
    """
    import torch

    width = max(map(len, ids))
    input_ids = torch.full((len(ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for row, seq in enumerate(ids):
        input_ids[row, width - len(seq):] = torch.tensor(seq)
        mask[row, width - len(seq):] = 1
    position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
    return input_ids.to(device), mask.to(device), position_ids.to(device)


def _forward_batch(lm: LoadedModel, recorder: _Recorder, ids: list[list[int]], positions: list[int]) -> dict:
    import torch

    request = recorder.request
    input_ids, mask, position_ids = pad_left(ids, lm.tokenizer.pad_token_id, lm.device)
    width = input_ids.shape[1]
    rows = torch.arange(len(ids), device=lm.device)
    cols = torch.tensor([width - len(seq) + (p if p >= 0 else len(seq) + p) for seq, p in zip(ids, positions)],
                        device=lm.device)
    recorder.index = (rows, cols)
    out: dict[str, np.ndarray] = {}
    with torch.inference_mode():
        if request.needs_logits:
            logits = lm.model(input_ids=input_ids, attention_mask=mask, position_ids=position_ids,
                              use_cache=False, logits_to_keep=1).logits[:, -1].float()
            logprobs = torch.log_softmax(logits, dim=-1)
            if request.top_k:
                top = logprobs.topk(request.top_k, dim=-1)
                out["top_ids"] = top.indices.cpu().numpy()
                out["top_logprobs"] = top.values.cpu().numpy()
            if request.candidates:
                out["candidate_logprobs"] = logprobs[:, list(request.candidates)].cpu().numpy()
            if request.next_token_logits:
                out["next_token_logits"] = logits.cpu().numpy()
        else:
            lm.model.base_model(input_ids=input_ids, attention_mask=mask, position_ids=position_ids, use_cache=False)
    out.update(recorder.collect())
    return out


def check_decomposition(out: dict, atol: float = 1e-3) -> None:
    """Assert paper eq. 1, h^{l+1} = h^l + a^l + f^l, on collected outputs (relative to |h|).

    paper: eq. 1
    """
    resid, attn, mlp = out["resid"], out["attn_update"], out["mlp_update"]
    error = np.abs(resid[:, 1:] - (resid[:, :-1] + attn + mlp)).max()
    scale = max(1.0, float(np.abs(resid).max()))
    if error > atol * scale:
        raise RuntimeError(
            f"h^(l+1) != h^l + a^l + f^l (max error {error:.3g} at scale {scale:.3g}): the engine hooks the "
            f"wrong attention/MLP modules for this architecture; see ifhelpers.model.engine.update_modules."
        )


# --------------------------------------------------------------------------------------------------
# The entry point


def run(lm: LoadedModel, texts: Sequence[str], request: Request, positions: Sequence[int] | None = None, *,
        cache: bool | str | Path = True, max_batch_tokens: int | None = None, max_batch_size: int = 64,
        progress: bool | None = None) -> dict[str, np.ndarray]:
    """Run ``lm`` on ``texts`` and return the requested outputs, row-aligned with ``texts``.

    ``positions`` gives, per text, the token index whose states are captured (negative counts from
    the end; default -1, the last token). ``cache`` is True (the user cache), False (no cache: every
    call runs the model), or a folder. Already cached texts are not run again; each computed batch is
    saved as soon as it finishes.
    """
    if isinstance(texts, str):
        raise TypeError("texts must be a list of strings, not one string")
    texts = list(texts)
    if not texts:
        raise ValueError("No texts given: pass a non-empty list of strings.")
    if positions is None:
        positions = [-1] * len(texts)
    positions = [int(p) for p in positions]
    if len(positions) != len(texts):
        raise ValueError(f"{len(positions)} positions for {len(texts)} texts")
    if max_batch_tokens is None:
        max_batch_tokens = int(os.environ.get("IFHELPERS_BATCH_TOKENS", 4096 if lm.device.type == "cpu" else 32768))

    keys = [content_key(text, pos) for text, pos in zip(texts, positions)]
    store: ActivationStore | None = None
    if cache:
        store = store_for(lm.fingerprint, request.key(), None if cache is True else cache)
    todo: dict[str, int] = {}
    for i, key in enumerate(keys):
        if (store is None or key not in store) and key not in todo:
            todo[key] = i

    results: dict[str, dict] = {}
    if todo:
        todo_keys = list(todo)
        ids = [encode(lm.tokenizer, texts[todo[k]]) for k in todo_keys]
        for k, seq in zip(todo_keys, ids):
            p = positions[todo[k]]
            if not -len(seq) <= p < len(seq):
                raise IndexError(f"position {p} is outside the {len(seq)} tokens of text {texts[todo[k]]!r}")
        batches = plan_batches([len(s) for s in ids], max_batch_tokens, max_batch_size)
        recorder = _Recorder(lm.model, request)
        try:
            from tqdm.auto import tqdm

            show = progress if progress is not None else len(batches) > 4
            bar = tqdm(total=sum(map(len, ids)), unit="tok", desc=f"{lm.name}", disable=not show, leave=False)
            for b, batch in enumerate(batches):
                out = _forward_batch(lm, recorder, [ids[i] for i in batch], [positions[todo[todo_keys[i]]] for i in batch])
                if b == 0 and request.resid and request.updates:
                    check_decomposition(out)
                batch_keys = [todo_keys[i] for i in batch]
                if store is not None:
                    store.write(batch_keys, out)
                else:
                    for row, key in enumerate(batch_keys):
                        results[key] = {name: values[row] for name, values in out.items()}
                bar.update(sum(len(ids[i]) for i in batch))
            bar.close()
        finally:
            recorder.remove()
    if store is not None:
        return store.read(keys)
    return {name: np.stack([results[k][name] for k in keys]) for name in results[keys[0]]}
