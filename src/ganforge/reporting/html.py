"""``report.html``: the report as one self-contained page that opens in any browser, offline.

The same notes and tables as ``report.md`` (:mod:`ganforge.reporting.tables`), with every
table sortable by any column (click a header; numbers sort as numbers, ``—`` last; a link
``report.html#sort=runs/4/desc`` opens sorted by a column), and every
figure (the sample mosaic and each metric's curves) inlined as a base64 PNG, so the file can
be mailed or copied alone. A few lines of inline JavaScript sort; nothing is loaded from
anywhere.
"""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

from ganforge.reporting.runs import Run
from ganforge.reporting.summary import Group
from ganforge.reporting.tables import groups_rows, report_notes, runs_rows

STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px; color: #1d1d1f; }
h1 { font-size: 20px; margin: 0 0 8px; word-break: break-all; }
h2 { font-size: 16px; margin: 28px 0 8px; }
p { margin: 6px 0; }
code { background: #f2f2f4; padding: 1px 4px; border-radius: 3px; font-size: 12.5px; }
.warn { background: #fff4e5; border-left: 4px solid #f59e0b; padding: 6px 10px; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; font-size: 12.5px; white-space: nowrap; }
th, td { border: 1px solid #d8d8dc; padding: 4px 8px; text-align: right; }
th:first-child, td:first-child, th.text, td.text { text-align: left; }
th { background: #f2f2f4; cursor: pointer; user-select: none; position: sticky; top: 0; }
th:hover { background: #e4e4ea; }
th[aria-sort="ascending"]::after { content: " ▲"; }
th[aria-sort="descending"]::after { content: " ▼"; }
tr:nth-child(even) td { background: #fafafa; }
figure { display: inline-block; margin: 8px 16px 8px 0; vertical-align: top; }
figure img { max-width: 100%; border: 1px solid #e4e4ea; }
figcaption { font-size: 12px; color: #555; }
"""

# Click a header: sort its table by that column, numbers as numbers, missing values last.
SCRIPT = r"""
function cellKey(td) {
  const text = td.textContent.trim();
  const number = parseFloat(text.replace(/^⚠\s*/, ""));
  return text === "—" || text === "" ? null : (isNaN(number) || !/^[-+⚠\s]*[\d.]/.test(text) ? text : number);
}
document.querySelectorAll("table.sortable th").forEach(th => {
  th.addEventListener("click", () => {
    const column = th.cellIndex, table = th.closest("table"), body = table.tBodies[0];
    const ascending = th.getAttribute("aria-sort") !== "ascending";
    table.querySelectorAll("th").forEach(h => h.removeAttribute("aria-sort"));
    th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    const rows = Array.from(body.rows);
    rows.sort((a, b) => {
      const x = cellKey(a.cells[column]), y = cellKey(b.cells[column]);
      if (x === null || y === null) return (x === null) - (y === null);
      const order = typeof x === typeof y ? (x < y ? -1 : x > y ? 1 : 0) : (typeof x === "number" ? -1 : 1);
      return ascending ? order : -order;
    });
    rows.forEach(r => body.appendChild(r));
  });
});
// report.html#sort=runs/3 opens with the runs table sorted by its 4th column (#sort=runs/3/desc: descending).
const wanted = /^#sort=(\w+)\/(\d+)(\/desc)?$/.exec(decodeURIComponent(location.hash));
if (wanted) {
  const th = document.querySelectorAll(`#${wanted[1]} th`)[+wanted[2]];
  if (th) { th.click(); if (wanted[3]) th.click(); }
}
"""


def inline_markdown(text: str) -> str:
    """Escape ``text`` and turn Markdown's inline `code` into ``<code>``."""
    return re.sub(r"`([^`]*)`", r"<code>\1</code>", html.escape(text))


def _is_text(column: list[str]) -> bool:
    return not all(re.match(r"^[-+⚠\s]*[\d.]", v) or v == "—" for v in column)


def html_table(header: list[str], rows: list[list[str]], table_id: str) -> str:
    """A sortable table; text columns are left-aligned."""
    text = [_is_text([r[i] for r in rows]) if rows else True for i in range(len(header))]
    head = "".join(
        f'<th{" class=text" if t else ""} title="sort by {html.escape(h)}">{html.escape(h)}</th>'
        for h, t in zip(header, text, strict=True)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f"<td{' class=text' if t else ''}>{html.escape(v)}</td>" for v, t in zip(row, text, strict=True)
        )
        + "</tr>"
        for row in rows
    )
    return (
        f'<div class="scroll"><table class="sortable" id="{table_id}">'
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"
    )


def inline_png(path: Path) -> str:
    """``data:`` URI of a PNG file."""
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def report_html(
    groups: list[Group],
    runs: list[Run],
    metrics: list[str],
    root: Path,
    figures: list[Path],
    best: bool = True,
) -> str:
    """The whole ``report.html`` (see the module docstring).

    Args:
        groups: the groups of runs (:func:`~ganforge.reporting.summary.group_runs`).
        runs: every run.
        metrics: the metrics of the tables.
        root: the folder reported on (run folders are shown relative to it).
        figures: PNG files to inline, in order (the mosaic first).
        best: show each metric's best value and its iteration beside the final one.
    """
    notes = []
    for note in report_notes(groups, runs, root):
        if note.startswith("> "):
            notes.append(f'<p class="warn">{inline_markdown(note[2:])}</p>')
        elif "⚠" in note:
            notes.append(f'<p class="warn">{inline_markdown(note)}</p>')
        else:
            notes.append(f"<p>{inline_markdown(note)}</p>")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>Report: {html.escape(root.name)}</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>Report: {html.escape(str(root))}</h1>",
        *notes,
        "<h2>Groups (mean ± std across seeds)</h2>",
        html_table(*groups_rows(groups, metrics, best), "groups"),
        "<h2>Runs</h2>",
        html_table(*runs_rows(groups, metrics, root, best), "runs"),
    ]
    if figures:
        parts.append("<h2>Figures</h2>")
        for path in figures:
            caption = html.escape(path.stem)
            parts.append(
                f'<figure><img alt="{caption}" src="{inline_png(path)}"><figcaption>{caption}</figcaption></figure>'
            )
    parts += [f"<script>{SCRIPT}</script>", "</body></html>"]
    return "\n".join(parts) + "\n"
