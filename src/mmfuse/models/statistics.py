"""Statistics an encoder takes from its training inputs before training (the standardisation
of frozen features), stored in its weights so that predict, serve and export apply them."""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor, nn

from mmfuse.data.tensors import Rows, take


def fit_input_statistics(model: nn.Module, inputs: Mapping[str, Rows], mask: Mapping[str, Tensor]) -> None:
    """Lets every encoder of ``model`` (and of its sub-models) that standardises its input
    (``standardize``) see its modality's present training inputs (copied out of the shard files
    for records on disk; only those encoders' modalities are read)."""
    for module in model.modules():
        encoders = getattr(module, "encoders", None)
        if not isinstance(encoders, nn.ModuleDict):
            continue
        for modality, encoder in encoders.items():
            fit = getattr(encoder, "fit_statistics", None)
            if fit is not None and getattr(encoder, "standardize", False) and modality in inputs:
                fit(take(inputs[modality], mask[modality].nonzero().squeeze(1)))
