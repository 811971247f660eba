"""Registries find their members: a new operator or encoder is one file, and none is forgotten.

Also checks the README's fusion list against the registry (names and levels).
"""

from __future__ import annotations

import importlib
import inspect
import re
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from torch import nn

from mmfuse._registry import Registry, is_unregistered, package_modules, unregistered
from mmfuse.encoders import ENCODERS
from mmfuse.fusion import FUSIONS, LEVELS, list_fusions

ROOT = Path(__file__).resolve().parents[1]
REGISTRIES = {"mmfuse.fusion": FUSIONS, "mmfuse.encoders": ENCODERS}
MEMBER_SUFFIXES = ("Fusion", "Encoder")


def module_classes(package: str) -> Iterator[tuple[str, type]]:
    """(module, class) for every class defined (not merely imported) in a module of ``package``."""
    for name in package_modules(package):
        module = importlib.import_module(name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == name:
                yield name, cls


def looks_like_member(cls: type) -> bool:
    return issubclass(cls, nn.Module) or cls.__name__.endswith(MEMBER_SUFFIXES)


@pytest.mark.parametrize("package", sorted(REGISTRIES))
def test_every_module_class_is_registered_or_marked(package: str) -> None:
    registry = REGISTRIES[package]
    registered = {registry.get(name) for name in registry.names()}
    forgotten = [
        f"{module}.{cls.__name__}"
        for module, cls in module_classes(package)
        if looks_like_member(cls) and cls not in registered and not is_unregistered(cls)
    ]
    assert not forgotten, (
        f"defined in {package} but neither registered nor marked @unregistered(reason): "
        + ", ".join(forgotten)
    )


@pytest.mark.parametrize("package", sorted(REGISTRIES))
def test_marked_classes_are_not_registered(package: str) -> None:
    registry = REGISTRIES[package]
    registered = {registry.get(name) for name in registry.names()}
    marked = [cls for _, cls in module_classes(package) if is_unregistered(cls)]
    assert not [cls for cls in marked if cls in registered]


_LAZY_PROBE = """
import sys
import mmfuse, mmfuse.fusion, mmfuse.encoders
def loaded(prefix):
    return sorted(m for m in sys.modules if m.startswith(prefix))
print("torch" in sys.modules, loaded("mmfuse.fusion."), loaded("mmfuse.encoders."))
from mmfuse.fusion import FUSIONS
"graph" in FUSIONS
print(len(loaded("mmfuse.fusion.")), loaded("mmfuse.encoders."))
"""


def test_discovery_waits_for_the_first_read() -> None:
    """Importing the packages imports no member module and no torch; the first read does."""
    out = subprocess.run(
        [sys.executable, "-c", _LAZY_PROBE], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out[0] == "False [] []"
    assert out[1] == f"{len(package_modules('mmfuse.fusion'))} []"


# --- the registry itself, on a throw-away package -------------------------------------------


MakePackage = Callable[[dict[str, str]], str]


@pytest.fixture
def make_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MakePackage]:
    """Writes a package whose ``__init__`` holds ``REG = Registry("widget", package=...)``."""
    monkeypatch.syspath_prepend(str(tmp_path))
    names: list[str] = []

    def make(files: dict[str, str]) -> str:
        name = f"widgets_{len(names)}_{tmp_path.name}".replace("-", "_")
        names.append(name)
        root = tmp_path / name
        init = "from mmfuse._registry import Registry\nREG = Registry('widget', package=__name__)\n"
        for path, text in {"__init__.py": init, **files}.items():
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            (root / path).write_text(textwrap.dedent(text).replace("PKG", name))
        importlib.invalidate_caches()
        return name

    yield make
    for module in [m for m in sys.modules if m.split(".")[0] in names]:
        del sys.modules[module]


def widget(name: str) -> str:
    return f"from PKG import REG\n@REG.register({name!r})\nclass W:\n    pass\n"


def test_new_file_is_found_with_no_import_line(make_package: MakePackage) -> None:
    name = make_package({"a.py": widget("a"), "deep/__init__.py": "", "deep/b.py": widget("b")})
    package = importlib.import_module(name)
    assert f"{name}.a" not in sys.modules  # nothing imported before the first read
    assert package.REG.names() == ["a", "b"]
    assert "b" in package.REG and len(package.REG) == 2 and list(package.REG) == ["a", "b"]
    assert package.REG.get("a").__module__ == f"{name}.a"


def test_unknown_name_lists_the_discovered_ones(make_package: MakePackage) -> None:
    package = importlib.import_module(make_package({"a.py": widget("a"), "b.py": widget("b")}))
    with pytest.raises(KeyError, match=r"unknown widget 'c'; choose one of: a, b"):
        package.REG.get("c")


def test_duplicate_name_raises(make_package: MakePackage) -> None:
    package = importlib.import_module(make_package({"a.py": widget("a"), "b.py": widget("a")}))
    with pytest.raises(ImportError, match=r"\.b while looking for widgets: widget 'a' is already"):
        package.REG.names()


def test_broken_module_is_named_and_the_next_read_retries(make_package: MakePackage) -> None:
    name = make_package({"a.py": widget("a"), "b.py": "raise RuntimeError('no such library')\n"})
    package = importlib.import_module(name)
    with pytest.raises(ImportError, match=rf"cannot import {name}\.b .*: no such library"):
        package.REG.get("a")
    (Path(package.__file__).parent / "b.py").write_text(widget("b").replace("PKG", name))
    importlib.invalidate_caches()
    assert package.REG.names() == ["a", "b"]


def test_a_read_during_discovery_sees_the_members_so_far(make_package: MakePackage) -> None:
    reader = "from PKG import REG\nSEEN = REG.names()\n"
    name = make_package({"a.py": widget("a"), "b.py": reader, "c.py": widget("c")})
    package = importlib.import_module(name)
    assert package.REG.names() == ["a", "c"]
    assert importlib.import_module(f"{name}.b").SEEN == ["a"]


def test_registry_without_package_holds_only_what_is_registered() -> None:
    registry: Registry[type] = Registry("thing")
    registry.register("x")(int)
    assert registry.names() == ["x"] and registry.get("x") is int


def test_unregistered_needs_a_reason_and_is_not_inherited() -> None:
    with pytest.raises(ValueError, match="needs a reason"):
        unregistered(" ")

    @unregistered("a building block")
    class Block:
        pass

    class Child(Block):
        pass

    assert is_unregistered(Block) and not is_unregistered(Child)


# --- the README's fusion list ---------------------------------------------------------------

README_LEVELS = {"feature level": "feature", "data level": "early", "decision level": "late"}


def readme_fusions() -> dict[str, list[str]]:
    """{level: names} from the README's ``--fusion NAME`` option row."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    row = re.search(r"^\| `--fusion NAME` \| (.*) \|$", readme, flags=re.MULTILINE)
    assert row, "README.md has no `--fusion NAME` row in its option table"
    listed: dict[str, list[str]] = {}
    for part in row.group(1).split(";"):
        label, _, names = part.strip().partition(":")
        assert label in README_LEVELS, f"unknown level label {label!r} in the README's row"
        listed[README_LEVELS[label]] = re.findall(r"`([a-z_]+)`", names)
    return listed


def expected_row(listed: dict[str, list[str]]) -> str:
    """The row as it should read: the README's order kept, new operators appended."""
    parts = []
    for label, level in README_LEVELS.items():
        names = [n for n in listed.get(level, []) if n in list_fusions(level)]
        names += [n for n in list_fusions(level) if n not in names]
        parts.append(f"{label}: " + ", ".join(f"`{n}`" for n in names))
    return "| `--fusion NAME` | " + "; ".join(parts) + " |"


def test_readme_fusion_list_matches_the_registry() -> None:
    listed = readme_fusions()
    assert set(README_LEVELS.values()) == set(LEVELS)
    for level in LEVELS:
        names = listed.get(level, [])
        assert len(names) == len(set(names)), f"a {level} fusion is listed twice in README.md"
        assert sorted(names) == list_fusions(level), (
            f"README.md's {level} fusions differ from the registry; the row should read:\n"
            + expected_row(listed)
        )
