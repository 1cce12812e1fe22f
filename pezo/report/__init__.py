"""Synthesis reports: aggregate many ``report.json`` files, and compare two of them.

``pezo synth`` writes one ``report.json`` per board and configuration
(``build/<board>/<config>/report.json``). This module only reads those plain dicts; printing and
plotting are separate steps, as hls4ml and FINN do:

* :func:`load_reports` reads files or whole build folders;
* :func:`flatten` turns one report into one table row (:data:`COLUMNS`);
* :func:`write_csv`, :func:`markdown_table` and :func:`plot` write the rows out, and
  :func:`aggregate` does all three into one folder;
* :func:`compare` sets two reports side by side, resource by resource and module by module
  (hierarchy kept), and explains which modules account for the change; :func:`format_compare`
  renders the result as plain text;
* :func:`module_totals` sums the per-module figures under a hierarchical path.

Older reports may lack some keys (``design``, ``modules``, ``power``...): they load, the missing
figures show as empty cells ("–"), and :func:`missing_fields` (the ``missing`` column) names them.
"""

from pezo.report.compare import compare, format_compare, module_totals
from pezo.report.load import (COLUMNS, RESOURCES, first_clock, flatten, load_report, load_reports,
                              logic_cells, missing_fields)
from pezo.report.tables import aggregate, markdown_table, plot, write_csv

__all__ = ["COLUMNS", "RESOURCES", "load_report", "load_reports", "missing_fields", "flatten",
           "write_csv", "markdown_table", "plot", "aggregate", "module_totals", "compare",
           "format_compare", "logic_cells", "first_clock"]
