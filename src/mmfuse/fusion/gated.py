"""Gated Multimodal Unit: per-dimension gates choose how much of each modality to pass."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from mmfuse.fusion import register_fusion
from mmfuse.fusion.weighted_sum import masked_softmax


@register_fusion("gated")
class GatedFusion(nn.Module):
    """Gated Multimodal Unit (GMU) generalised to ``M`` modalities with a softmax gate.

    ``h_m = tanh(W_m x_m)`` and gate logits ``z = W_z [x_1; ...; x_M]`` reshaped to
    ``(B, M, dim)``, one logit per modality and output unit; the gates are a softmax over the
    modalities present in the sample (per output unit), and the output is
    ``sum_m softmax(z)_m * h_m``. Missing inputs are zeroed before both the ``h_m`` and the gate,
    and a missing modality gets gate 0, so it never influences the output; with no modality
    present the output is zeros. For ``M = 2`` the softmax of two logits is
    ``sigmoid(z_1 - z_2)``, so this is exactly the paper's bimodal unit
    ``h = z * h_1 + (1 - z) * h_2`` with ``z = sigmoid(W_z [x_1; x_2])`` (the difference of the
    two logit rows is one linear map). The last gates ``(B, M, dim)`` are kept in ``last_gate``
    (0 for missing modalities). See Arevalo et al., "Gated Multimodal Units for Information
    Fusion", ICLR workshop 2017.

    Inputs: embeddings {modality: (B, D_m)}, mask {modality: (B,) bool}.

    Args:
        input_dims: Embedding dimension of each modality.
        dim: Output dimension.
    """

    level = "feature"
    description = "gated multimodal unit: tanh modality features mixed by softmax gates"
    supports_missing = True

    def __init__(self, input_dims: Mapping[str, int], dim: int = 128) -> None:
        super().__init__()
        self.modalities = sorted(input_dims)  # deterministic order
        self.proj = nn.ModuleDict({m: nn.Linear(input_dims[m], dim) for m in self.modalities})
        joined_dim = sum(input_dims[m] for m in self.modalities)
        self.gate = nn.Linear(joined_dim, len(self.modalities) * dim)
        self.output_dim = dim
        self.last_gate: Tensor | None = None

    def forward(self, embeddings: Mapping[str, Tensor], mask: Mapping[str, Tensor]) -> Tensor:
        present = torch.stack([mask[m] for m in self.modalities], 1)  # (B, M)
        inputs = [torch.where(mask[m].unsqueeze(1), embeddings[m], 0.0) for m in self.modalities]
        h = torch.stack(
            [torch.tanh(self.proj[m](x)) for m, x in zip(self.modalities, inputs)], 1
        )  # (B, M, dim)
        logits = self.gate(torch.cat(inputs, dim=1)).view_as(h)  # (B, M, dim)
        keep = present.unsqueeze(-1).transpose(1, 2)  # (B, 1, M)
        gate = masked_softmax(logits.transpose(1, 2), keep).transpose(1, 2)  # (B, M, dim)
        self.last_gate = gate.detach()
        return (gate * h).sum(1)  # (B, dim)
