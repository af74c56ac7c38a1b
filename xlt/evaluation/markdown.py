"""Markdown tables of the evaluation outputs: a left-aligned label column, right-aligned value columns."""

from __future__ import annotations

from collections.abc import Sequence


def escape(text: str) -> str:
    """A table cell that keeps ``|`` literal."""
    return text.replace("|", "\\|")


def table(header: Sequence[str], rows: Sequence[Sequence[str]], *, align: bool = True) -> list[str]:
    """Lines of a Markdown table; the first column is left-aligned, the others right-aligned.

    With ``align=False`` the separator row sets no alignment (``|---|---|``: the renderer's default, left).
    """
    rule = ["---"] + ["---:" if align else "---"] * (len(header) - 1)
    return ["| " + " | ".join(header) + " |", "|" + "|".join(rule) + "|",
            *("| " + " | ".join(row) + " |" for row in rows)]
