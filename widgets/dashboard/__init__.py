"""The maintainers' summary dashboard: the notebook ``notebooks/summary.ipynb`` calls :func:`dashboard`.

Filters (a date range and the visitors' start language), the main numbers, four charts
(sessions per day, the funnel, the contact channels, the languages), the flow map (the steps
as boxes coloured by drop-off, the answers as arrows as thick as the sessions that took them;
:mod:`widgets.flowmap`, drawn by Graphviz's ``dot`` on the server, with an SVG download), every
table of :class:`~widgets.summary.Summary` as a styled table, and a CSV download of each. Works under
Voilà: the charts are PNG images rendered by matplotlib's Agg canvas (no pyplot, no inline
backend) and the downloads are ``data:`` links.

The log may hold rows the guide never writes (an older writer, a row added by hand; the
``sessions`` rollup keeps a session's nodes even after its events are deleted), so whatever
it holds is only ever shown as text: charts draw labels without matplotlib's math text (a
``$`` in a node id is two dollar signs, not a formula) or LaTeX, tables escape every cell, and
the CSV downloads write a text cell that a spreadsheet would run as a formula with a leading
``'`` (numbers stay numbers). Each chart, table and the downloads are drawn on their own: one
that fails shows a short message in its place, the rest of the dashboard is still drawn.

It reads the store the guide writes to (``GUIDE_LOG_URL``, else ``$GUIDE_DATA_DIR``; the URL is
read by the log's own parser, ``widgets.log.parse_url``), opening an SQLite file read-only, and
never creates one: with no log yet it says so.

It speaks the flow's language: steps and answers are shown by their titles and labels in
``flow.yaml``, in the language chosen with "Labels" (ids stay in the CSV files, which are the
summary's tables as they are). A step or answer the log holds but the flow no longer has is shown
as "(removed) <id>", never dropped; the contact and path steps are the ones the flow gives those
roles, so renaming, adding or moving a step needs no change here.

By job: :mod:`.widget` (the widget, reading the log, :func:`dashboard`), :mod:`.charts`,
:mod:`.tables` (and the main numbers), :mod:`.flow_map`, :mod:`.export` (the CSV downloads),
:mod:`.words` (the flow's titles and labels), :mod:`.style` (the stylesheet, a failed part's
message). Every public name is importable from here.

This package imports pandas (through widgets.summary) and matplotlib; the guide never imports it.
"""

from .charts import (CHARTS, COLORS, PLAIN_TEXT, TICK_LABEL, channels_chart, funnel_chart,
                     languages_chart, plain_text, sessions_chart)
from .export import csv_file, csv_link, csv_links, spreadsheet_safe
from .flow_map import MAP_HEAD, NO_DOT, flow_map_part, map_suffix, map_traffic
from .style import CSS, attempt, failed
from .tables import NO_FOLLOWUPS, NO_OUTCOMES, TABLE_STYLES, kpis, styled_table, styled_tables
from .widget import LABEL_CHOICES, LANGUAGE_CHOICES, Dashboard, NoLog, dashboard, open_for_reading
from .words import REMOVED, Labels, labelled

__all__ = ["Dashboard", "dashboard", "open_for_reading", "NoLog", "Labels", "labelled", "REMOVED",
           "CHARTS", "COLORS", "PLAIN_TEXT", "TICK_LABEL", "channels_chart", "funnel_chart",
           "languages_chart", "plain_text", "sessions_chart", "csv_file", "csv_link", "csv_links",
           "spreadsheet_safe", "MAP_HEAD", "NO_DOT", "flow_map_part", "map_suffix", "map_traffic",
           "CSS", "attempt", "failed", "NO_FOLLOWUPS", "NO_OUTCOMES", "TABLE_STYLES", "kpis",
           "styled_table", "styled_tables", "LABEL_CHOICES", "LANGUAGE_CHOICES"]
