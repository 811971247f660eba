"""Retrieval: symmetric InfoNCE with a learnable temperature; several positives per row.

The retrieval model's output carries, per row, the L2-normalised embedding of side A and that
of side B (``ModelOutput.embeddings``) and the learned logit scale (``logit_scale``; see
``RetrievalModel``). Targets are (B, 2) item ids: rows that share the A item (one image, five
captions) or the B item are positives of each other, never negatives (Radford et al. 2021,
"CLIP"; multi-positive form as in Khosla et al. 2020, "SupCon").
"""

from __future__ import annotations

import torch
from torch import Tensor

from mmfuse.models.multimodal import ModelOutput

EVAL_BATCH = 256
"""Rows per validation InfoNCE: in-batch negatives, as many as the trainer predicts at once."""


def positives(items: Tensor) -> Tensor:
    """(B, 2) item ids -> (B, B) bool: rows i, j share their A item or their B item."""
    a, b = items[:, 0], items[:, 1]
    return (a[:, None] == a[None, :]) | (b[:, None] == b[None, :])


def info_nce(za: Tensor, zb: Tensor, scale: Tensor, items: Tensor) -> Tensor:
    """Symmetric multi-positive InfoNCE of one batch.

    Args:
        za: (B, D) unit embeddings of side A.
        zb: (B, D) unit embeddings of side B, row i paired with row i of ``za``.
        scale: () logit scale (1 / temperature).
        items: (B, 2) item ids of each row's A and B side.
    """
    sim = scale.float() * za.float() @ zb.float().T  # (B, B)
    pos = positives(items)
    loss_ab = torch.logsumexp(sim, 1) - torch.logsumexp(sim.masked_fill(~pos, float("-inf")), 1)
    loss_ba = torch.logsumexp(sim.T, 1) - torch.logsumexp(sim.T.masked_fill(~pos.T, float("-inf")), 1)
    return (loss_ab.mean() + loss_ba.mean()) / 2


class RetrievalTask:
    """Contrastive loss for two towers; ``predict`` returns each pair's two embeddings.

    Args:
        pair: The towers' modalities, side A then side B (keys of ``ModelOutput.embeddings``).
    """

    name = "retrieval"

    def __init__(self, pair: tuple[str, str]) -> None:
        self.pair = pair

    def sides(self, output: ModelOutput) -> tuple[Tensor, Tensor, Tensor]:
        """(side A (B, D), side B (B, D), logit scale ()) of a retrieval model's output."""
        if output.embeddings is None or output.logit_scale is None:
            raise ValueError("a retrieval task needs an output with embeddings and a logit scale")
        missing = [m for m in self.pair if m not in output.embeddings]
        if missing:
            raise ValueError(
                f"the output has no embeddings of {', '.join(missing)}; it has: "
                f"{', '.join(sorted(output.embeddings))}"
            )
        a, b = self.pair
        return output.embeddings[a], output.embeddings[b], output.logit_scale

    def loss(self, output: ModelOutput, target: Tensor) -> dict[str, Tensor]:
        """{"loss": symmetric InfoNCE}."""
        return {"loss": info_nce(*self.sides(output), target)}

    def eval_loss(self, output: ModelOutput, target: Tensor) -> Tensor:
        """InfoNCE averaged over consecutive batches of ``EVAL_BATCH`` rows (for validation)."""
        za, zb, scale = self.sides(output)
        chunks = zip(za.split(EVAL_BATCH), zb.split(EVAL_BATCH), target.split(EVAL_BATCH))
        return torch.stack([info_nce(a, b, scale, t) for a, b, t in chunks]).mean()

    def predict(self, output: ModelOutput) -> Tensor:
        """(B, 2, D) float32: row i's side A and side B embeddings."""
        za, zb, _ = self.sides(output)
        return torch.stack([za, zb], 1).float()
