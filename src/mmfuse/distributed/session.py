"""A Ray session for one command: the installed Ray, a cluster to run on, and the size of pools.

``require_ray`` imports Ray Data or says what to install. ``ray_session`` joins the cluster at
``address`` (``auto``, ``ray://head:10001``), or starts a local Ray on ``num_cpus`` cores, and
shuts down only what it started: inside a session someone else opened (a notebook, a test) it
just uses that one. Ray's own progress bars and log lines are turned off; mmfuse reports
progress itself.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType

from mmfuse.errors import MmfuseError

INSTALL_HINT = "pip install 'mmfuse[distributed]'"
ENGINES = ("local", "ray")


@dataclass(frozen=True)
class RaySettings:
    """Where Ray work runs.

    Attributes:
        address: The cluster to join (``auto``, ``ray://head:10001``); None starts a local Ray.
        num_cpus: Cores of a local Ray (None: all); a joined cluster has its own.
        device: "auto" or "cpu" (actors on CPUs), or "cuda" (one GPU per actor).
        verbose: Print what runs where.
    """

    address: str | None = None
    num_cpus: int | None = None
    device: str = "auto"
    verbose: bool = True

    def __post_init__(self) -> None:
        if not self.device.startswith("cuda"):  # a GPU may be on the workers only: not checked here
            from mmfuse.training.device import resolve_device

            resolve_device(self.device)  # an unknown name: MmfuseError with the choices

    def actor_device(self) -> str:
        """Where an actor runs its network: on its GPU for ``cuda``, else on its CPU (``auto``
        does not put CPU actors on a GPU that Ray did not give them)."""
        return self.device if self.device.startswith("cuda") else "cpu"

    def actor_resources(self) -> dict[str, float]:
        """What each actor reserves: one GPU for ``cuda``, else one CPU (its network runs on one
        thread, so that the actors together use the cluster's cores once)."""
        return {"num_gpus": 1.0} if self.device.startswith("cuda") else {"num_cpus": 1.0}

    def pool_size(self, cluster: dict[str, float], blocks: int) -> int:
        """Actors to start: one per GPU or CPU of the cluster, never more than there are blocks."""
        unit = "GPU" if self.device.startswith("cuda") else "CPU"
        available = int(cluster.get(unit, 0))
        if available < 1:
            raise MmfuseError(f"--device {self.device}: the Ray cluster has no {unit}")
        return max(1, min(available, blocks))


def cli_wording() -> bool:
    """Whether messages now name parameters as command-line flags (inside ``from_cli``): the
    driver passes it on, so that workers word the bad cells they report alike."""
    from mmfuse._hints import option

    return option("missing_files", "missing").startswith("--")


@contextlib.contextmanager
def worded(cli: bool) -> Iterator[None]:
    """Within the block, messages name parameters as flags when ``cli``, else as keywords."""
    from mmfuse._hints import from_cli

    with from_cli() if cli else contextlib.nullcontext():
        yield


def require_ray() -> ModuleType:
    """The ``ray`` module with Ray Data loaded.

    Raises:
        MmfuseError: Ray Data is not installed (the message says what to install).
    """
    try:
        import ray
        import ray.data  # the engine needs Ray Data, not only Ray core
    except ImportError as err:
        raise MmfuseError(f"--engine ray needs Ray Data, which is not installed ({err}); install it "
                          f"with: {INSTALL_HINT}") from None
    return ray


@contextlib.contextmanager
def ray_session(settings: RaySettings) -> Iterator[ModuleType]:
    """The ``ray`` module, connected to a cluster for the duration of the block.

    Raises:
        MmfuseError: Ray is missing, or the cluster at ``address`` cannot be reached.
    """
    ray = require_ray()
    _quiet(ray)
    if ray.is_initialized():
        yield ray
        return
    _start(ray, settings)
    try:
        yield ray
    finally:
        ray.shutdown()


def _start(ray: ModuleType, settings: RaySettings) -> None:
    local = settings.address is None
    if local and settings.num_cpus is not None and settings.num_cpus < 1:
        raise MmfuseError(f"--threads must be at least 1, got {settings.num_cpus}")
    saved = os.environ.get("RAY_BACKEND_LOG_LEVEL")
    os.environ["RAY_BACKEND_LOG_LEVEL"] = "fatal"  # the core worker's notices about its own actors
    try:
        ray.init(
            address=settings.address,
            num_cpus=settings.num_cpus if local else None,
            include_dashboard=False,
            logging_level=logging.ERROR,
            log_to_driver=False,
            **({"_temp_dir": short} if local and (short := socket_safe_temp_dir()) else {}),
        )
    except (ConnectionError, RuntimeError, ValueError) as err:
        where = "start a local Ray" if local else f"connect to the Ray cluster at {settings.address}"
        raise MmfuseError(f"cannot {where}: {err}") from None
    finally:
        if saved is None:
            os.environ.pop("RAY_BACKEND_LOG_LEVEL", None)
        else:
            os.environ["RAY_BACKEND_LOG_LEVEL"] = saved
    if settings.verbose:
        from mmfuse._progress import log

        cpus = int(ray.cluster_resources().get("CPU", 0))
        log(f"Ray: {'a local Ray' if local else settings.address} with {cpus} CPU(s)")


SOCKET_PATH_MAX = 107
"""Longest path of a Unix socket (Linux)."""
RAY_SOCKET_SUFFIX = len("/session_2026-11-30_03-16-08_248797_22113/sockets/plasma_store") + 4
"""What a local Ray appends to its temporary folder for its longest socket path (the process id
may grow)."""


def socket_safe_temp_dir() -> str | None:
    """None when a local Ray's default temporary folder (``$RAY_TMPDIR``, else ``ray`` in the
    system's temporary folder) leaves room for its socket paths; else a folder directly under
    ``/tmp`` (a long ``$TMPDIR`` otherwise fails Ray's start with "AF_UNIX path length cannot
    exceed 107 bytes")."""
    default = os.environ.get("RAY_TMPDIR") or os.path.join(tempfile.gettempdir(), "ray")
    if len(default) + RAY_SOCKET_SUFFIX <= SOCKET_PATH_MAX:
        return None
    return f"/tmp/ray-{os.getuid()}"


def _quiet(ray: ModuleType) -> None:
    """No Ray Data progress bars or execution logs: mmfuse prints its own progress."""
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    logging.getLogger("ray.data").setLevel(logging.ERROR)
