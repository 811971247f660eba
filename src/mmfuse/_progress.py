"""Progress reporting: a rich progress bar on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def is_terminal() -> bool:
    """True when stderr is an interactive terminal."""
    return sys.stderr.isatty()


def log(message: str, verbose: bool = True) -> None:
    """Prints one plain line to stderr."""
    if verbose:
        print(message, file=sys.stderr, flush=True)


MIN_RATE_SECONDS = 1.0
"""A rate is shown only once a step has run this long: over a few milliseconds (items served
from a cache, an empty batch) it is noise, e.g. "532978/s"."""


def format_rate(done: float, seconds: float) -> str:
    """Items per second as people read it: "12/s", "3.4/s", "2.5 s each"; "" until the step has
    run ``MIN_RATE_SECONDS`` or when nothing was done."""
    if seconds < MIN_RATE_SECONDS or done <= 0:
        return ""
    rate = done / seconds
    if rate >= 10:
        return f"{rate:.0f}/s"
    if rate >= 1:
        return f"{rate:.1f}/s"
    return f"{seconds / done:.1f} s each"


def track(items: Iterable[T], total: int, description: str, verbose: bool = True) -> Iterator[T]:
    """Iterates ``items`` with a progress display.

    On a terminal a rich bar with items/s; otherwise one line when done (and every ~10 s).
    """
    if not verbose:
        yield from items
        return
    if is_terminal():
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            ProgressColumn,
            TextColumn,
            TimeRemainingColumn,
        )
        from rich.text import Text

        class RateColumn(ProgressColumn):  # type: ignore[misc]
            def render(self, task):  # type: ignore[no-untyped-def]
                return Text(format_rate(task.completed, task.elapsed or 0.0))

        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            RateColumn(),
            TimeRemainingColumn(),
        )
        with Progress(*columns, transient=True) as progress:
            task = progress.add_task(description, total=total)
            for item in items:
                yield item
                progress.advance(task)
        return
    start = last = time.perf_counter()
    done = 0
    for item in items:
        yield item
        done += 1
        now = time.perf_counter()
        if now - last > 10:
            log(f"{description}: {done}/{total}")
            last = now
    elapsed = time.perf_counter() - start
    rate = format_rate(done, elapsed)
    log(f"{description}: {done}/{total} in {elapsed:.1f}s" + (f" ({rate})" if rate else ""))

