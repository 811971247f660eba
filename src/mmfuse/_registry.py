"""A generic name -> class registry that finds its members, used for encoders and fusion operators.

A registry bound to a package imports every module of that package the first time it is read
(``get``, ``names``, ``in``, iteration, ``len``), so a new member is one new file whose class
carries the registration decorator: no import line to add anywhere. Nothing is imported before
that first read, which keeps ``import mmfuse`` cheap.

A class in such a package that is deliberately not a member (a building block of one, a shared
base class) says so with ``@unregistered("why")``; ``tests/test_registry_discovery.py`` fails on
any other module class there that is not registered.
"""

from __future__ import annotations

import importlib
import pkgutil
import threading
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")
C = TypeVar("C", bound=type)

UNREGISTERED = "__unregistered__"
"""Class attribute set by :func:`unregistered`: the reason the class is not a member."""


def unregistered(reason: str) -> Callable[[C], C]:
    """Class decorator marking a class of a registry's package as deliberately not a member.

    Args:
        reason: Why the class is not registered, e.g. "one round of GraphFusion". Required, so
            the exemption documents itself; it is not inherited by subclasses.
    """
    if not reason.strip():
        raise ValueError("unregistered() needs a reason, e.g. 'a building block of GraphFusion'")

    def decorator(cls: C) -> C:
        setattr(cls, UNREGISTERED, reason)
        return cls

    return decorator


def is_unregistered(cls: type) -> bool:
    """Whether ``cls`` itself (not a parent) is marked with :func:`unregistered`."""
    return UNREGISTERED in vars(cls)


def package_modules(package: str) -> list[str]:
    """Dotted names of every module under ``package`` (sub-packages included), sorted."""
    root = importlib.import_module(package)
    found = pkgutil.walk_packages(root.__path__, prefix=package + ".")
    return sorted(info.name for info in found)


class Registry(Generic[T]):
    """Maps names to classes. Unknown names raise listing the valid ones; duplicates raise.

    Args:
        what: What the registry holds, used in error messages ("fusion", "encoder").
        package: Dotted package whose modules hold the members; they are all imported on the
            first read. ``None`` for a registry filled only by explicit registration.
    """

    def __init__(self, what: str, package: str | None = None) -> None:
        self.what = what
        self.package = package
        self._entries: dict[str, T] = {}
        self._discovered = package is None
        self._discovering = False
        self._lock = threading.RLock()

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator that registers a class under ``name``."""

        def decorator(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.what} {name!r} is already registered")
            self._entries[name] = obj
            return obj

        return decorator

    def discover(self) -> None:
        """Imports every module of ``package`` once, so that their decorators register them.

        Reads from inside a module being imported (the same thread) see the members found so far;
        other threads wait. A module that fails to import raises, naming it, and the next read
        tries again.
        """
        if self._discovered or self.package is None:
            return
        with self._lock:
            if self._discovered or self._discovering:
                return
            self._discovering = True
            try:
                for module in package_modules(self.package):
                    _import(module, self.what)
                self._discovered = True
            finally:
                self._discovering = False

    def get(self, name: str) -> T:
        """Returns the class registered as ``name``."""
        self.discover()
        try:
            return self._entries[name]
        except KeyError:
            raise KeyError(
                f"unknown {self.what} {name!r}; choose one of: {', '.join(self.names())}"
            ) from None

    def names(self) -> list[str]:
        """All registered names, sorted."""
        self.discover()
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        self.discover()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        self.discover()
        return len(self._entries)


def _import(module: str, what: str) -> None:
    """Imports ``module``; a failure names the module and why it was being imported."""
    try:
        importlib.import_module(module)
    except Exception as exc:
        raise ImportError(f"cannot import {module} while looking for {what}s: {exc}") from exc
