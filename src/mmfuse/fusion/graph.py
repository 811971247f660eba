"""Message passing over a fully connected graph whose nodes are the modalities."""

from __future__ import annotations

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmfuse._registry import unregistered
from mmfuse.fusion import register_fusion
from mmfuse.fusion.weighted_sum import masked_softmax


@unregistered("one message-passing round inside GraphFusion, not an operator of its own")
class MessagePassingRound(nn.Module):
    """One round of attention-weighted message passing between modality nodes.

    ``s_ij = v^T GELU(A h_i + C h_j + b)`` (an MLP on ``[h_i; h_j]``, its first layer split
    into the two halves), ``a_ij = softmax_j s_ij`` over present ``j != i``,
    ``m_i = sum_j a_ij W h_j`` and ``h_i <- LayerNorm(h_i + GELU(U [h_i; m_i]))``. A node with no
    present neighbour receives ``m_i = 0``.

    Args:
        dim: Node dimension.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.edge_src = nn.Linear(dim, dim)  # A h_i + b
        self.edge_dst = nn.Linear(dim, dim, bias=False)  # C h_j
        self.edge_out = nn.Linear(dim, 1, bias=False)  # a bias would cancel in the softmax
        self.message = nn.Linear(dim, dim)
        self.update = nn.Linear(2 * dim, dim)
        self.norm = nn.LayerNorm(dim)

    def forward(self, h: Tensor, present: Tensor) -> tuple[Tensor, Tensor]:
        """Returns the updated nodes ``(B, M, dim)`` and the edge weights ``(B, M, M)``."""
        m = h.shape[1]
        hidden = self.edge_src(h).unsqueeze(2) + self.edge_dst(h).unsqueeze(1)  # (B, M, M, dim)
        scores = self.edge_out(F.gelu(hidden)).squeeze(-1)  # (B, M, M): row i, neighbour j
        neighbours = present.unsqueeze(1) & ~torch.eye(m, dtype=torch.bool, device=h.device)
        weights = masked_softmax(scores, neighbours)  # (B, M, M); all-zero row: no neighbour
        messages = weights @ self.message(h)  # (B, M, dim)
        h = self.norm(h + F.gelu(self.update(torch.cat([h, messages], dim=-1))))
        return h, weights


@register_fusion("graph")
class GraphFusion(nn.Module):
    """Modalities as nodes of a fully connected graph, refined by rounds of message passing.

    Each node starts as ``h_m = W_m x_m + b_m + t_m`` (a projection plus a learned modality-type
    embedding). Each of ``num_rounds`` rounds (own weights per round) computes edge weights
    ``a_ij = softmax_j MLP([h_i; h_j])`` over the present neighbours ``j != i``, messages
    ``m_i = sum_j a_ij W h_j`` and updates ``h_i <- LayerNorm(h_i + GELU(U [h_i; m_i]))``; a
    node with no present neighbour gets ``m_i = 0``. Missing nodes send no message and are
    left out of the readout, the mean of the present nodes (zeros when nothing is present).
    The last round's edge weights ``(B, M, M)`` are kept in ``last_edges`` for explanation.
    See Gilmer et al., "Neural Message Passing for Quantum Chemistry", ICML 2017, and
    Velickovic et al., "Graph Attention Networks", ICLR 2018 (attention-weighted messages).

    Inputs: embeddings {modality: (B, D_m)}, mask {modality: (B,) bool}.

    Args:
        input_dims: Embedding dimension of each modality.
        dim: Node and output dimension.
        num_rounds: Rounds of message passing.
    """

    level = "feature"
    description = "message passing over a fully connected modality graph, mean of the nodes"
    supports_missing = True

    def __init__(self, input_dims: Mapping[str, int], dim: int = 128, num_rounds: int = 2) -> None:
        super().__init__()
        if num_rounds < 1:
            raise ValueError(f"num_rounds must be >= 1, got {num_rounds}")
        self.modalities = sorted(input_dims)  # deterministic order
        self.proj = nn.ModuleDict({m: nn.Linear(input_dims[m], dim) for m in self.modalities})
        self.type_embedding = nn.Parameter(torch.randn(len(self.modalities), dim) * 0.02)
        self.rounds = nn.ModuleList(MessagePassingRound(dim) for _ in range(num_rounds))
        self.output_dim = dim
        self.last_edges: Tensor | None = None

    def forward(self, embeddings: Mapping[str, Tensor], mask: Mapping[str, Tensor]) -> Tensor:
        present = torch.stack([mask[m] for m in self.modalities], 1)  # (B, M)
        inputs = {m: torch.where(mask[m].unsqueeze(1), embeddings[m], 0.0) for m in self.modalities}
        h = torch.stack([self.proj[m](inputs[m]) for m in self.modalities], 1)
        h = h + self.type_embedding  # (B, M, dim)
        edges = torch.zeros(h.shape[0], h.shape[1], h.shape[1], device=h.device)
        for round_ in self.rounds:
            h, edges = round_(h, present)
        self.last_edges = (edges * present.unsqueeze(-1)).detach()
        weights = present.to(h.dtype).unsqueeze(-1)  # (B, M, 1)
        return (h * weights).sum(1) / weights.sum(1).clamp(min=1.0)  # (B, dim)
