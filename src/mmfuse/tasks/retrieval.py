"""Retrieval: symmetric InfoNCE with a learnable temperature; several positives per row.

The retrieval model's output packs, per row, the L2-normalised embedding of side A, that of
side B and the logit scale (see ``RetrievalModel``). Targets are (B, 2) item ids: rows that
share the A item (one image, five captions) or the B item are positives of each other, never
negatives (Radford et al. 2021, "CLIP"; multi-positive form as in Khosla et al. 2020, "SupCon").
"""

from __future__ import annotations

import torch
from torch import Tensor

from mmfuse.models.multimodal import ModelOutput


def split_output(logits: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """(B, 2 * D + 1) -> (side A (B, D), side B (B, D), logit scale ())."""
    dim = (logits.shape[1] - 1) // 2
    return logits[:, :dim], logits[:, dim : 2 * dim], logits[0, -1]


def positives(items: Tensor) -> Tensor:
    """(B, 2) item ids -> (B, B) bool: rows i, j share their A item or their B item."""
    a, b = items[:, 0], items[:, 1]
    return (a[:, None] == a[None, :]) | (b[:, None] == b[None, :])


def info_nce(logits: Tensor, items: Tensor) -> Tensor:
    """Symmetric multi-positive InfoNCE of one batch."""
    za, zb, scale = split_output(logits.float())
    sim = scale * za @ zb.T  # (B, B)
    pos = positives(items)
    loss_ab = torch.logsumexp(sim, 1) - torch.logsumexp(sim.masked_fill(~pos, float("-inf")), 1)
    loss_ba = torch.logsumexp(sim.T, 1) - torch.logsumexp(sim.T.masked_fill(~pos.T, float("-inf")), 1)
    return (loss_ab.mean() + loss_ba.mean()) / 2


class RetrievalTask:
    """Contrastive loss for two towers; ``predict`` returns the packed embeddings."""

    name = "retrieval"

    def loss(self, output: ModelOutput, target: Tensor) -> dict[str, Tensor]:
        """{"loss": symmetric InfoNCE}."""
        return {"loss": info_nce(output.logits, target)}

    def eval_loss(self, logits: Tensor, target: Tensor) -> Tensor:
        """InfoNCE over validation batches of 256 (as the trainer predicts them)."""
        losses = [info_nce(chunk, t) for chunk, t in zip(logits.split(256), target.split(256))]
        return torch.stack(losses).mean()

    def predict(self, logits: Tensor) -> Tensor:
        return logits.float()
