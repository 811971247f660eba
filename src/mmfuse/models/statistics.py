"""Statistics an encoder takes from its training inputs before training (the standardisation
of frozen features), stored in its weights so that predict, serve and export apply them."""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor, nn


def fit_input_statistics(model: nn.Module, inputs: Mapping[str, Tensor], mask: Mapping[str, Tensor]) -> None:
    """Lets every encoder of ``model`` (and of its sub-models) that has ``fit_statistics`` see
    its modality's present training inputs."""
    for module in model.modules():
        encoders = getattr(module, "encoders", None)
        if not isinstance(encoders, nn.ModuleDict):
            continue
        for modality, encoder in encoders.items():
            fit = getattr(encoder, "fit_statistics", None)
            if fit is not None and modality in inputs:
                fit(inputs[modality][mask[modality]])
