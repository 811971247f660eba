"""Tests for mmfuse.training.checkpoint: round trips, one consistent checkpoint, atomicity."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from mmfuse.training import checkpoint
from mmfuse.training.checkpoint import load_checkpoint, load_weights, save_checkpoint, save_weights


def _model_and_optimizer(seed: int) -> tuple[nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    return model, torch.optim.AdamW(
        model.parameters(), lr=0.01, betas=(0.8, 0.95), weight_decay=0.1
    )


def _step(model: nn.Module, optimizer: torch.optim.Optimizer, steps: int = 2) -> None:
    g = torch.Generator().manual_seed(0)
    for _ in range(steps):
        loss = model(torch.randn(5, 3, generator=g)).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_weights_round_trip(tmp_path: Path) -> None:
    model, _ = _model_and_optimizer(0)
    save_weights(tmp_path / "w.safetensors", model.state_dict())
    assert _same(load_weights(tmp_path / "w.safetensors"), model.state_dict())
    assert [p.name for p in tmp_path.iterdir()] == ["w.safetensors"]  # no temporary file left


def test_model_and_optimizer_state_round_trip(tmp_path: Path) -> None:
    model, optimizer = _model_and_optimizer(0)
    _step(model, optimizer)
    best = {k: v + 1 for k, v in model.state_dict().items()}
    save_checkpoint(tmp_path, model, best, optimizer, {"epoch": 3, "history": [{"epoch": 3}]})

    other, other_opt = _model_and_optimizer(1)
    state, restored_best = load_checkpoint(tmp_path, other, other_opt)
    assert state == {"epoch": 3, "history": [{"epoch": 3}]}
    assert _same(other.state_dict(), model.state_dict())
    assert _same(restored_best, best)
    expected, actual = optimizer.state_dict(), other_opt.state_dict()
    assert actual["param_groups"] == expected["param_groups"]
    assert actual["param_groups"][0]["betas"] == (0.8, 0.95)
    assert expected["state"].keys() == actual["state"].keys()
    for idx, slots in expected["state"].items():
        assert slots.keys() == actual["state"][idx].keys()
        for key, value in slots.items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(actual["state"][idx][key]))
    # Both optimizers now take exactly the same next step.
    _step(model, optimizer, 1)
    _step(other, other_opt, 1)
    assert _same(other.state_dict(), model.state_dict())


def test_state_json_is_plain_json_and_only_one_checkpoint_is_kept(tmp_path: Path) -> None:
    model, optimizer = _model_and_optimizer(0)
    for epoch in (1, 2, 3):
        _step(model, optimizer, 1)
        save_checkpoint(tmp_path, model, model.state_dict(), optimizer, {"epoch": epoch})
    state = json.loads((tmp_path / "state.json").read_text())
    assert state["epoch"] == 3
    tensors = sorted(p.name for p in tmp_path.glob("*.safetensors"))
    assert tensors == sorted(state["files"].values())
    assert len(tensors) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*tensors, "state.json"])


def test_no_checkpoint(tmp_path: Path) -> None:
    model, optimizer = _model_and_optimizer(0)
    assert load_checkpoint(tmp_path / "absent", model, optimizer) is None


def test_interrupted_write_leaves_the_previous_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, optimizer = _model_and_optimizer(0)
    _step(model, optimizer)
    save_checkpoint(tmp_path, model, model.state_dict(), optimizer, {"epoch": 1})
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    saved_opt = {k: v.clone() for k, v in optimizer.state_dict()["state"][0].items()}

    _step(model, optimizer)  # epoch 2 changes weights and optimizer state
    real_save_file = checkpoint.save_file
    calls = []

    def failing_save_file(tensors, filename):
        calls.append(filename)
        if len(calls) == 2:  # the new weights are written; the crash hits the next file
            real_save_file(tensors, filename)  # a partly written file...
            raise KeyboardInterrupt("power cut")  # ...and then the process dies
        real_save_file(tensors, filename)

    monkeypatch.setattr(checkpoint, "save_file", failing_save_file)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(tmp_path, model, model.state_dict(), optimizer, {"epoch": 2})
    monkeypatch.undo()

    fresh, fresh_opt = _model_and_optimizer(5)
    state, best = load_checkpoint(tmp_path, fresh, fresh_opt)
    assert state == {"epoch": 1}
    assert _same(fresh.state_dict(), saved), "model weights must be those of epoch 1"
    assert _same(best, saved)
    assert _same(fresh_opt.state_dict()["state"][0], saved_opt)
    assert not list(tmp_path.glob(".*.tmp")), "temporary files must be cleaned up"

    # The next successful save removes whatever the interrupted one left behind.
    save_checkpoint(tmp_path, model, model.state_dict(), optimizer, {"epoch": 2})
    assert len(list(tmp_path.glob("*.safetensors"))) == 3
