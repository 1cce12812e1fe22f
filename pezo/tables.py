"""Markdown tables, the one way the project writes them (docs, reports, comparisons)."""

__all__ = ["markdown_table"]

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
