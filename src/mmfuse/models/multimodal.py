"""The multimodal model: ``encode`` -> ``fuse`` -> ``head``, at any fusion level.

- early / feature level: every modality is encoded (raw flattening for early, a deep encoder
  for feature level), one fusion operator joins the embeddings, one head predicts.
- late (decision) level: every modality has its own head and predicts on its own; the
  decision-level operator combines the per-modality predictions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass
class ModelOutput:
    """What a forward pass returns.

    Attributes:
        logits: (B, C) combined logits (classification) or (B, 1) values (regression).
        per_modality: Late level only: modality -> (B, C) that modality's own prediction.
        mask: Modality -> (B,) presence mask used for this batch.
    """

    logits: Tensor
    per_modality: dict[str, Tensor] | None
    mask: Mapping[str, Tensor]


class MultimodalModel(nn.Module):
    """Encoders + fusion + head(s); built by ``build_model``.

    Args:
        encoders: Modality -> encoder (each with ``output_dim``).
        fusion: Fusion operator for the model's level.
        head: Head on the fused vector (early / feature level), else None.
        modality_heads: Late level: modality -> head on that modality's embedding.
        level: "early", "feature" or "late".
    """

    def __init__(
        self,
        encoders: Mapping[str, nn.Module],
        fusion: nn.Module,
        head: nn.Module | None,
        modality_heads: Mapping[str, nn.Module] | None,
        level: str,
    ) -> None:
        super().__init__()
        self.modalities = sorted(encoders)
        self.encoders = nn.ModuleDict(dict(encoders))
        self.fusion = fusion
        self.head = head
        self.modality_heads = nn.ModuleDict(dict(modality_heads or {}))
        self.level = level

    def encode(self, inputs: Mapping[str, Tensor], mask: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Modality -> (B, D_m) embeddings; rows where the modality is missing are zero."""
        out = {}
        for m in self.modalities:
            z = self.encoders[m](inputs[m])
            out[m] = z * mask[m].unsqueeze(-1).to(z.dtype)
        return out

    def fuse(self, embeddings: Mapping[str, Tensor], mask: Mapping[str, Tensor]) -> Tensor:
        """(B, D) fused vector (early / feature level)."""
        return self.fusion(embeddings, mask)

    def forward(self, inputs: Mapping[str, Tensor], mask: Mapping[str, Tensor]) -> ModelOutput:
        embeddings = self.encode(inputs, mask)
        if self.level == "late":
            per = {m: self.modality_heads[m](embeddings[m]) for m in self.modalities}
            return ModelOutput(self.fusion(per, mask), per, mask)
        assert self.head is not None
        return ModelOutput(self.head(self.fuse(embeddings, mask)), None, mask)

    def num_parameters(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)


def all_present(inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """A mask that marks every modality present for every sample."""
    return {m: torch.ones(x.shape[0], dtype=torch.bool, device=x.device) for m, x in inputs.items()}
