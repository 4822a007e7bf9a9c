"""Table output shared by the benchmarks: rich on the terminal, Markdown for RESULTS.md."""

from __future__ import annotations


def markdown(headers: list[str], body: list[list[str]]) -> str:
    """A GitHub Markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in body])


def show(headers: list[str], body: list[list[str]], title: str) -> None:
    """Print a table with rich when available, else as Markdown."""
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        print(f"\n{title}\n{markdown(headers, body)}")
        return
    table = Table(*headers, title=title)
    for r in body:
        table.add_row(*r)
    Console(width=200).print(table)
