"""The logit lens: reading residual-stream vectors and layer updates in vocabulary space.

Paper §4 projects a vector ``v`` (a hidden state h^l of the last subject token, or an MHSA / MLP
update a^l, f^l of the last token) onto the vocabulary as ``E v`` with ``E`` the output embedding,
after the model's final norm as in Geva et al. (2023)'s logit lens. ``E`` is the model's own
``lm_head``: untied from the input embedding for LLaMA, tied to it for Gemma and SmolLM2. The final norm,
the output embedding and the family's logit scaling or soft-capping are those of the model's anatomy
(:mod:`ifhelpers.model.anatomy`), so the lens on h^L gives the model's own logits.
"""

from __future__ import annotations

import numpy as np

from ifhelpers.model.models import LoadedModel


def normed(lm: LoadedModel, vectors, apply_final_norm: bool = True):
    """Vectors of shape ``(..., d)`` as a torch tensor on the model's device, after its final norm (without it:
    through the projection to the output embedding's width alone, where the model has one)."""
    import torch

    v = torch.as_tensor(np.asarray(vectors), device=lm.device, dtype=next(lm.model.parameters()).dtype)
    with torch.inference_mode():
        return lm.anatomy.apply_final_norm(lm.model, v) if apply_final_norm else lm.anatomy.project(lm.model, v)


def unembed(lm: LoadedModel, vectors, apply_final_norm: bool = True):
    """Logits ``E · norm(v)`` (a float32 torch tensor, scaled or soft-capped as the model's are) for vectors of
    shape ``(..., d)``."""
    import torch

    with torch.inference_mode():
        return lm.anatomy.logits(lm.model, normed(lm, vectors, apply_final_norm))


def top_tokens(lm: LoadedModel, vectors, k: int = 1, apply_final_norm: bool = True,
               chunk_size: int = 512) -> np.ndarray:
    """Ids of the ``k`` highest-scoring vocabulary tokens for each vector, shape ``(..., k)``.

    Works in chunks so that ``n x L`` projections onto a 262k-token vocabulary fit in memory.
    """
    vectors = np.asarray(vectors)
    flat = vectors.reshape(-1, vectors.shape[-1])
    out = np.empty((flat.shape[0], k), dtype=np.int64)
    for start in range(0, flat.shape[0], chunk_size):
        logits = unembed(lm, flat[start:start + chunk_size], apply_final_norm)
        out[start:start + chunk_size] = logits.topk(k, dim=-1).indices.cpu().numpy()
    return out.reshape(*vectors.shape[:-1], k)


def decode_tokens(lm: LoadedModel, ids) -> np.ndarray:
    """Token strings (as the tokenizer decodes each single id) with the same shape as ``ids``."""
    ids = np.asarray(ids)
    vocab = {int(i): lm.tokenizer.decode([int(i)]) for i in np.unique(ids)}
    return np.vectorize(vocab.__getitem__, otypes=[object])(ids)
