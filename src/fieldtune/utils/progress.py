"""Progress output: a live bar on a terminal, one plain line per finished bar everywhere else.

A bar redrawn with carriage returns is useful on a terminal and noise in a log file, CI or cron
(``make demo > demo.log`` used to write ~1,000 redraws). Every progress bar of fieldtune goes
through :func:`progress_bar`, and libraries with bars of their own are asked :func:`show_bars`, so
the choice is made here only: by whether the stream the bar writes to is a terminal.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import IO, Any

from tqdm.auto import tqdm


def is_terminal(stream: IO[str] | None = None) -> bool:
    """Is ``stream`` (default: stderr, where bars go) an interactive terminal?"""
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def in_notebook() -> bool:
    """Running in a Jupyter kernel? (Its stderr is no terminal, yet tqdm.auto draws a widget there.)"""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


def bars_shown(file: IO[str] | None = None) -> bool:
    """Are progress bars seen where ``file`` (default stderr) goes: a terminal, or a notebook's widget?"""
    return is_terminal(file) or (file is None and in_notebook())


def show_bars(enabled: bool = True) -> bool:
    """Should a library draw its own progress bars (``show_progress_bar=...``)? Only where they are seen."""
    return enabled and bars_shown()


def progress_bar(
    iterable: Iterable[Any] | None = None,
    *,
    desc: str = "",
    total: int | None = None,
    initial: int = 0,
    unit: str = "it",
    disable: bool = False,
    leave: bool = True,
    file: IO[str] | None = None,
) -> Any:
    """A tqdm bar when ``file`` (default stderr) is a terminal or a notebook shows it, else a
    :class:`LineProgress`.

    Takes tqdm's arguments and both results offer what callers use of tqdm: iteration,
    ``update``, ``set_postfix``, ``close`` and ``with``.
    """
    if bars_shown(file):
        return tqdm(
            iterable, desc=desc, total=total, initial=initial, unit=unit, disable=disable, leave=leave, file=file
        )
    return LineProgress(iterable, desc=desc, total=total, initial=initial, unit=unit, disable=disable, file=file)


def log_line(text: str, enabled: bool = True, file: IO[str] | None = None) -> None:
    """One plain line where there are no bars to show progress (a log file, CI, cron): e.g. each
    evaluation of a training run. On a terminal the bars say it already, so nothing is written."""
    if enabled and not bars_shown(file):
        print(text, file=file or sys.stderr, flush=True)


class LineProgress:
    """Counts like a tqdm bar but draws nothing; writes one plain line when it finishes, e.g.
    ``epoch 1/3: 120/120 it in 8.2s, loss=0.4123``."""

    def __init__(
        self,
        iterable: Iterable[Any] | None = None,
        *,
        desc: str = "",
        total: int | None = None,
        initial: int = 0,
        unit: str = "it",
        disable: bool = False,
        file: IO[str] | None = None,
    ) -> None:
        self.iterable, self.desc, self.unit, self.disable, self.file = iterable, desc, unit, disable, file
        self.total = total if total is not None or iterable is None else _length(iterable)
        self.n = initial
        self.postfix: dict[str, Any] = {}
        self._started = time.perf_counter()
        self._closed = False

    def __iter__(self) -> Iterator[Any]:
        if self.iterable is None:
            raise TypeError("LineProgress was made without an iterable: use update()")
        try:
            for item in self.iterable:
                yield item
                self.n += 1
        finally:  # also when the consumer stops early (early stopping breaks out of an epoch)
            self.close()

    def __enter__(self) -> LineProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_postfix(self, ordered_dict: dict[str, Any] | None = None, refresh: bool = True, **kwargs: Any) -> None:
        self.postfix = {**(ordered_dict or {}), **kwargs}

    def close(self) -> None:
        """Write the summary line (once; nothing when disabled)."""
        if self._closed or self.disable:
            self._closed = True
            return
        self._closed = True
        count = f"{self.n}/{self.total}" if self.total is not None else str(self.n)
        line = f"{self.desc}: {count} {self.unit} in {time.perf_counter() - self._started:.1f}s"
        line += "".join(f", {k}={v}" for k, v in self.postfix.items())
        print(line.lstrip(": "), file=sys.stderr if self.file is None else self.file, flush=True)


def _length(iterable: Iterable[Any]) -> int | None:
    try:
        return len(iterable)  # type: ignore[arg-type]
    except TypeError:
        return None
