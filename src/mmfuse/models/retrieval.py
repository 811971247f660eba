"""Two towers mapping two modalities into one L2-normalised space (a dual encoder).

Each tower is the modality's encoder (``encode``, as in ``MultimodalModel``) followed by a
projection head into the shared space. ``forward`` returns both sides' embeddings and the
learnable logit scale (``ModelOutput.embeddings`` and ``logit_scale``) for ``RetrievalTask``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmfuse.encoders import create_encoder
from mmfuse.errors import MmfuseError
from mmfuse.models.multimodal import ModelOutput
from mmfuse.types import InputSpec

MAX_LOGIT_SCALE = 100.0


@dataclass(frozen=True)
class RetrievalConfig:
    """Architecture of a dual encoder (stored in config.json).

    Attributes:
        pair: The two modalities (columns), side A then side B.
        encoders: Modality -> encoder name.
        dim: Width of the encoders' outputs.
        embed_dim: Width of the shared space.
        temperature: Initial softmax temperature (learned).
        encoder_hparams: Modality -> extra encoder keyword arguments.
    """

    pair: tuple[str, str]
    encoders: dict[str, str]
    dim: int = 256
    embed_dim: int = 256
    temperature: float = 0.07
    encoder_hparams: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RetrievalConfig:
        return cls(**{**dict(d), "pair": tuple(d["pair"])})


class RetrievalModel(nn.Module):
    """Dual encoder.

    Args:
        encoders: Modality -> encoder for both sides.
        pair: (side A, side B) modality names.
        embed_dim: Shared-space width.
        temperature: Initial temperature; the logit scale 1/T is learned, capped at 100.
    """

    def __init__(
        self, encoders: Mapping[str, nn.Module], pair: tuple[str, str], embed_dim: int, temperature: float
    ) -> None:
        super().__init__()
        self.pair = pair
        self.modalities = list(pair)
        self.encoders = nn.ModuleDict(dict(encoders))
        self.projections = nn.ModuleDict(
            {m: nn.Linear(int(encoders[m].output_dim), embed_dim) for m in pair}
        )
        self.log_scale = nn.Parameter(torch.tensor(math.log(1.0 / temperature)))
        self.output_dim = embed_dim

    def embed(self, modality: str, x: Tensor) -> Tensor:
        """(B, embed_dim) unit-length embeddings of one side's inputs."""
        return F.normalize(self.projections[modality](self.encoders[modality](x)), dim=-1)

    def logit_scale(self) -> Tensor:
        """() the learned factor 1 / temperature, capped at ``MAX_LOGIT_SCALE``."""
        return self.log_scale.exp().clamp(max=MAX_LOGIT_SCALE)

    def forward(self, inputs: Mapping[str, Tensor], mask: Mapping[str, Tensor]) -> ModelOutput:
        """Both sides' (B, embed_dim) embeddings and the logit scale; no logits."""
        embeddings = {m: self.embed(m, inputs[m]) for m in self.pair}
        return ModelOutput(None, None, mask, embeddings, self.logit_scale())

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)


def build_retrieval_model(config: RetrievalConfig, specs: Mapping[str, InputSpec]) -> RetrievalModel:
    """Creates both towers, wiring each encoder's ``output_dim`` into its projection."""
    encoders = {}
    for m in config.pair:
        hparams = {"dim": config.dim, **config.encoder_hparams.get(m, {})}
        if config.encoders[m] == "raw":
            hparams.pop("dim")
        try:
            encoders[m] = create_encoder(specs[m].kind, config.encoders[m], specs[m], **hparams)
        except (KeyError, ValueError) as err:
            raise MmfuseError(f"cannot build the {m!r} tower: {err.args[0]}") from None
    return RetrievalModel(encoders, config.pair, config.embed_dim, config.temperature)
