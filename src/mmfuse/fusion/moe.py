"""Mixture of modality experts with an input-dependent gate."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from mmfuse.fusion import register_fusion
from mmfuse.fusion.weighted_sum import masked_softmax


@register_fusion("moe")
class MoEFusion(nn.Module):
    """One expert per modality, mixed by a per-sample gate computed from all inputs.

    ``e_m = Linear(GELU(Linear(x_m)))`` maps each modality to ``dim``. The gate is a linear map
    of the joined inputs (missing ones zeroed) and the ``M`` presence flags to ``M`` logits,
    softmax-normalised over the modalities present in the sample, and the output is
    ``sum_m g_m(x) e_m``. Unlike ``weighted_sum`` the weights depend on the sample, so a modality
    can be trusted more for some inputs than for others; a sample with nothing present gives
    zeros. The last gate values ``(B, M)`` are kept in ``last_gate`` for explanation (0 for
    missing modalities). The gate is dense (every present expert is used), without the noisy
    top-k sparsity of Shazeer et al. See Jacobs et al., "Adaptive Mixtures of Local Experts",
    Neural Computation 1991; Shazeer et al., "Outrageously Large Neural Networks: The
    Sparsely-Gated Mixture-of-Experts Layer", ICLR 2017.

    Inputs: embeddings {modality: (B, D_m)}, mask {modality: (B,) bool}.

    Args:
        input_dims: Embedding dimension of each modality.
        dim: Output dimension of every expert and of the fusion.
        hidden: Hidden width of each expert; ``dim`` when None.
    """

    level = "feature"
    description = "mixture of modality experts weighted by a per-sample gate over present ones"
    supports_missing = True

    def __init__(
        self, input_dims: Mapping[str, int], dim: int = 128, hidden: int | None = None
    ) -> None:
        super().__init__()
        self.modalities = sorted(input_dims)  # deterministic order
        width = dim if hidden is None else hidden
        self.experts = nn.ModuleDict(
            {
                m: nn.Sequential(nn.Linear(input_dims[m], width), nn.GELU(), nn.Linear(width, dim))
                for m in self.modalities
            }
        )
        joined_dim = sum(input_dims[m] for m in self.modalities) + len(self.modalities)
        self.gate = nn.Linear(joined_dim, len(self.modalities))
        self.output_dim = dim
        self.last_gate: Tensor | None = None

    def forward(self, embeddings: Mapping[str, Tensor], mask: Mapping[str, Tensor]) -> Tensor:
        present = torch.stack([mask[m] for m in self.modalities], 1)  # (B, M)
        inputs = [torch.where(mask[m].unsqueeze(1), embeddings[m], 0.0) for m in self.modalities]
        experts = torch.stack(
            [self.experts[m](x) for m, x in zip(self.modalities, inputs)], 1
        )  # (B, M, dim)
        joined = torch.cat([*inputs, present.to(experts.dtype)], dim=1)  # (B, sum(D_m) + M)
        gate = masked_softmax(self.gate(joined), present)  # (B, M)
        self.last_gate = gate.detach()
        return (gate.unsqueeze(-1) * experts).sum(1)  # (B, dim)
