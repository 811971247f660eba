"""Feature-wise linear modulation (FiLM): modalities condition each other."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from mmfuse.fusion import register_fusion


@register_fusion("film")
class FiLMFusion(nn.Module):
    """Each modality's features are scaled and shifted by functions of the other modalities.

    Every modality is projected, ``h_m = W_m x_m + b_m``. Its context ``c_m`` is the mean of the
    projections of the *other* present modalities, and
    ``out_m = (1 + gamma_m(c_m)) * h_m + beta_m(c_m)`` with linear ``gamma_m``, ``beta_m``
    initialised at zero, so the module starts as the identity modulation; a modality with no
    other modality present is left as ``out_m = h_m``. The output is
    ``mean_{m present} ReLU(out_m)`` (zeros when nothing is present). With ``condition`` set,
    only that modality conditions the others (``c_m = h_condition`` for every other ``m``),
    as in the classic one-conditions-another FiLM, and it is passed through unmodulated. See
    Perez et al., "FiLM: Visual Reasoning with a General Conditioning Layer", AAAI 2018.

    Inputs: embeddings {modality: (B, D_m)}, mask {modality: (B,) bool}.

    Args:
        input_dims: Embedding dimension of each modality.
        dim: Projection and output dimension.
        condition: Name of the single conditioning modality, or None for all-to-all.
    """

    level = "feature"
    description = "FiLM: each modality scaled and shifted by the other modalities, then mean"
    supports_missing = True

    def __init__(
        self, input_dims: Mapping[str, int], dim: int = 128, condition: str | None = None
    ) -> None:
        super().__init__()
        self.modalities = sorted(input_dims)  # deterministic order
        if condition is not None and condition not in input_dims:
            raise ValueError(
                f"unknown condition modality {condition!r}; choose one of: "
                f"{', '.join(self.modalities)}"
            )
        self.condition = condition
        self.proj = nn.ModuleDict({m: nn.Linear(input_dims[m], dim) for m in self.modalities})
        # one generator (gamma and beta together) per modulated modality
        self.film = nn.ModuleDict(
            {m: nn.Linear(dim, 2 * dim) for m in self.modalities if m != condition}
        )
        for layer in self.film.values():
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
        self.output_dim = dim

    def _context(self, h: Tensor, present: Tensor) -> tuple[Tensor, Tensor]:
        """The context of every modality ``(B, M, dim)`` and whether it has one ``(B, M)``."""
        if self.condition is not None:
            c = self.modalities.index(self.condition)
            ctx = h[:, c : c + 1].expand_as(h)
            return ctx, present[:, c : c + 1].expand_as(present)
        m = len(self.modalities)
        others = present.unsqueeze(1) & ~torch.eye(m, dtype=torch.bool, device=h.device)
        weights = others.to(h.dtype)  # (B, M, M): row i selects the present j != i
        count = weights.sum(-1, keepdim=True)  # (B, M, 1)
        return (weights @ h) / count.clamp(min=1.0), count.squeeze(-1) > 0

    def forward(self, embeddings: Mapping[str, Tensor], mask: Mapping[str, Tensor]) -> Tensor:
        present = torch.stack([mask[m] for m in self.modalities], 1)  # (B, M)
        inputs = {m: torch.where(mask[m].unsqueeze(1), embeddings[m], 0.0) for m in self.modalities}
        h = torch.stack([self.proj[m](inputs[m]) for m in self.modalities], 1)  # (B, M, dim)
        h = torch.where(present.unsqueeze(-1), h, 0.0)
        ctx, has_context = self._context(h, present)
        outs = []
        for i, m in enumerate(self.modalities):
            if m == self.condition:
                outs.append(h[:, i])
                continue
            gamma, beta = self.film[m](ctx[:, i]).chunk(2, dim=-1)  # (B, dim) each
            modulated = (1 + gamma) * h[:, i] + beta
            outs.append(torch.where(has_context[:, i : i + 1], modulated, h[:, i]))
        out = torch.relu(torch.stack(outs, 1))  # (B, M, dim)
        weights = present.to(out.dtype).unsqueeze(-1)  # (B, M, 1)
        return (out * weights).sum(1) / weights.sum(1).clamp(min=1.0)  # (B, dim)
