"""What ``mmfuse list`` shows, read from the source files of ``fusion/`` and ``encoders/``.

Importing the operators and encoders means importing torch (1-2 s), longer than the whole
listing may take. Their names, class attributes and docstrings are plain literals in the
source, so this module reads them with ``ast`` instead: a class decorated with
``@register_fusion("name")`` or ``@register_encoder("kind", "name")``, its literal class
attributes (inherited from a parent class of the same package too) and its docstring.
``tests/cli/test_usability.py`` checks that this reading equals the imported registries, so the
two cannot drift apart. Without source files (a byte-code-only install) the registries are
imported after all.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DECORATORS = {"fusion": "register_fusion", "encoders": "register_encoder"}
"""Package (under ``mmfuse``) -> the decorator that registers its members."""

LISTED = ("level", "description", "supports_missing")
"""The class attributes ``mmfuse list`` shows."""


@dataclass(frozen=True)
class Entry:
    """One registered class as its source declares it.

    Attributes:
        name: The registered name ("attention", "image/cnn").
        attributes: The ``LISTED`` class attributes the class sets as literals, inherited ones
            included.
        doc: The class's own docstring ("" when it has none).
    """

    name: str
    attributes: dict[str, Any] = field(default_factory=dict)
    doc: str = ""


@dataclass
class _Class:
    bases: list[str]
    attributes: dict[str, Any]
    doc: str
    registered: str | None


def entries(package: str) -> list[Entry]:
    """The registered members of ``mmfuse.<package>`` ("fusion" or "encoders"), sorted by name."""
    root = Path(__file__).resolve().parent.parent / package
    files = sorted(root.rglob("*.py"))
    if not files:
        return _imported(package)
    classes: dict[str, _Class] = {}
    for path in files:
        classes.update(_classes(ast.parse(path.read_text(encoding="utf-8")), DECORATORS[package]))
    found = [Entry(c.registered, _listed(_inherited(name, classes)), c.doc)
             for name, c in classes.items() if c.registered is not None]
    return sorted(found, key=lambda e: e.name)


def _classes(tree: ast.Module, decorator: str) -> dict[str, _Class]:
    """Top-level classes of one module: bases, literal attributes, docstring, registered name."""
    out = {}
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        bases = [b.id if isinstance(b, ast.Name) else getattr(b, "attr", "") for b in node.bases]
        names = [_registered_name(d, decorator) for d in node.decorator_list]
        registered = next((n for n in names if n is not None), None)
        doc = ast.get_docstring(node) or ""
        out[node.name] = _Class(bases, _literal_attributes(node), doc, registered)
    return out


def _registered_name(node: ast.expr, decorator: str) -> str | None:
    """"name" of ``@register_fusion("name")``; "kind/name" of ``@register_encoder(kind, name)``."""
    if not isinstance(node, ast.Call):
        return None
    func = node.func
    called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
    if called != decorator or not all(isinstance(a, ast.Constant) for a in node.args):
        return None
    return "/".join(str(a.value) for a in node.args)  # type: ignore[attr-defined]


def _literal_attributes(node: ast.ClassDef) -> dict[str, Any]:
    out = {}
    for statement in node.body:
        target, value = _assignment(statement)
        if target is None or value is None:
            continue
        try:
            out[target] = ast.literal_eval(value)
        except (ValueError, TypeError, SyntaxError):  # not a literal (a call, a name): not listed
            continue
    return out


def _assignment(statement: ast.stmt) -> tuple[str | None, ast.expr | None]:
    if isinstance(statement, ast.Assign) and len(statement.targets) == 1:
        target = statement.targets[0]
        return (target.id if isinstance(target, ast.Name) else None), statement.value
    if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
        return statement.target.id, statement.value
    return None, None


def _inherited(name: str, classes: dict[str, _Class]) -> dict[str, Any]:
    """Attributes of ``name`` with those of its parents in the package underneath."""
    own = classes[name]
    merged: dict[str, Any] = {}
    for base in reversed(own.bases):
        if base in classes and base != name:
            merged.update(_inherited(base, classes))
    merged.update(own.attributes)
    return merged


def _imported(package: str) -> list[Entry]:
    """The same entries from the imported registry (imports torch)."""
    if package == "fusion":
        from mmfuse.fusion import FUSIONS as registry
    else:
        from mmfuse.encoders import ENCODERS as registry
    return [Entry(name, listed_attributes(registry.get(name)), registry.get(name).__doc__ or "")
            for name in registry.names()]


def listed_attributes(cls: type) -> dict[str, Any]:
    """The ``LISTED`` attributes ``cls`` has (its own or inherited)."""
    return {k: getattr(cls, k) for k in LISTED if hasattr(cls, k)}


def _listed(attributes: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in attributes.items() if k in LISTED}


RST_ROLES = re.compile(r":[a-z]+(?::[a-z]+)?:`~?([^`]+)`")
RST_LITERALS = re.compile(r"``([^`]+)``|`([^`]+)`")


def summary(doc: str) -> str:
    """The first sentence of a docstring on one line, without reStructuredText markup."""
    paragraph = " ".join(doc.strip().split("\n\n", 1)[0].split())
    text = RST_ROLES.sub(r"\1", paragraph)
    text = RST_LITERALS.sub(lambda m: m.group(1) or m.group(2), text)
    sentence = re.split(r"(?<=[.!?])\s+(?=[A-Z(])", text, maxsplit=1)[0]
    return sentence[:-1] if sentence.endswith(".") and not sentence.endswith("..") else sentence
