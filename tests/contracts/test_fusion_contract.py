"""Contract every registered fusion operator must meet, whatever its level."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from mmfuse.fusion import LEVELS, create_fusion, fusion_level, list_fusions

B = 4
FEATURE_DIMS = {"audio": 5, "image": 7, "text": 3}  # different dims on purpose
LATE_DIMS = {"audio": 4, "image": 4, "text": 4}  # late fusion: equal output sizes


def input_dims(name: str) -> dict[str, int]:
    return LATE_DIMS if fusion_level(name) == "late" else FEATURE_DIMS


def build(name: str, dims: dict[str, int] | None = None, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    module = create_fusion(name, dims if dims is not None else input_dims(name))
    return module.eval()


def make_inputs(name: str, seed: int = 0) -> dict[str, Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {m: torch.randn(B, d, generator=g) for m, d in input_dims(name).items()}


def full_mask(name: str, missing: tuple[str, ...] = ()) -> dict[str, Tensor]:
    """Every modality present in every sample except those in ``missing`` (absent everywhere)."""
    return {m: torch.full((B,), m not in missing) for m in input_dims(name)}


def mixed_mask(name: str) -> dict[str, Tensor]:
    """Per sample a different subset: all present, one missing, only one present, none."""
    rows = torch.tensor([[1, 1, 1], [1, 0, 1], [0, 1, 0], [0, 0, 0]], dtype=torch.bool)
    return {m: rows[:, i] for i, m in enumerate(sorted(input_dims(name)))}


def missing_subsets(name: str) -> list[tuple[str, ...]]:
    mods = sorted(input_dims(name))
    one_missing = [(m,) for m in mods]
    all_but_one = [tuple(o for o in mods if o != m) for m in mods]
    return one_missing + all_but_one + [tuple(mods)]


NAMES = list_fusions()


@pytest.mark.parametrize("name", NAMES)
def test_declares_level_description_and_dims(name: str) -> None:
    module = build(name)
    cls = type(module)
    assert cls.level in LEVELS
    assert isinstance(cls.description, str) and cls.description and "\n" not in cls.description
    assert cls.supports_missing is True
    assert cls.__doc__ and len(cls.__doc__) > 40
    assert module.modalities == sorted(input_dims(name))
    assert isinstance(module.output_dim, int) and module.output_dim > 0


@pytest.mark.parametrize("name", NAMES)
def test_output_shape_and_finite(name: str) -> None:
    module = build(name)
    for mask in (full_mask(name), mixed_mask(name)):
        out = module(make_inputs(name), mask)
        assert out.shape == (B, module.output_dim)
        assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", NAMES)
def test_gradients_reach_present_inputs_and_parameters(name: str) -> None:
    module = build(name).train()
    x = {m: t.requires_grad_() for m, t in make_inputs(name).items()}
    out = module(x, full_mask(name))
    (out * torch.randn(out.shape, generator=torch.Generator().manual_seed(1))).sum().backward()
    for m, t in x.items():
        assert t.grad is not None and t.grad.abs().sum() > 0, f"no gradient reaches {m!r}"
    for pname, p in module.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), f"no gradient for {pname}"


@pytest.mark.parametrize("name", NAMES)
def test_gradients_finite_with_missing_and_zero_for_missing_inputs(name: str) -> None:
    module = build(name).train()
    x = {m: t.requires_grad_() for m, t in make_inputs(name).items()}
    mask = mixed_mask(name)
    out = module(x, mask)
    (out * torch.randn(out.shape, generator=torch.Generator().manual_seed(1))).sum().backward()
    for m, t in x.items():
        assert t.grad is not None and torch.isfinite(t.grad).all()
        assert (t.grad[~mask[m]] == 0).all(), f"missing {m!r} still receives gradient"
    for pname, p in module.named_parameters():
        assert p.grad is None or torch.isfinite(p.grad).all(), f"non-finite gradient for {pname}"


@pytest.mark.parametrize("name", NAMES)
def test_invariant_to_dict_order(name: str) -> None:
    module = build(name)
    x, mask = make_inputs(name), mixed_mask(name)
    reversed_x = {m: x[m] for m in reversed(list(x))}
    reversed_mask = {m: mask[m] for m in reversed(list(mask))}
    torch.testing.assert_close(module(x, mask), module(reversed_x, reversed_mask), rtol=0, atol=0)
    dims = input_dims(name)
    rebuilt = build(name, {m: dims[m] for m in reversed(list(dims))})
    torch.testing.assert_close(rebuilt(x, mask), module(x, mask), rtol=0, atol=0)


@pytest.mark.parametrize("name", NAMES)
def test_missing_modalities_do_not_influence_output(name: str) -> None:
    module = build(name)
    x = make_inputs(name)
    for missing in missing_subsets(name):
        mask = full_mask(name, missing)
        out = module(x, mask)
        assert torch.isfinite(out).all(), f"non-finite output with {missing} missing"
        perturbed = {m: (t * 100 + 7 if m in missing else t) for m, t in x.items()}
        torch.testing.assert_close(module(perturbed, mask), out, rtol=0, atol=0)


@pytest.mark.parametrize("name", NAMES)
def test_nan_in_missing_modality_does_not_leak(name: str) -> None:
    module = build(name)
    x, mask = make_inputs(name), mixed_mask(name)
    poisoned = {m: torch.where(mask[m].unsqueeze(1), t, float("nan")) for m, t in x.items()}
    out = module(poisoned, mask)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, module(x, mask), rtol=0, atol=0)


@pytest.mark.parametrize("name", NAMES)
def test_all_missing_is_finite(name: str) -> None:
    module = build(name)
    out = module(make_inputs(name), full_mask(name, tuple(input_dims(name))))
    assert out.shape == (B, module.output_dim)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_safetensors_round_trip(name: str, tmp_path: Path) -> None:
    module = build(name, seed=0)
    path = tmp_path / "fusion.safetensors"
    save_file(module.state_dict(), str(path))
    restored = build(name, seed=123)
    restored.load_state_dict(load_file(str(path)))
    x, mask = make_inputs(name, seed=5), mixed_mask(name)
    torch.testing.assert_close(restored.eval()(x, mask), module(x, mask), rtol=0, atol=0)


def test_unknown_fusion_lists_valid_ones() -> None:
    with pytest.raises(KeyError, match="attention"):
        create_fusion("no-such-fusion", FEATURE_DIMS)
