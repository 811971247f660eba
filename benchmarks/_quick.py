"""``--quick``, shared by every benchmark: tiny sizes that finish in seconds.

A quick run goes through the same code as a full one and prints the same JSON keys, so
``tests/benchmarks/test_benchmarks_quick.py`` can run every script this way and a change
that breaks a benchmark fails the tests. Its numbers mean nothing.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping, Sequence
from typing import Any

QUICK_HELP = (
    "tiny sizes for a smoke run of a few seconds (its numbers mean nothing); flags given "
    "explicitly still apply"
)


def parse_with_quick(
    parser: argparse.ArgumentParser, quick: Mapping[str, Any], argv: Sequence[str] | None = None
) -> argparse.Namespace:
    """Adds ``--quick`` to ``parser`` and parses ``argv``.

    Args:
        parser: The benchmark's parser, every other option already added.
        quick: Option destination -> its default under ``--quick``; flags given explicitly
            still win over these.
        argv: Arguments (default: ``sys.argv[1:]``).

    Returns:
        The parsed arguments, with ``quick`` set.
    """
    known = set(vars(parser.parse_known_args([])[0]))
    unknown = sorted(set(quick) - known)
    if unknown:
        raise ValueError(f"quick defaults for unknown options {unknown}; options: {sorted(known)}")
    parser.add_argument("--quick", action="store_true", help=QUICK_HELP)
    first, _ = parser.parse_known_args(argv)
    if first.quick:
        parser.set_defaults(**quick)
    return parser.parse_args(argv)
