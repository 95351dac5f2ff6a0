"""`serving/report.html`: the marts as pictures, in one self-contained file.

Charts are inline SVG written here from plain numbers: no chart library, no script, no font or
image fetched from anywhere, so the file opens offline, from a mail attachment or a file share,
and shows exactly what the serving copy held when it was published.

`charts.py` turns numbers into SVG (`bar_chart`, `line_chart`, `heatmap`) and rows into HTML
(`html_table`); `queries.py` reads the serving copy into one `OrgReport` per workspace;
`page.py` assembles the page (`render_report`) and writes it (`write_report`, the only function
with side effects). The Dagster asset reuses `page.headline_charts_markdown` to show the same
headline charts in the UI.
"""
