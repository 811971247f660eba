"""Modality tokens and a learned CLS token through a transformer encoder."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from mmfuse.fusion import register_fusion


@register_fusion("transformer")
class TransformerFusion(nn.Module):
    """A transformer encoder over ``[CLS, token_1, ..., token_M]``; the output is the CLS state.

    Each modality is projected to ``dim`` and gets a learned modality-type embedding; a learned
    CLS token is prepended, and the sequence goes through ``num_layers`` pre-LayerNorm
    ``nn.TransformerEncoderLayer`` blocks (``softmax(QK^T/sqrt(d_k))V`` self-attention and a
    feed-forward of width ``2 * dim``). Missing modalities are marked in
    ``src_key_padding_mask`` so no token attends to them; the CLS token is never masked, so
    every attention row has a key and a sample with no modality present still gives a finite
    output (the learned CLS state alone). The output is the final CLS state after a LayerNorm.
    The nested-tensor fast path is disabled so the masked and unmasked computations agree in
    train and eval mode. See Vaswani et al., "Attention Is All You Need", NeurIPS 2017, and the
    CLS-token pooling of Devlin et al., "BERT", NAACL 2019.

    Inputs: embeddings {modality: (B, D_m)}, mask {modality: (B,) bool}.

    Args:
        input_dims: Embedding dimension of each modality.
        dim: Token and output dimension.
        num_layers: Transformer encoder layers.
        num_heads: Attention heads; must divide ``dim``.
        dropout: Dropout inside the encoder layers.
    """

    level = "feature"
    description = "modality tokens and a CLS token through transformer layers, CLS output"
    supports_missing = True

    def __init__(
        self,
        input_dims: Mapping[str, int],
        dim: int = 128,
        num_layers: int = 2,
        num_heads: int = 4,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim ({dim}) must be divisible by num_heads ({num_heads})")
        self.modalities = sorted(input_dims)  # deterministic order
        self.proj = nn.ModuleDict({m: nn.Linear(input_dims[m], dim) for m in self.modalities})
        self.type_embedding = nn.Parameter(torch.randn(len(self.modalities), dim) * 0.02)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        layer = nn.TransformerEncoderLayer(
            dim,
            num_heads,
            dim_feedforward=2 * dim,
            dropout=dropout,
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.output_dim = dim

    def forward(self, embeddings: Mapping[str, Tensor], mask: Mapping[str, Tensor]) -> Tensor:
        present = torch.stack([mask[m] for m in self.modalities], 1)  # (B, M)
        inputs = {m: torch.where(mask[m].unsqueeze(1), embeddings[m], 0.0) for m in self.modalities}
        tokens = torch.stack([self.proj[m](inputs[m]) for m in self.modalities], 1)
        tokens = tokens + self.type_embedding  # (B, M, dim)
        cls = self.cls_token.expand(tokens.shape[0], -1, -1)  # (B, 1, dim)
        sequence = torch.cat([cls, tokens], dim=1)  # (B, 1 + M, dim)
        padding = torch.cat([torch.zeros_like(present[:, :1]), ~present], dim=1)  # True = ignore
        h = self.encoder(sequence, src_key_padding_mask=padding)  # (B, 1 + M, dim)
        return self.norm(h[:, 0])  # (B, dim)
