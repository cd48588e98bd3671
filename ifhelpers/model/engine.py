"""One batched forward pass per (model, texts), collecting what a chapter asks for, cached on disk.

A decoder layer ``l`` updates the residual stream at every position as (paper eq. 1)

    h^{l+1} = h^l + a^l + f^l,

with ``a^l`` the multi-head self-attention (MHSA) update and ``f^l`` the MLP update. For each text
the engine can return, at one captured token position (default: the last token):

* ``resid``        h^0 ... h^L, the residual stream before every layer and after the last
                   (shape ``(n, L+1, d)``; h^L is *before* the final norm), or h^L alone
                   (``(n, 1, d)``) for ``resid_layers="last"``, a 1/(L+1) of the space;
* ``attn_update``  a^0 ... a^{L-1}  (``(n, L, d)``);
* ``mlp_update``   f^0 ... f^{L-1}  (``(n, L, d)``);

and, at the last position only (the next-token prediction; the full vocabulary is never computed
at other positions):

* ``top_ids`` / ``top_logprobs``   the ``top_k`` most likely next tokens and their log-probabilities;
* ``candidate_logprobs``          log-probabilities of given candidate token ids (``(n, C)``);
* ``next_token_logits``           the full next-token logits (``(n, V)``; large, off by default);

and, after the captured position, the text's own next tokens:

* ``continuation_logprobs``       log P(t_{p+1} | t_{≤p}) ... log P(t_{p+k} | t_{<p+k}) of the ``k`` tokens
                                  that follow the captured position p (``(n, k)``, NaN past the text's
                                  end): the log-likelihood of a response written after its prompt, with
                                  p the prompt's last token.

An encoder-decoder model (T5, :data:`ifhelpers.model.anatomy.ENCODER_DECODER`) is read the same way with
the roles the anatomy gives it: ``resid`` is its *encoder's* residual stream at the captured input token
(h^L before the encoder's final norm; after it, the encoder's output: §2's representation, see
:mod:`ifhelpers.model.anatomy` for why), and the next-token outputs are the decoder's first step, the
distribution of its first token after the decoder start token, given the encoder's output (one pass of the
model with ``decoder_input_ids = [[decoder_start_token_id]]``); a continuation is scored as what the
decoder writes after the text up to the captured token. The updates are decoder-only (asking for them
is refused with one line), and no prefix is shared: the encoder's attention is bidirectional, so a
token's state depends on the tokens after it and a prefix computed alone is not the prefix of a longer
text.

Where each family keeps these updates, its final norm and its logit scaling is its anatomy
(:mod:`ifhelpers.model.anatomy`, read through ``lm.anatomy``); parts found there by the general rule are proved
on a probe batch before the model's first pass (:func:`prove_anatomy`). A text longer than the model's
context is read from its last tokens (:func:`fit_context`), and counted (:data:`CUT_TO_CONTEXT`).

Texts are tokenized once, sorted by length and cut into batches under a padded-token budget where the
padding and the passes cost least (:func:`plan_batches`); left padding with explicit position ids makes each text's result equal to its unpadded single run.

Texts that begin alike share the work (prefix caching, on by default; ``share_prefixes=False`` or
``IFHELPERS_SHARE_PREFIXES=0`` switches it off): :func:`ifhelpers.model.prefix.plan` picks the token
prefixes worth computing once, each is run once with its key/value cache kept, and the texts' remaining
tokens run on top of it (the cache gathered over the batch, the attention mask and position ids
continued from the prefix). Below the first level a batch holds continuations of one length, so the
real tokens of every row stay contiguous and sliding-window layers see the distances a plain pass sees.
A result does not depend on how it was computed, so the on-disk cache keys are the same either way;
and a request is served by the cached results of a fuller one (:meth:`Request.fuller`: h^L is read from
a pass that kept every layer, bfloat16 states from float32 ones), so asking for less never repeats a
forward pass. A request may keep its states in bfloat16 (``states_dtype``), half the bytes of float32.
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

from ifhelpers.model import anatomy, tokens
from ifhelpers.model.cache import ActivationStore, content_key, existing_store, missing_keys, store_for
from ifhelpers.model.models import LoadedModel
from ifhelpers.model.prefix import Plan, plan
from ifhelpers.model.tokens import encode

#: Continuations are short, so a batch of them may hold more rows than a plain batch (this factor
#: times ``max_batch_size``), each carrying its prefix's keys and values: their total (prefix plus
#: continuation) is bounded by this factor times the padded-token budget.
CONTINUATION_ROWS_FACTOR = 4
CONTEXT_TOKENS_PER_BATCH = 4
#: What one pass costs beyond its padded tokens, in token positions: on this machine's CPU a pass of
#: one short row takes as long as ~50-65 tokens do in a large batch (every weight is read once per pass;
#: measured on both pocket models), so a batch splits where that saves more padding than this.
PASS_COST_TOKENS = 64
#: When a shared prefix is worth a pass of its own (see :func:`ifhelpers.model.prefix.plan`).
PREFIX_RULE = {"min_segment": 2, "min_saving": 8}


@dataclass(frozen=True)
class Request:
    """What one pass collects; see the module docstring for the output names and shapes."""

    resid: bool = False
    updates: bool = False
    top_k: int = 0
    candidates: tuple[int, ...] = ()
    next_token_logits: bool = False
    continuation: int = 0
    #: ``"all"``: ``resid`` holds h^0 ... h^L; ``"last"``: h^L only, for a reader of the last layer.
    resid_layers: str = "all"
    #: How the states (``resid``, ``attn_update``, ``mlp_update``) are kept: ``"float32"`` as computed, or
    #: ``"bfloat16"``: rounded to the nearest bfloat16 (8 significant bits, float32's range), half the
    #: bytes on disk. They are returned as float32 either way, and rounded the same with or without the
    #: cache; predictions and log-probabilities are never rounded.
    states_dtype: str = "float32"

    def __post_init__(self):
        object.__setattr__(self, "candidates", tuple(int(c) for c in self.candidates))
        if not (self.resid or self.updates or self.top_k or self.candidates or self.next_token_logits
                or self.continuation):
            raise ValueError("The request collects nothing: set resid, updates, top_k, candidates, "
                             "next_token_logits or continuation.")
        if self.top_k < 0 or self.continuation < 0:
            raise ValueError("top_k and continuation must be >= 0")
        if self.resid_layers not in ("all", "last"):
            raise ValueError(f"resid_layers={self.resid_layers!r}: use 'all' (h^0 ... h^L) or 'last' (h^L).")
        if self.resid_layers == "last" and (not self.resid or self.updates):
            raise ValueError("resid_layers='last' needs resid=True and no updates (eq. 1 is checked on every "
                             "layer's states): ask for resid_layers='all' with the updates.")
        if self.states_dtype not in STATE_DTYPES:
            raise ValueError(f"states_dtype={self.states_dtype!r}: use one of {', '.join(STATE_DTYPES)}.")

    @property
    def needs_logits(self) -> bool:
        return bool(self.top_k or self.candidates or self.next_token_logits)

    def key(self) -> str:
        fields = dataclasses.asdict(self)
        # the keys of the requests made before a field existed stay the same
        if not self.continuation:
            del fields["continuation"]
        if self.resid_layers == "all":
            del fields["resid_layers"]
        if self.states_dtype == "float32":
            del fields["states_dtype"]
        return content_key("request-v1", fields)

    def fuller(self) -> Request | None:
        """The next request whose results hold this one's, so that its cached passes serve it
        (:meth:`taken_from`): the same request keeping every layer of ``resid``, else keeping the states
        in float32; None when this one keeps everything. Followed in turn, a last-layer bfloat16 request
        is served by an all-layer bfloat16 pass and by an all-layer float32 one."""
        if self.resid_layers == "last":
            return dataclasses.replace(self, resid_layers="all")
        if self.states_dtype != "float32":
            return dataclasses.replace(self, states_dtype="float32")
        return None

    def taken_from(self, fuller_out: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """This request's stored outputs read from the stored outputs of its :meth:`fuller` request
        (h^L of every layer's, or float32 states rounded to bfloat16)."""
        fuller = self.fuller()
        if fuller.resid_layers != self.resid_layers:
            return {**fuller_out, "resid": fuller_out["resid"][:, -1:]}
        return self.stored(fuller_out)

    def stored(self, out: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Computed float32 outputs as this request keeps them (states as bfloat16 bits, see
        :attr:`states_dtype`)."""
        return self._with_states(out, bfloat16_bits)

    def returned(self, out: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Stored outputs as :func:`run` returns them: every state in float32."""
        return self._with_states(out, from_bfloat16_bits)

    def _with_states(self, out: dict[str, np.ndarray], convert) -> dict[str, np.ndarray]:
        if self.states_dtype == "float32":
            return out
        return {name: convert(values) if name in STATE_OUTPUTS else values for name, values in out.items()}


#: The outputs that are states of the residual stream (what :attr:`Request.states_dtype` applies to).
STATE_OUTPUTS = ("resid", "attn_update", "mlp_update")
STATE_DTYPES = ("float32", "bfloat16")


def bfloat16_bits(values: np.ndarray) -> np.ndarray:
    """float32 ``values`` rounded to the nearest bfloat16 (ties to even), as its 16 bits (``uint16``)."""
    import torch

    values = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))
    return values.to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)


