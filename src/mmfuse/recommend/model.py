"""The two towers of the recommender, scoring user u and item i by the cosine of their vectors.

Item side: ``normalize(content(i) + id(i))``. ``content`` is a ``MultimodalModel`` over the
item table's columns (the same encoders, fusion and feature cache as ``fit``), its head giving
``dim`` values; ``id`` is a learned embedding of items seen in training (zero for items that
were not: cold items are ranked from content alone, and training hides ids at random so that
content learns to carry the taste).

User side: ``normalize(prior + H·mean(history) + S·mean(friends' history means) + attributes(u))``
where ``history`` are the vectors of the items the user interacted with (LightGCN's first
propagation step, on fused item vectors), ``friends`` come from the social table and
``attributes`` is a ``MultimodalModel`` over the user table's columns. Each term is present or
absent per user (a new user with friends but no history is ranked by the friends); ``prior`` is
the same for everybody (what to show a user about whom nothing is known).

The presence of each term is a mask, so modality Shapley values apply: the players are
``behaviour`` (the history term and the item id), ``social``, ``attributes`` and each content
modality of the items.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mmfuse.data.preprocess import Preprocessor
from mmfuse.data.schema import parse_pairs
from mmfuse.errors import MmfuseError
from mmfuse.models.builder import ModelConfig, build_model, resolve_encoders, resolve_fusion
from mmfuse.models.multimodal import MultimodalModel
from mmfuse.types import InputSpec

BEHAVIOUR, SOCIAL, ATTRIBUTES = "behaviour", "social", "attributes"


@dataclass(frozen=True)
class RecommenderConfig:
    """Architecture of a recommender (stored in config.json).

    Attributes:
        num_items: Items with a learned id embedding (those seen in training).
        dim: Width of the shared space.
        content: The item content tower's ``ModelConfig`` (None: ids only).
        attributes: The user attribute tower's ``ModelConfig`` (None: no user table).
        social: Whether a social table feeds the user side.
        temperature: Initial softmax temperature (learned).
    """

    num_items: int
    dim: int
    content: dict[str, Any] | None = None
    attributes: dict[str, Any] | None = None
    social: bool = False
    temperature: float = 0.07

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RecommenderConfig:
        return cls(**dict(d))


class RecommenderModel(nn.Module):
    """The user and item towers (see the module docstring)."""

    def __init__(self, config: RecommenderConfig, content: MultimodalModel | None,
                 attributes: MultimodalModel | None) -> None:
        super().__init__()
        d = config.dim
        self.content = content
        self.attributes = attributes
        self.item_id = nn.Embedding(max(config.num_items, 1), d)
        nn.init.normal_(self.item_id.weight, std=0.1)
        self.history = nn.Linear(d, d, bias=False)
        nn.init.eye_(self.history.weight)
        self.social = nn.Linear(d, d, bias=False) if config.social else None
        if self.social is not None:
            nn.init.eye_(self.social.weight)
            self.social.weight.data.mul_(0.5)
        self.prior = nn.Parameter(torch.zeros(d))
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / config.temperature)))
        self.dim = d

    @property
    def content_modalities(self) -> list[str]:
        return list(self.content.modalities) if self.content is not None else []

    def items(self, inputs: Mapping[str, Tensor] | None, mask: Mapping[str, Tensor] | None,
              ids: Tensor, id_present: Tensor) -> Tensor:
        """(N, dim) unit item vectors from content and (where ``id_present``) the id."""
        return self.items_from(self.item_content(inputs, mask), ids, id_present)

    def item_content(self, inputs: Mapping[str, Tensor] | None,
                     mask: Mapping[str, Tensor] | None) -> Tensor | None:
        """(N, dim) content part of the item vectors (None without a content tower)."""
        if self.content is None or inputs is None or mask is None:
            return None
        return self.content(inputs, mask).require_logits()

    def items_from(self, content: Tensor | None, ids: Tensor, id_present: Tensor) -> Tensor:
        """(N, dim) unit item vectors from a content part already computed (or None) and
        (where ``id_present``) the id."""
        v = self.item_id(ids.clamp_min(0)) * id_present.unsqueeze(-1).to(self.prior.dtype)
        return F.normalize(v if content is None else v + content, dim=-1)

    def users(self, history: Tensor, has_history: Tensor, friends: Tensor | None,
              has_friends: Tensor | None, attributes: Tensor | None) -> Tensor:
        """(B, dim) unit user vectors from the mean history vector, the friends' mean history
        vector and the attribute vector (each zeroed where absent)."""
        u = self.prior + self.history(history) * has_history.unsqueeze(-1).to(history.dtype)
        if self.social is not None and friends is not None and has_friends is not None:
            u = u + self.social(friends) * has_friends.unsqueeze(-1).to(friends.dtype)
        if attributes is not None:
            u = u + attributes
        return F.normalize(u, dim=-1)

    def user_attributes(self, inputs: Mapping[str, Tensor], mask: Mapping[str, Tensor]) -> Tensor | None:
        if self.attributes is None:
            return None
        return self.attributes(inputs, mask).require_logits()

    def scale(self) -> Tensor:
        return self.logit_scale.exp().clamp(max=100.0)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)


def tower_config(params: Any, pre: Preprocessor, dim: int) -> ModelConfig:
    """The ``ModelConfig`` of a content or attribute tower: the estimator's encoders and fusion
    over the table's modalities, the head giving ``dim`` values.

    Raises:
        MmfuseError: A decision-level fusion (a tower outputs a vector, not a prediction).
    """
    level, fusion = resolve_fusion(params.level, params.fusion)
    if level == "late":
        raise MmfuseError(f"--fusion {fusion} is a decision-level operator; a recommender fuses item "
                          "content at the feature or early level (e.g. --fusion attention)")
    networks = {m: p.backbone for m, p in pre.pretrained.items()}
    encoders = resolve_encoders(pre.modalities, level, parse_pairs(params.encoders, "--encoder"), networks)
    return ModelConfig(level=level, fusion=fusion, encoders=encoders, task="regression",
                       num_outputs=dim, dim=params.dim)


def build_recommender(config: RecommenderConfig, content_specs: Mapping[str, InputSpec] | None,
                      attribute_specs: Mapping[str, InputSpec] | None) -> RecommenderModel:
    """The model ``config`` describes, its towers wired to the prepared inputs' specs."""
    content = (build_model(ModelConfig.from_dict(config.content), content_specs)
               if config.content is not None and content_specs else None)
    attributes = (build_model(ModelConfig.from_dict(config.attributes), attribute_specs)
                  if config.attributes is not None and attribute_specs else None)
    return RecommenderModel(config, content, attributes)
