"""Atomic, pickle-free checkpoints: safetensors for tensors, JSON for everything else.

A checkpoint folder holds ``state.json`` (epoch, history, optimizer hyper-parameters) and
three safetensors files it names: current weights, best weights so far and optimizer state.
Every save writes new, uniquely named tensor files, then ``state.json`` (atomically), and only
then deletes the files of the previous checkpoint, so ``state.json`` is the single commit
point: an interrupted write leaves the previous complete, consistent checkpoint in place.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_bytes
from safetensors.torch import save_file
from torch import Tensor, nn

from mmfuse._io import atomic_path, read_json, write_json
from mmfuse.data.tensors import Rows, TensorData, chunks, dtype_of
from mmfuse.errors import MmfuseError


def save_weights(path: str | Path, state: dict[str, Tensor]) -> None:
    """Writes a state dict as safetensors, atomically."""
    tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp))


def load_weights(path: str | Path, sha256: str | None = None) -> dict[str, Tensor]:
    """Reads a safetensors state dict (never executes code).

    Args:
        path: The safetensors file.
        sha256: The file's expected SHA-256 (hex); the bytes that are hashed are the bytes
            that are loaded, so the file cannot change in between.

    Raises:
        MmfuseError: The digest differs, or the file is not a complete safetensors file.
    """
    data = Path(path).read_bytes()
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise MmfuseError(
            f"{path} does not match the SHA-256 fingerprint recorded when it was saved: the "
            "weights were changed or corrupted after saving; fit the model again, or restore "
            f"{Path(path).name} from a backup"
        )
    try:
        return load_bytes(data)
    except SafetensorError as err:
        what = "is empty" if not data else f"is not a complete safetensors file ({err})"
        raise MmfuseError(
            f"{path} {what}; it is damaged or was replaced: fit the model again, or restore "
            "it from a backup"
        ) from None


def save_checkpoint(
    folder: Path,
    model: nn.Module,
    best_state: dict[str, Tensor],
    optimizer: torch.optim.Optimizer,
    state: dict[str, Any],
) -> None:
    """Writes a complete checkpoint; ``state`` holds epoch, history and early-stopping state."""
    folder.mkdir(parents=True, exist_ok=True)
    tag = f"{int(state.get('epoch', 0)):06d}-{uuid.uuid4().hex[:8]}"
    files = {part: f"{part}-{tag}.safetensors" for part in ("model", "best", "optimizer")}
    save_weights(folder / files["model"], model.state_dict())
    save_weights(folder / files["best"], best_state)
    tensors, groups = _flatten_optimizer(optimizer)
    save_weights(folder / files["optimizer"], tensors)
    write_json(folder / "state.json", {**state, "param_groups": groups, "files": files})
    for old in folder.glob("*.safetensors"):  # the previous checkpoint's files
        if old.name not in files.values():
            old.unlink()


def load_checkpoint(
    folder: Path, model: nn.Module, optimizer: torch.optim.Optimizer
) -> tuple[dict[str, Any], dict[str, Tensor]] | None:
    """Restores model and optimizer; returns (state, best weights), or None if no checkpoint."""
    if not (folder / "state.json").exists():
        return None
    state = _read_state(folder / "state.json")
    files = state.pop("files")
    model.load_state_dict(load_weights(folder / files["model"]))
    best = load_weights(folder / files["best"])
    optimizer_state = load_weights(folder / files["optimizer"])
    _restore_optimizer(optimizer, optimizer_state, state.pop("param_groups"))
    return state, best


def _read_state(path: Path) -> dict[str, Any]:
    """state.json, checked to name the three tensor files of the checkpoint."""
    damaged = f"the checkpoint in {path.parent} is damaged: fit without --resume to start over"
    try:
        state = read_json(path)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise MmfuseError(f"{path} is not readable JSON ({err}); {damaged}") from None
    files = state.get("files") if isinstance(state, dict) else None
    parts = ("model", "best", "optimizer")
    if not isinstance(files, dict) or any(not isinstance(files.get(p), str) for p in parts):
        raise MmfuseError(f"{path} does not name the checkpoint's weight files; {damaged}")
    for name in files.values():
        if Path(name).name != name or not (path.parent / name).is_file():
            raise MmfuseError(f"{path} names {name!r}, which is not a file in {path.parent}; {damaged}")
    return state


def _flatten_optimizer(optimizer: torch.optim.Optimizer) -> tuple[dict[str, Tensor], list[dict[str, Any]]]:
    sd = optimizer.state_dict()
    tensors = {}
    for idx, slots in sd["state"].items():
        for key, value in slots.items():
            tensors[f"{idx}.{key}"] = torch.as_tensor(value)
    groups = [{k: v for k, v in g.items()} for g in sd["param_groups"]]
    return tensors, groups


def _restore_optimizer(
    optimizer: torch.optim.Optimizer, tensors: dict[str, Tensor], groups: list[dict[str, Any]]
) -> None:
    state: dict[int, dict[str, Tensor]] = {}
    for name, value in tensors.items():
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = value
    for group in groups:
        if isinstance(group.get("betas"), list):
            group["betas"] = tuple(group["betas"])
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def data_fingerprint(*parts: TensorData) -> str:
    """SHA-256 of the records' tensors (inputs, masks, targets, in modality order): a resumed
    run must train on exactly the data of the interrupted one."""
    h = hashlib.sha256()
    for data in parts:
        tensors: list[tuple[str, Rows]] = [*sorted(data.inputs.items()), *sorted(data.mask.items())]
        if data.targets is not None:
            tensors.append(("targets", data.targets))
        for name, tensor in tensors:
            h.update(f"{name}:{tuple(tensor.shape)}:{dtype_of(tensor)}".encode())
            for part in chunks(tensor):  # records on disk: a chunk at a time, the same bytes
                h.update(part.detach().cpu().contiguous().numpy())  # no copy: the buffer itself
    return h.hexdigest()