def from_bfloat16_bits(bits: np.ndarray) -> np.ndarray:
    """The float32 value of each bfloat16 of :func:`bfloat16_bits` (exact: bfloat16 is float32's top half)."""
    wide = bits.astype(np.uint32)
    wide <<= 16
    return wide.view(np.float32)


def _first(output):
    return output[0] if isinstance(output, tuple) else output


class _Recorder:
    """Forward hooks on the modules the model's anatomy names (:mod:`ifhelpers.model.anatomy`) that keep,
    for each row of the batch, the vector at its captured position."""

    def __init__(self, lm: LoadedModel, request: Request):
        self.request = request
        self.index = None  # (rows, positions) into the padded batch, set before each pass
        self.width = None  # the batch's columns, set with ``index``
        self.store: dict[str, list] = {"resid": [], "attn_update": [], "mlp_update": []}
        self.handles = []
        parts = lm.anatomy
        layers = parts.decoder_layers(lm.model)
        if request.resid:
            if request.resid_layers == "all":
                for layer in layers:
                    self.handles.append(layer.register_forward_pre_hook(self._pre_hook("resid"), with_kwargs=True))
            self.handles.append(layers[-1].register_forward_hook(self._hook("resid")))
        if request.updates:
            scale = parts.update_multiplier(lm.model)  # each update as it is added to the stream
            for layer in layers:
                attn, mlp = parts.update_modules(layer)
                self.handles.append(attn.register_forward_hook(self._hook("attn_update", scale)))
                self.handles.append(mlp.register_forward_hook(self._hook("mlp_update", scale)))

    def _take(self, name, hidden, scale: float = 1.0):
        if self.index is not None:  # None: a shared-prefix pass, whose states no text captures
            if hidden.dim() == 2:  # a module that works on the batch's rows flattened (OPT's fc2)
                hidden = hidden.view(-1, self.width, hidden.shape[-1])
            taken = hidden[self.index].float()  # a copy: a layer that adds to its output in place leaves it
            self.store[name].append(taken * scale if scale != 1.0 else taken)

    def _pre_hook(self, name):
        def hook(module, args, kwargs):
            self._take(name, args[0] if args else kwargs["hidden_states"])
        return hook

    def _hook(self, name, scale: float = 1.0):
        def hook(module, args, output):
            self._take(name, _first(output), scale)
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


