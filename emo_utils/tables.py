r"""The one Markdown table writer of the package (a leaf module: imports nothing of it).

Examples
--------
>>> print("\n".join(markdown_table(["name", "score", "note"], [["a", 0.5, None], ["b", 1, "x"]])))
| name | score | note |
|---|---|---|
| a | 0.5000 |  |
| b | 1 | x |
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["markdown_table"]


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return "" if value is None else str(value)


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    r"""Lines of a GitHub Markdown table.

    Parameters
    ----------
    header : sequence of str
        Column titles.
    rows : iterable of sequences
        One sequence of cells per row, as long as ``header``.  Floats (NumPy's
        ``float64`` included) are written with 4 decimals, ``None`` as an empty cell,
        anything else with :class:`str`.

    Returns
    -------
    list of str
        The header line, the ``|---|`` separator line, then one line per row (no trailing
        newlines: join them with ``"\n"``).
    """
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return lines
