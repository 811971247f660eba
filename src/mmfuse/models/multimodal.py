"""The multimodal model: ``encode`` -> ``fuse`` -> ``head``, at any fusion level.

- early / feature level: every modality is encoded (raw flattening for early, a deep encoder
  for feature level), one fusion operator joins the embeddings, one head predicts.
- late (decision) level: every modality has its own head and predicts on its own; the
  decision-level operator combines the per-modality predictions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import Tensor, nn

from mmfuse.data.row_buffer import RowBuffer
from mmfuse.models.guard import ModalityGuard


@dataclass
class ModelOutput:
    """What a forward pass returns: predictions (a classifier's or regressor's) or embeddings
    (a dual encoder's).

    Attributes:
        logits: (B, C) combined logits (classification) or (B, 1) values (regression); None
            for a model that outputs embeddings.
        per_modality: Late level only: modality -> (B, C) that modality's own prediction.
        mask: Modality -> (B,) presence mask used for this batch.
        embeddings: Modality (tower) -> (B, D) unit-length embeddings in a shared space, or None.
        logit_scale: () learned factor turning the embeddings' cosine similarities into logits
            (1 / temperature), or None.
        auxiliary: Feature level, in training only: modality -> (B, C) the prediction of that
            modality's auxiliary head (trained beside the fused one, so that each encoder learns
            to predict on its own and the model does well when the others are missing), or None.
    """

    logits: Tensor | None
    per_modality: dict[str, Tensor] | None
    mask: Mapping[str, Tensor]
    embeddings: dict[str, Tensor] | None = None
    logit_scale: Tensor | None = None
    auxiliary: dict[str, Tensor] | None = None

    def require_logits(self) -> Tensor:
        """``logits``; ValueError for an output that carries embeddings instead."""
        if self.logits is None:
            raise ValueError(
                f"this output has no logits, only embeddings of {sorted(self.embeddings or {})}; "
                "a retrieval model ranks items, it does not predict classes or values"
            )
        return self.logits

    def cpu(self) -> ModelOutput:
        """The same output detached on the CPU, with floating-point tensors as float32."""

        def move(x: Tensor) -> Tensor:
            return (x.float() if x.is_floating_point() else x).detach().cpu()

        def moved(value: Any) -> Any:
            if value is None:
                return None
            if isinstance(value, Tensor):
                return move(value)
            return {k: move(v) for k, v in value.items()}

        return ModelOutput(*(moved(getattr(self, f.name)) for f in fields(self)))

    @staticmethod
    def cat(outputs: Iterable[ModelOutput], rows: int | None = None) -> ModelOutput:
        """One output for consecutive batches, rows in order; ``logit_scale`` is the first
        batch's (one learned value, the same for every batch of a model in eval mode).

        Given the batches as they come (an iterator) and their total ``rows``, each batch is
        written into tensors allocated once and dropped (``data.row_buffer``: a list of batch
        outputs held to the end grows the process far beyond their size)."""
        if rows is None:
            outputs = list(outputs)
            rows = sum(o.rows for o in outputs)
        buffer, first = RowBuffer(rows), None
        for out in outputs:
            first = first or out
            for name in _JOINED:
                value = getattr(out, name)
                parts = {None: value} if isinstance(value, Tensor) else value or {}
                for key, part in parts.items():
                    buffer.add((name, key), part)
        if first is None:
            return ModelOutput(torch.zeros(0), None, {})

        def joined(name: str) -> Any:
            value = getattr(first, name)
            if value is None:
                return None
            if isinstance(value, Tensor):
                return buffer.get((name, None))
            return {k: buffer.get((name, k)) for k in value}

        return ModelOutput(*(joined(n) for n in _JOINED), first.logit_scale)

    @property
    def rows(self) -> int:
        """Records in this output."""
        for value in (self.logits, *self.mask.values(), *(self.embeddings or {}).values()):
            if value is not None:
                return len(value)
        return 0


_JOINED = ("logits", "per_modality", "mask", "embeddings")
"""The fields with a row per record, joined by ``ModelOutput.cat``."""


class MultimodalModel(nn.Module):
    """Encoders + fusion + head(s); built by ``build_model``.

    Args:
        encoders: Modality -> encoder (each with ``output_dim``).
        fusion: Fusion operator for the model's level.
        head: Head on the fused vector (early / feature level), else None.
        modality_heads: Late level: modality -> head on that modality's embedding.
        level: "early", "feature" or "late".
        auxiliary: Feature level: modality -> an auxiliary head on its embedding, used in
            training only (``ModelOutput.auxiliary``); None: none.
        guard: Turns off, in eval mode, a modality whose embedding lies far outside the training
            ones (``ModalityGuard``); None: every present modality is used.
    """

    def __init__(
        self,
        encoders: Mapping[str, nn.Module],
        fusion: nn.Module,
        head: nn.Module | None,
        modality_heads: Mapping[str, nn.Module] | None,
        level: str,
        guard: ModalityGuard | None = None,
        auxiliary: Mapping[str, nn.Module] | None = None,
    ) -> None:
        super().__init__()
        self.modalities = sorted(encoders)
        self.encoders = nn.ModuleDict(dict(encoders))
        self.fusion = fusion
        self.head = head
        self.modality_heads = nn.ModuleDict(dict(modality_heads or {}))
        self.level = level
        self.guard = guard
        self.auxiliary_heads = nn.ModuleDict(dict(auxiliary or {}))
        # temperature scaling of the combined logits (ModelConfig.temperature; 1 for regression)
        self.register_buffer("temperature", torch.ones(()), persistent=False)

    def encode(self, inputs: Mapping[str, Tensor], mask: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """Modality -> (B, D_m) embeddings; rows where the modality is missing are zero.

        In eval mode an encoder runs only on the rows where its modality is present (a batch
        without a video runs the video network on one row only); the result is the same, since every
        encoder treats rows independently in eval mode. Training, tracing and export run every
        row (batch statistics; a graph without data-dependent branches)."""
        out = {}
        for m in self.modalities:
            present = mask[m]
            if self.training or _tracing() or bool(present.all()):
                z = self.encoders[m](inputs[m])
                out[m] = z * present.unsqueeze(-1).to(z.dtype)
                continue
            rows = present.nonzero().squeeze(1)
            # with no row present, one row still runs: it gives the width (and dtype) of zeros
            part = self.encoders[m](inputs[m][rows] if len(rows) else inputs[m][:1])
            z = torch.zeros(present.shape[0], *part.shape[1:], dtype=part.dtype, device=part.device)
            if len(rows):
                z[rows] = part
            out[m] = z
        return out

    def fuse(self, embeddings: Mapping[str, Tensor], mask: Mapping[str, Tensor]) -> Tensor:
        """(B, D) fused vector (early / feature level)."""
        return self.fusion(embeddings, mask)

    def forward(self, inputs: Mapping[str, Tensor], mask: Mapping[str, Tensor]) -> ModelOutput:
        if self.guard is not None and not self.training:
            mask = self.guard.check_inputs(inputs, mask)
        embeddings = self.encode(inputs, mask)
        if self.guard is not None and not self.training:
            mask = self.guard(embeddings, mask)
            embeddings = {m: z * mask[m].unsqueeze(-1).to(z.dtype) for m, z in embeddings.items()}
        if self.level == "late":
            per = {m: self.modality_heads[m](embeddings[m]) for m in self.modalities}
            return ModelOutput(self.fusion(per, mask) / self.temperature, per, mask)
        assert self.head is not None
        logits = self.head(self.fuse(embeddings, mask)) / self.temperature
        if self.training and len(self.auxiliary_heads):
            auxiliary = {m: self.auxiliary_heads[m](embeddings[m]) for m in self.auxiliary_heads}
            return ModelOutput(logits, None, mask, auxiliary=auxiliary)
        return ModelOutput(logits, None, mask)

    def on_embeddings(self) -> MultimodalModel:
        """The same model (shared modules and temperature) with identity encoders, in eval mode: it
        takes encoder outputs. Its guard keeps only the embedding test (``without_inputs``): the
        feature vectors its input test reads are not among its inputs."""
        identity = {m: nn.Identity() for m in self.modalities}
        guard = None if self.guard is None else self.guard.without_inputs()
        model = MultimodalModel(identity, self.fusion, self.head, dict(self.modality_heads), self.level, guard)
        model.register_buffer("temperature", self.temperature, persistent=False)  # the same calibration
        return model.eval()

    def num_parameters(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)


def _tracing() -> bool:
    """Whether the model is being traced or exported (no data-dependent Python branches)."""
    return bool(torch.jit.is_tracing() or torch.compiler.is_exporting())


def all_present(inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """A mask that marks every modality present for every sample."""
    return {m: torch.ones(x.shape[0], dtype=torch.bool, device=x.device) for m, x in inputs.items()}
