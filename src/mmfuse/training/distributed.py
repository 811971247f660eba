"""Data-parallel training across processes: PyTorch DDP under ``torchrun``.

``torchrun --nproc_per_node N -m mmfuse fit ...`` starts N copies of the same command with
``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE`` set; ``start`` joins them into one process group
(gloo on CPU, NCCL on GPUs, one GPU per process) and ``stop`` leaves it. Every process walks
the same shuffled order of the records; each global batch of ``--batch-size`` records is cut
into equal shares (``share``), one per process, and DDP averages the gradients, so a step
equals the one-process step on the whole batch. Validation runs whole on every process, so
each reaches the same early-stopping decision without talking. Only the first process
(``is_main``) prints, checkpoints and writes the model directory.
"""

from __future__ import annotations

import datetime
import os

import torch
from torch import Tensor, nn

_STARTED = False
TIMEOUT = datetime.timedelta(hours=6)
"""How long a process waits for the others (the first one prepares the records meanwhile)."""


def world_size() -> int:
    """Processes training together (``WORLD_SIZE`` set by torchrun; 1 otherwise)."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def rank() -> int:
    """This process's number among them (0 without torchrun)."""
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


def is_distributed() -> bool:
    return world_size() > 1


def is_main() -> bool:
    """Whether this process prints and writes (the only one, or rank 0)."""
    return rank() == 0


def start(device: str) -> bool:
    """Joins the process group when running under torchrun; whether this call started it.
    On CUDA each process takes the GPU of its ``LOCAL_RANK``."""
    global _STARTED
    import torch.distributed as dist

    if not is_distributed() or dist.is_initialized():
        return False
    cuda = device != "cpu" and torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group("nccl" if cuda else "gloo", timeout=TIMEOUT)
    _STARTED = True
    return True


def stop() -> None:
    """Leaves the process group ``start`` joined."""
    global _STARTED
    import torch.distributed as dist

    if _STARTED and dist.is_initialized():
        dist.destroy_process_group()
    _STARTED = False


def active() -> bool:
    """Whether this process trains with others now (a process group is up, of more than one)."""
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def size() -> int:
    """Processes in the active group (1 without one)."""
    import torch.distributed as dist

    return dist.get_world_size() if active() else 1


def barrier() -> None:
    """Waits until every process gets here (nothing without a group)."""
    import torch.distributed as dist

    if active():
        dist.barrier()


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` in DistributedDataParallel when training with others, else itself. Parameters
    that take no part in a step are allowed (a combiner fitted only after training, an encoder
    whose modality a share lacks); PyTorch then notes once per process if there were none.
    (``static_graph=True`` would skip that search, but left the processes' gradients
    unsynchronised with mmfuse's models under PyTorch 2.13: measured, see the tests.)"""
    if not active():
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids, find_unused_parameters=True)


def share(index: Tensor) -> Tensor:
    """This process's part of a global batch: every ``world``-th record from its rank on."""
    import torch.distributed as dist

    if not active():
        return index
    return index[dist.get_rank() :: dist.get_world_size()]


def summed(values: list[float]) -> list[float]:
    """``values`` added up over the processes (as they are without a group)."""
    import torch.distributed as dist

    if not active():
        return values
    total = torch.tensor(values, dtype=torch.float64)
    if dist.get_backend() == "nccl":  # NCCL reduces GPU tensors only
        total = total.cuda()
    dist.all_reduce(total)
    return total.cpu().tolist()


def any_process(flag: bool) -> bool:
    """Whether ``flag`` holds on any process (so that all stop together)."""
    return summed([float(flag)])[0] > 0
