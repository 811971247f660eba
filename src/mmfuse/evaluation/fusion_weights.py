"""The weight a fusion operator itself gives each modality (attention received, a gate, graph
edges, or learned / fitted weights): ``fusion_weights``. Operators that keep no weights give
None."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from mmfuse.data.preprocess import Encoded
from mmfuse.evaluation._forward import embeddings_of, on_embeddings
from mmfuse.models.multimodal import MultimodalModel


@torch.no_grad()
def fusion_weights(
    model: MultimodalModel, enc: Encoded, batch_size: int = 256
) -> dict[str, float] | None:
    """The mean weight each modality gets from the fusion operator itself, or None.

    attention / cross_attention: attention received as a key (mean over heads and queries);
    moe: the gate; gated: the gate averaged over units; graph: the last round's incoming edge
    weights; each averaged over the records with any modality present, so the weights sum to 1
    (a record without a modality gives it 0). weighted_sum: softmax of its logits; weighted
    (late): its fitted weights. Other operators keep no weights: None.
    """
    from mmfuse.fusion.weighted import WeightedFusion
    from mmfuse.fusion.weighted_sum import WeightedSumFusion

    fusion, mods = getattr(model, "fusion", None), list(model.modalities)  # an ensemble has none
    if isinstance(fusion, WeightedSumFusion):
        return dict(zip(fusion.modalities, fusion.logits.detach().softmax(0).tolist()))
    if isinstance(fusion, WeightedFusion):
        w = fusion.weights.detach().clamp_min(0).double()
        return dict(zip(fusion.modalities, (w / w.sum()).tolist()))
    names = ("last_attention", "last_gate", "last_edges")
    if not any(hasattr(fusion, a) for a in names):
        return None
    fast, data = on_embeddings(model), embeddings_of(model, enc, batch_size)
    per_record = []
    for index in torch.arange(len(data)).split(batch_size):
        inputs = {m: x[index] for m, x in data.inputs.items()}
        fast(inputs, {m: v[index] for m, v in data.mask.items()})
        per_record.append(_received(fusion))
    weights = torch.cat(per_record) if per_record else torch.zeros(0, len(mods))  # (N, M)
    used = weights.sum(1) > 0
    if not used.any():
        return None
    order = getattr(fusion, "modalities", mods)
    return dict(zip(order, weights[used].mean(0).tolist()))


def _received(fusion: Any) -> Tensor:
    """(B, M) weight each modality receives in the batch just run, rows summing to 1 or 0."""
    if getattr(fusion, "last_gate", None) is not None:
        gate = fusion.last_gate.double()
        return gate.mean(-1) if gate.dim() == 3 else gate  # gated: (B, M, dim) -> (B, M)
    matrix = getattr(fusion, "last_attention", None)
    if matrix is None:
        matrix = fusion.last_edges
    matrix = matrix.double()
    if matrix.dim() == 4:  # (B, H, M, M) -> heads averaged
        matrix = matrix.mean(1)
    rows = (matrix.sum(-1) > 0).double()  # (B, M) queries that attended to something
    return (matrix * rows.unsqueeze(-1)).sum(1) / rows.sum(1, keepdim=True).clamp_min(1.0)