def plan_batches(lengths: Sequence[int], max_batch_tokens: int, max_batch_size: int,
                 pass_cost: int = PASS_COST_TOKENS) -> list[list[int]]:
    """Indices grouped into batches of similar length, longest first, at the least cost under a budget.

    A batch of ``rows`` texts padded to its longest, ``longest``, costs ``pass_cost + rows * longest``
    token positions (:data:`PASS_COST_TOKENS`: a pass reads every weight once, whatever its size). The
    texts are sorted by length and cut into runs, each of at most ``max_batch_size`` rows and
    ``max_batch_tokens`` padded tokens (a text longer than the budget runs alone), so that the total cost
    is the least such a partition can have (dynamic programming over the cut points): padding is spent
    only where a pass more would cost more.
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    sorted_lengths = np.array([lengths[i] for i in order], dtype=np.int64)
    n = len(order)
    best = np.zeros(n + 1)  # best[j]: the least cost of the first j sorted texts
    cut = np.zeros(n + 1, dtype=np.int64)  # where the last batch of that best partition begins
    for j in range(1, n + 1):
        starts = np.arange(max(0, j - max_batch_size), j)
        rows = j - starts
        padded = rows * sorted_lengths[starts]
        cost = best[starts] + pass_cost + padded
        cost[(padded > max_batch_tokens) & (rows > 1)] = np.inf
        k = int(np.argmin(cost))
        best[j], cut[j] = cost[k], starts[k]
    batches, j = [], n
    while j > 0:
        batches.append(order[cut[j]:j])
        j = int(cut[j])
    return batches[::-1]


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


@dataclass
class PrefixContext:
    """The key/value cache of a batch of computed prefixes: what their continuations run on.

    ``mask`` is the prefixes' (left-padded) attention mask and ``length`` their real token counts, one
    row per prefix; ``cache`` is the model's ``Cache`` object for the same rows.
    """

    cache: object
    mask: object
    length: object

    def rows(self, index, pack: bool = False):
        """The cache, mask and lengths of rows ``index`` (a new cache; this one is left unchanged).

        With ``pack``, padding left between a prefix and its continuation (see
        :func:`_continuation_batches`) is moved to the left of each row, so its real tokens are
        contiguous again. Keys carry their positions already (rotary embeddings are applied before
        caching), so moving a column changes no result.
        """
        import copy

        cache = copy.copy(self.cache)
        cache.layers = [copy.copy(layer) for layer in self.cache.layers]
        cache.batch_select_indices(index)
        mask, length = self.mask[index], self.length[index]
        has_holes = bool((mask.cummax(dim=1).values > mask).any())
        if pack and has_holes:
            width = int(length.max())
            order = mask.sort(dim=1, stable=True).indices[:, -width:]  # real columns last, in order
            for layer in cache.layers:
                if layer.keys.shape[-2] != mask.shape[1]:
                    raise RuntimeError("a prefix cache with padding inside was truncated by its sliding window")
                columns = order[:, None, :, None].expand(-1, layer.keys.shape[1], -1, layer.keys.shape[-1])
                layer.keys, layer.values = layer.keys.gather(2, columns), layer.values.gather(2, columns)
                if hasattr(layer, "cumulative_length"):
                    layer.cumulative_length = width
            mask = mask.gather(1, order)
        return cache, mask, length


def _forward_batch(lm: LoadedModel, recorder: _Recorder, ids: list[list[int]], positions: list[int] | None,
                   context: PrefixContext | None = None, parents: list[int] | None = None) -> dict | PrefixContext:
    """One forward pass over ``ids``; ``positions`` are the captured token indices within each row's ids.

    Rows are left-padded. Without ``context`` they are whole texts (or first-level prefixes); with it,
    row ``r`` continues prefix ``parents[r]`` of the context (rows of unequal length leave padding
    between a prefix and its continuation: see :func:`_continuation_batches`). With
    ``positions=None`` the rows are prefixes: nothing is captured and the pass returns the context that
    their own continuations run on.
    """
    import torch

    if lm.anatomy.encoder_decoder:
        return _encoder_decoder_batch(lm, recorder, ids, positions)
    request = recorder.request
    past = None
    input_ids, mask, position_ids = pad_left(ids, lm.tokenizer.pad_token_id, lm.device)
    offsets = [input_ids.shape[1] - len(seq) for seq in ids]
    lengths = mask.sum(-1)
    if context is not None:
        past, parent_mask, parent_length = context.rows(torch.tensor(parents, device=lm.device),
                                                        pack=anatomy.narrowest_window(lm.model) is not None)
        mask = torch.cat([parent_mask, mask], dim=1)
        position_ids = parent_length[:, None] + position_ids
        lengths = parent_length + lengths
    kwargs = dict(input_ids=input_ids, attention_mask=mask, position_ids=position_ids)
    if past is not None:
        kwargs.update(cache=past, use_cache=True)
    else:
        kwargs.update(use_cache=positions is None)
    parts = lm.anatomy
    backbone = parts.backbone(lm.model)
    with torch.inference_mode():
        if positions is None:
            recorder.index = None
            out = backbone(**kwargs)
            return PrefixContext(out.cache, mask, lengths)
        rows = torch.arange(len(ids), device=lm.device)
        cols = torch.tensor([offset + (p if p >= 0 else len(seq) + p) for seq, p, offset in zip(ids, positions, offsets)],
                            device=lm.device)
        recorder.index, recorder.width = (rows, cols), input_ids.shape[1]
        out: dict[str, np.ndarray] = {}
        last = None  # the next-token logits at every row's last token
        if request.continuation or request.needs_logits:
            hidden = backbone(**kwargs).last_hidden_state  # after the final norm
            if request.continuation:
                out["continuation_logprobs"] = _continuation_logprobs(lm, hidden, input_ids, cols,
                                                                      request.continuation)
            if request.needs_logits:
                last = parts.logits(lm.model, hidden[:, -1])
        else:
            backbone(**kwargs)
        if last is not None:
            out.update(_next_token_outputs(request, last))
    out.update(recorder.collect())
    return out


def _next_token_outputs(request: Request, logits) -> dict[str, np.ndarray]:
    """The next-token outputs ``request`` asks for, from float32 next-token ``logits`` ``(n, V)``."""
    import torch

    out = {}
    logprobs = torch.log_softmax(logits, dim=-1)
    if request.top_k:
        top = logprobs.topk(request.top_k, dim=-1)
        out["top_ids"] = top.indices.cpu().numpy()
        out["top_logprobs"] = top.values.cpu().numpy()
    if request.candidates:
        out["candidate_logprobs"] = logprobs[:, list(request.candidates)].cpu().numpy()
    if request.next_token_logits:
        out["next_token_logits"] = logits.cpu().numpy()
    return out


def _encoder_decoder_batch(lm: LoadedModel, recorder: _Recorder, ids: list[list[int]], positions: list[int]) -> dict:
    """One pass of an encoder-decoder model over texts (a plain pass: no prefix is shared), left-padded.

    The recorder's hooks on the encoder's layers capture ``resid`` at each row's captured token. The next-token
    outputs are the decoder's first step: the logits of the model called with the decoder start token. A
    continuation is scored as the decoder's output: the encoder reads the text up to the captured token, closed
    as the tokenizer closes every input (:func:`ifhelpers.model.tokens.closing_ids`: T5's ``</s>``), and the
    decoder, from its start token, is scored on the tokens that follow (teacher-forced: log P(t_{p+1} | text),
    log P(t_{p+2} | text, t_{p+1}), ...). With neither, only the encoder runs. The encoder's relative position
    bias depends on the distance between two tokens only, so left padding (masked out) leaves each row's result
    as its unpadded run; the decoder's rows are right-padded, which its causal attention never reads. With the
    decoder-state variant (:data:`ifhelpers.model.anatomy.DECODER_STATE`) the hooks are on the decoder's layers
    and capture its first step, so the decoder always runs.
    """
    import torch

    request = recorder.request
    captured = [p % len(seq) for seq, p in zip(ids, positions)]
    if lm.anatomy.state == "decoder" and request.resid and any(c != len(seq) - 1 for seq, c in zip(ids, captured)):
        raise ValueError(f"{lm.name}: the decoder-state variant reads the decoder's first step, after the encoder has "
                         f"read the whole text; capture the last token (position -1) or read the encoder's state")
    targets = [[] for _ in ids]
    if request.continuation:
        close = tokens.closing_ids(lm.tokenizer)
        targets = [seq[c + 1:c + 1 + request.continuation] for seq, c in zip(ids, captured)]
        ids = [seq[:c + 1] + close for seq, c in zip(ids, captured)]
    input_ids, mask, _ = pad_left(ids, lm.tokenizer.pad_token_id, lm.device)
    width = input_ids.shape[1]
    rows = torch.arange(len(ids), device=lm.device)
    steps = max(1, max(map(len, targets)))
    if lm.anatomy.state == "decoder":  # the decoder's first step
        recorder.index, recorder.width = (rows, torch.zeros(len(ids), dtype=torch.long, device=lm.device)), steps
    else:
        recorder.index = (rows, torch.tensor([width - len(seq) + c for seq, c in zip(ids, captured)],
                                             device=lm.device))
        recorder.width = width
    out: dict[str, np.ndarray] = {}
    with torch.inference_mode():
        if not (request.needs_logits or request.continuation) and lm.anatomy.state == "encoder":
            lm.anatomy.backbone(lm.model)(input_ids=input_ids, attention_mask=mask)
            out.update(recorder.collect())
            return out
        decoder = torch.full((len(ids), steps), lm.tokenizer.pad_token_id, dtype=torch.long)
        decoder[:, 0] = lm.model.config.decoder_start_token_id
        for row, target in enumerate(targets):
            decoder[row, 1:len(target)] = torch.tensor(target[:-1], dtype=torch.long)
        logits = lm.model(input_ids=input_ids, attention_mask=mask, decoder_input_ids=decoder.to(lm.device),
                          use_cache=False).logits.float()
        if request.needs_logits:
            out.update(_next_token_outputs(request, logits[:, 0]))
        if request.continuation:
            logprobs = torch.log_softmax(logits, dim=-1).cpu()
            scored = np.full((len(ids), request.continuation), np.nan, dtype=np.float32)
            for row, target in enumerate(targets):
                scored[row, :len(target)] = logprobs[row, torch.arange(len(target)), target].numpy()
            out["continuation_logprobs"] = scored
    out.update(recorder.collect())
    return out


#: Rows of hidden states sent through the output embedding at once by :func:`_continuation_logprobs`
#: (each row's logits span the whole vocabulary).
HEAD_ROWS = 256


def _continuation_logprobs(lm: LoadedModel, hidden, input_ids, cols, k: int) -> np.ndarray:
    """log P of the ``k`` tokens after column ``cols[r]`` of every row ``r`` (NaN past the row's end), from
    the batch's final hidden states, sent through the output embedding :data:`HEAD_ROWS` rows at a time."""
    import torch

    width = input_ids.shape[1]
    steps = torch.arange(k, device=cols.device)
    at = cols[:, None] + steps[None, :]  # the position predicting each continuation token
    valid = at + 1 < width
    rows, where = torch.nonzero(valid, as_tuple=True)
    source = at[rows, where]
    targets = input_ids[rows, source + 1]
    values = torch.empty(len(rows), dtype=torch.float32, device=hidden.device)
    for start in range(0, len(rows), HEAD_ROWS):
        part = slice(start, start + HEAD_ROWS)
        logprobs = torch.log_softmax(lm.anatomy.logits(lm.model, hidden[rows[part], source[part]]), dim=-1)
        values[part] = logprobs.gather(1, targets[part, None])[:, 0]
    out = torch.full((input_ids.shape[0], k), float("nan"), dtype=torch.float32, device=hidden.device)
    out[rows, where] = values
    return out.cpu().numpy()


def _run_plan(lm: LoadedModel, recorder: _Recorder, ids: list[list[int]], positions: list[int], shared: Plan,
              max_batch_tokens: int, max_batch_size: int, emit) -> None:
    """Run every text of ``ids`` through the shared prefixes of ``shared``; ``emit(texts, out)`` per batch.

    Depth first: a batch of prefixes is computed, then everything that continues them (texts, and
    deeper prefixes with their own continuations), so only one context per level is held in memory.
    """
    window = anatomy.narrowest_window(lm.model)
    leaves: dict[int, list[int]] = {}
    for i, parent in enumerate(shared.leaf_parent):
        leaves.setdefault(parent, []).append(i)
    children: dict[int, list[int]] = {}
    for n, node in enumerate(shared.nodes):
        children.setdefault(node.parent, []).append(n)

    def segment_of_node(n):
        node = shared.nodes[n]
        return ids[node.text][node.start:node.end]

    def continue_context(context: PrefixContext | None, row_of: dict[int, int]) -> None:
        parents = list(row_of)
        texts = [i for p in parents for i in leaves.get(p, [])]
        nodes = [n for p in parents for n in children.get(p, [])]
        jobs = [("text", i, shared.leaf_parent[i], ids[i][shared.leaf_start[i]:]) for i in texts]
        jobs += [("node", n, shared.nodes[n].parent, segment_of_node(n)) for n in nodes]
        for batch in _continuation_batches(jobs, context, max_batch_tokens, max_batch_size, window):
            kind = batch[0][0]
            segments = [job[3] for job in batch]
            parent_rows = None if context is None else [row_of[job[2]] for job in batch]
            if kind == "text":
                captured = [positions[job[1]] - shared.leaf_start[job[1]] for job in batch]
                emit([job[1] for job in batch], _forward_batch(lm, recorder, segments, captured, context, parent_rows))
            else:
                computed = _forward_batch(lm, recorder, segments, None, context, parent_rows)
                continue_context(computed, {job[1]: row for row, job in enumerate(batch)})

    continue_context(None, {-1: 0})


def _continuation_batches(jobs, context: PrefixContext | None, max_batch_tokens: int, max_batch_size: int,
                          window: int | None):
    """Texts and prefixes in batches, longest first, under the padded-token budget.

    On a context a row also carries its prefix's keys and values, so rows are bounded by
    :data:`CONTEXT_TOKENS_PER_BATCH` times the budget in prefix-plus-continuation tokens too. Rows of
    unequal length put padding *between* a prefix and its continuation; the causal mask and explicit
    position ids make that exact, but a sliding-window layer measures its window in columns. So on a
    model with a sliding ``window`` the prefixes are first packed to the right
    (:meth:`PrefixContext.rows`), and a batch mixes lengths only where the longest prefix and the
    longest continuation together fit in the window; otherwise it holds one length only.
    """
    for kind in ("node", "text"):
        group = [job for job in jobs if job[0] == kind]
        if not group:
            continue
        lengths = [len(job[3]) for job in group]
        if context is None:
            rows = max_batch_size if kind == "text" else max_batch_size * CONTINUATION_ROWS_FACTOR
            for batch in plan_batches(lengths, max_batch_tokens, rows):
                yield [group[i] for i in batch]
            continue
        prefix_width = int(context.mask.shape[1])
        fits = window is None or int(context.length.max()) + max(lengths) <= window
        buckets = [list(range(len(group)))] if fits else \
            [[i for i, n in enumerate(lengths) if n == width] for width in sorted(set(lengths), reverse=True)]
        for bucket in buckets:
            longest = max(lengths[i] for i in bucket)
            rows = max(1, min(max_batch_size * CONTINUATION_ROWS_FACTOR,
                              CONTEXT_TOKENS_PER_BATCH * max_batch_tokens // (prefix_width + longest)))
            for batch in plan_batches([lengths[i] for i in bucket], max_batch_tokens, rows):
                yield [group[bucket[i]] for i in batch]


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
            f"wrong attention/MLP modules for this architecture; see ifhelpers.model.anatomy.TABLE."
        )


# --------------------------------------------------------------------------------------------------
# The model's context, and parts found by the general rule

#: The texts cut to fit a model's context in this process, by model name (their content keys): the
#: chapter's headlines count them (:func:`ifhelpers.results.save_headlines`).
CUT_TO_CONTEXT: dict[str, set[str]] = {}
#: A tokenizer adds at most this many tokens that cover no byte of the text (BOS, EOS, a leading "▁"), so a
#: text of ``b`` UTF-8 bytes has at most ``b + SPECIAL_TOKENS`` tokens and a shorter one needs no tokenizing
#: to know that it fits.
SPECIAL_TOKENS = 4


def fit_context(lm: LoadedModel, ids: list[int], room: int = 0) -> list[int]:
    """The tokens of a text as ``lm`` reads them: its last ``context - room`` tokens
    (:func:`ifhelpers.model.anatomy.cut_to_context`), ``room`` left for tokens generated after them."""
    context = lm.anatomy.context_length(lm.model.config)
    return anatomy.cut_to_context(ids, None if context is None else context - room)


def count_cut(lm: LoadedModel, texts: Sequence[str], room: int = 0) -> int:
    """How many of ``texts`` are longer than ``lm``'s context (less ``room``); each is added to
    :data:`CUT_TO_CONTEXT` and a warning says how many there are."""
    import warnings

    context = lm.anatomy.context_length(lm.model.config)
    if context is None:
        return 0
    limit = context - room
    long = [t for t in dict.fromkeys(texts) if len(t.encode("utf-8")) + SPECIAL_TOKENS > limit
            and len(encode(lm.tokenizer, t)) > limit]
    if long:
        CUT_TO_CONTEXT.setdefault(lm.name, set()).update(content_key(t) for t in long)
        warnings.warn(f"{len(long)} texts are longer than {lm.name}'s context of {context} tokens"
                      f"{f' less {room} to generate' if room else ''}: each is read from its last {limit} tokens.",
                      stacklevel=3)
    return len(long)


#: The texts of the probe batch that proves parts found by the general rule.
PROBE_TEXTS = ("The capital of France is Paris.", "Everyone knows that Rome is located in")


def prove_anatomy(lm: LoadedModel, atol: float = 1e-3) -> None:
    """Check the parts of ``lm`` on a probe batch: eq. 1 holds (:func:`check_decomposition`) and h^L through
    the final norm and output embedding gives the model's own logits; then a warning says which modules the
    general rule chose. :class:`ifhelpers.model.anatomy.AnatomyError` with one line if not."""
    import warnings

    import torch

    parts = lm.anatomy
    lm.anatomy_proved = True  # the probe pass runs through :func:`run`
    try:
        out = run(lm, list(PROBE_TEXTS), Request(resid=True, updates=True), cache=False, share_prefixes=False)
        check_decomposition(out, atol)
        for text, h in zip(PROBE_TEXTS, out["resid"][:, -1]):
            with torch.inference_mode():
                own = lm.model(input_ids=torch.tensor([encode(lm.tokenizer, text)], device=lm.device)).logits[0, -1]
                h = torch.as_tensor(h, device=lm.device, dtype=own.dtype)
                read = parts.logits(lm.model, parts.apply_final_norm(lm.model, h))
            if not torch.allclose(read, own.float(), rtol=atol, atol=atol * max(1.0, float(own.abs().max()))):
                raise RuntimeError("h^L through the final norm and the output embedding is not the model's logits")
    except RuntimeError as err:
        lm.anatomy_proved = False
        raise anatomy.AnatomyError(f"{lm.name}: the general rule chose {parts.describe()}, and on a probe batch "
                                   f"{err}; add its family to TABLE in ifhelpers/model/anatomy.py.") from None
    warnings.warn(f"{lm.name}: {lm.model.config.model_type!r} is not in the anatomy table; the general rule chose "
                  f"{parts.describe()}, and eq. 1 and the logits hold on a probe batch.", stacklevel=3)


# --------------------------------------------------------------------------------------------------
# The entry point


def default_batch_tokens(lm: LoadedModel) -> int:
    """The padded-token budget of a batch: ``$IFHELPERS_BATCH_TOKENS``, else 4096 on a CPU and 32768 on a GPU."""
    return int(os.environ.get("IFHELPERS_BATCH_TOKENS", 4096 if lm.device.type == "cpu" else 32768))


def run(lm: LoadedModel, texts: Sequence[str], request: Request, positions: Sequence[int] | None = None, *,
        cache: bool | str | Path = True, max_batch_tokens: int | None = None, max_batch_size: int = 64,
        share_prefixes: bool | None = None, progress: bool | None = None) -> dict[str, np.ndarray]:
    """Run ``lm`` on ``texts`` and return the requested outputs, row-aligned with ``texts``.

    ``positions`` gives, per text, the token index whose states are captured (negative counts from
    the end; default -1, the last token). ``cache`` is True (the user cache), False (no cache: every
    call runs the model), or a folder. Already cached texts are not run again; each computed batch is
    saved as soon as it finishes. ``share_prefixes`` (default: on, unless ``IFHELPERS_SHARE_PREFIXES=0``)
    computes shared token prefixes once (see the module docstring); the results are the same.
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
        max_batch_tokens = default_batch_tokens(lm)

    if lm.anatomy.by_rule and not lm.anatomy_proved:
        prove_anatomy(lm)
    if lm.anatomy.encoder_decoder and request.updates:
        raise anatomy.AnatomyError(f"{lm.name}: {anatomy.UPDATES_OF_ENCODER_DECODER}.")
    keys = [content_key(text, pos) for text, pos in zip(texts, positions)]
    count_cut(lm, texts)
    store: ActivationStore | None = None
    results: dict[str, dict] = {}  # the rows not read from ``store`` at the end, by key
    if cache:
        root = None if cache is True else cache
        store = store_for(lm.fingerprint, request.key(), root)
        results = _rows(*_served_by_fuller(lm, request, root, [k for k in dict.fromkeys(keys) if k not in store]))
    first: dict[str, int] = {}
    for i, key in enumerate(keys):
        first.setdefault(key, i)

    with missing_keys(store, [k for k in keys if k not in results]) as todo_keys:
        if todo_keys:
            todo = {k: first[k] for k in todo_keys}
            ids, captured = [], []
            for k in todo_keys:
                text, p = texts[todo[k]], positions[todo[k]]
                seq = encode(lm.tokenizer, text)
                if not -len(seq) <= p < len(seq):
                    raise IndexError(f"position {p} is outside the {len(seq)} tokens of text {text!r}")
                kept = fit_context(lm, seq)
                if p % len(seq) < len(seq) - len(kept):
                    raise ValueError(f"token {p} of {text[:60]!r}... is not among the last {len(kept)} tokens that "
                                     f"fit {lm.name}'s context: shorten the text or capture a later token.")
                ids.append(kept)
                captured.append(p % len(seq) - (len(seq) - len(kept)))
            if share_prefixes is None:
                share_prefixes = os.environ.get("IFHELPERS_SHARE_PREFIXES", "1") != "0"
            share_prefixes = share_prefixes and not lm.anatomy.encoder_decoder  # bidirectional: nothing to share
            shared = plan(ids, captured, **PREFIX_RULE) if share_prefixes else Plan.unshared(len(ids))
            recorder = _Recorder(lm, request)
            checked = []
            try:
                from tqdm.auto import tqdm

                total = sum(len(seq) - start for seq, start in zip(ids, shared.leaf_start))
                show = progress if progress is not None else total > 4 * max_batch_tokens
                bar = tqdm(total=total, unit="tok", desc=f"{lm.name}", disable=not show, leave=False)

                def emit(texts: list[int], out: dict) -> None:
                    if not checked and request.resid and request.updates:
                        check_decomposition(out)
                        checked.append(True)
                    out = request.stored(out)
                    batch_keys = [todo_keys[i] for i in texts]
                    if store is not None:
                        store.write(batch_keys, out)
                    else:
                        for row, key in enumerate(batch_keys):
                            results[key] = {name: values[row] for name, values in out.items()}
                    bar.update(sum(len(ids[i]) - shared.leaf_start[i] for i in texts))

                _run_plan(lm, recorder, ids, captured, shared, max_batch_tokens, max_batch_size, emit)
                bar.close()
            finally:
                recorder.remove()
    if store is not None and not results:
        return request.returned(store.read(keys))
    stored = [k for k in dict.fromkeys(keys) if k not in results]
    if stored:
        results.update(_rows(stored, store.read(stored)))
    return request.returned(_stacked(results, keys))


def _rows(keys: list[str], out: dict[str, np.ndarray]) -> dict[str, dict]:
    return {key: {name: values[row] for name, values in out.items()} for row, key in enumerate(keys)}


def _stacked(rows: dict[str, dict], keys: list[str]) -> dict[str, np.ndarray]:
    return {name: np.stack([rows[k][name] for k in keys]) for name in rows[keys[0]]}


def _served_by_fuller(lm: LoadedModel, request: Request, root, keys: list[str]) -> tuple[list[str], dict]:
    """The keys of ``keys`` that the cached passes of fuller requests hold (:meth:`Request.fuller`, followed
    in turn) and their rows, stacked as ``request`` stores them: they are not computed again, nor stored
    twice."""
    fuller = request.fuller()
    if fuller is None or not keys:
        return [], {}
    store = existing_store(lm.fingerprint, fuller.key(), root)
    hits = [k for k in keys if k in store] if store is not None else []
    out = store.read(hits) if hits else {}
    held = set(hits)
    deeper, deeper_out = _served_by_fuller(lm, fuller, root, [k for k in keys if k not in held])
    if deeper:
        out = {name: np.concatenate([out[name], values]) for name, values in deeper_out.items()} if hits else deeper_out
    found = hits + deeper
    return found, (request.taken_from(out) if found else {})
