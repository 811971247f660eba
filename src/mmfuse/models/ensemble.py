"""A weighted ensemble of fitted models over the same inputs (what greedy ensemble selection
keeps): class probabilities or regression values averaged with fixed weights."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from mmfuse.models.multimodal import ModelOutput


class EnsembleModel(nn.Module):
    """Members' predictions averaged with ``weights``.

    The output's mask is what the members used (``_kept``): a modality their guards set aside
    is reported so, as for one model.

    Classification: the logits are the log of the weighted mean of the members' (temperature
    scaled) class probabilities, divided by the ensemble's own temperature, so a softmax of them
    gives back the mixture (at temperature 1). Regression: the weighted mean of the values.

    Args:
        members: Models taking the same ``(inputs, mask)``; each returns logits or values.
        weights: One non-negative weight per member (normalised here).
        task: "classification" or "regression".
    """

    level = "ensemble"

    def __init__(self, members: Sequence[nn.Module], weights: Sequence[float], task: str) -> None:
        super().__init__()
        if len(members) != len(weights) or not members:
            raise ValueError(f"an ensemble needs one weight per member, got {len(members)} members "
                             f"and {len(weights)} weights")
        w = torch.tensor([float(v) for v in weights])
        if not bool((w >= 0).all()) or not float(w.sum()) > 0:
            raise ValueError(f"ensemble weights must be non-negative and not all 0, got {list(weights)}")
        self.members = nn.ModuleList(members)
        self.register_buffer("weights", w / w.sum(), persistent=False)
        self.task = task
        self.modalities = sorted({m for member in members for m in member.modalities})
        self.register_buffer("temperature", torch.ones(()), persistent=False)

    def forward(self, inputs: Mapping[str, Tensor], mask: Mapping[str, Tensor]) -> ModelOutput:
        results = [member(inputs, mask) for member in self.members]
        outs = [r.require_logits() for r in results]
        if self.task == "classification":
            probs = sum(w * o.float().softmax(-1) for w, o in zip(self.weights, outs))
            logits = torch.log(probs.clamp_min(1e-12)) / self.temperature
        else:
            logits = sum(w * o.float() for w, o in zip(self.weights, outs))
        return ModelOutput(logits, None, self._kept(mask, [r.mask for r in results]))

    def _kept(
        self, mask: Mapping[str, Tensor], used: Sequence[Mapping[str, Tensor]]
    ) -> dict[str, Tensor]:
        """The presence mask the ensemble used: a present modality counts as used where members
        holding at least half of the weight used it (each member's guard may set it aside)."""
        kept = {}
        for m, present in mask.items():
            votes = [(w, u[m]) for w, u in zip(self.weights, used) if m in u]
            if not votes:
                kept[m] = present
                continue
            total = sum(w for w, _ in votes)
            share = sum(w * u.to(w.dtype) for w, u in votes)  # (B,)
            kept[m] = present & (share >= 0.5 * total)
        return kept

    def num_parameters(self) -> int:
        """Number of trainable parameters of all members."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)
