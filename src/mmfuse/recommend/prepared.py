"""A recommendation problem as arrays: the graph, the catalogue's prepared content, the users'
prepared attributes, and which items have a learned id."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from mmfuse.data.tensors import TensorData
from mmfuse.recommend.graph import Neighbours


@dataclass
class Prepared:
    """Everything the towers read, indexed by user and item index.

    Attributes:
        history: User -> the items of their training interactions.
        friends: User -> their friends (None without a social table).
        content: The catalogue's prepared content, one record per item (None: ids only).
        attributes: The users' prepared attributes, one record per user (None: no user table).
        known: (num_items,) whether the item has a learned id (it was seen in training).
        popularity: (num_items,) training interactions per item.
    """

    history: Neighbours
    friends: Neighbours | None
    content: TensorData | None
    attributes: TensorData | None
    known: np.ndarray
    popularity: np.ndarray

    @property
    def num_users(self) -> int:
        return self.history.num_rows

    @property
    def num_items(self) -> int:
        return len(self.known)

    def content_of(self, items: np.ndarray) -> tuple[dict[str, Tensor] | None, dict[str, Tensor] | None]:
        if self.content is None:
            return None, None
        part = self.content.subset(items)
        return part.inputs, part.mask

    def attributes_of(self, users: np.ndarray) -> tuple[dict[str, Tensor], dict[str, Tensor]] | None:
        if self.attributes is None:
            return None
        part = self.attributes.subset(users)
        return part.inputs, part.mask

    def known_of(self, items: np.ndarray) -> Tensor:
        return torch.from_numpy(self.known[items])
