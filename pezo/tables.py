"""Tables, the one way the project writes them: Markdown (docs, reports, comparisons) and, for
the terminal, rich."""

from rich.console import Console
from rich.table import Table

__all__ = ["markdown_table", "print_table"]

_ALIGN = {"l": ":--", "r": "--:", "-": "---"}


def markdown_table(head, rows, align):
    """The lines of a GitHub-flavoured Markdown table: ``head`` (column titles), ``rows`` (one
    sequence of cells per row; cells are str()-ed, a ``|`` inside a cell is escaped) and
    ``align``, one letter per column: ``l`` left, ``r`` right, ``-`` default."""
    head = list(head)
    if len(align) != len(head) or set(align) - set(_ALIGN):
        raise ValueError(f"Alignment must be one of l, r, - per column ({len(head)}), "
                         f"not {align!r}")
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(_ALIGN[a] for a in align) + "|"]
    for row in rows:
        cells = [str(c).replace("|", "\\|") for c in row]
        if len(cells) != len(head):
            raise ValueError(f"Row has {len(cells)} cells, the table {len(head)} columns: {row!r}")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def print_table(head, rows, title=None, file=None):
    """Print a table to the terminal (rich): ``head`` column titles (None: no header row),
    ``rows`` sequences of cells (str()-ed)."""
    t = Table(title=title, show_header=head is not None)
    for h in head or [""] * (len(rows[0]) if rows else 0):
        t.add_column(h)
    for row in rows:
        t.add_row(*(str(c) for c in row))
    Console(file=file).print(t)
