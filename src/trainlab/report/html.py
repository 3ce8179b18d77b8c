"""``report.html``: a report's Markdown as one self-contained HTML file, to open in any browser or mail.

The Markdown is rendered by markdown-it-py (CommonMark with GitHub tables; it comes with ``rich``), every
image that refers to a file under the report folder is embedded as a ``data:`` URI (base64), and a short
script makes every table sortable: click a column header to sort by it (numbers as numbers, ``0.93 ± 0.01``
by its mean, ``–`` last), click again to reverse. Nothing is loaded from the network.
"""
from __future__ import annotations

import base64
import html
import re
from pathlib import Path

from markdown_it import MarkdownIt

MIME = {".png": "image/png", ".svg": "image/svg+xml", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}

STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 1200px; margin: 2em auto;
       padding: 0 1em; color: #222; line-height: 1.45; }
h1, h2, h3 { line-height: 1.2; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 2em; }
code { background: #f3f3f3; padding: 0 .25em; border-radius: 3px; }
table { border-collapse: collapse; margin: .8em 0 .3em; font-size: 90%; display: block; overflow-x: auto; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: left; white-space: nowrap; }
th { background: #f0f0f0; cursor: pointer; user-select: none; position: sticky; top: 0; }
th.asc::after { content: " \\25B2"; } th.desc::after { content: " \\25BC"; }
tr:nth-child(even) td { background: #fafafa; }
img { max-width: 100%; height: auto; display: block; margin: .8em 0 .2em; }
"""

SCRIPT = """
(function () {
  function key(text) {
    var t = text.trim();
    if (t === "" || t === "\\u2013" || t === "-") return null;
    var m = t.replace(/,/g, "").match(/^[-+]?(\\d+\\.?\\d*|\\.\\d+)(e[-+]?\\d+)?/i);
    return m ? parseFloat(m[0]) : t.toLowerCase();
  }
  function compare(a, b) {
    if (a === null) return b === null ? 0 : 1;
    if (b === null) return -1;
    if (typeof a === typeof b) return a < b ? -1 : a > b ? 1 : 0;
    return typeof a === "number" ? -1 : 1;
  }
  document.querySelectorAll("table").forEach(function (table) {
    var heads = table.querySelectorAll("thead th");
    heads.forEach(function (th, col) {
      th.title = "click to sort";
      th.addEventListener("click", function () {
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        var dir = th.classList.contains("asc") ? -1 : 1;
        heads.forEach(function (h) { h.classList.remove("asc", "desc"); });
        th.classList.add(dir === 1 ? "asc" : "desc");
        rows.sort(function (r, s) {
          var a = key(r.cells[col].textContent), b = key(s.cells[col].textContent);
          if (a === null || b === null) return compare(a, b);
          return dir * compare(a, b);
        });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  });
})();
"""

_IMG = re.compile(r'<img src="([^"]+)"')


def render(markdown: str, folder: str | Path, *, title: str = "Report") -> str:
    """The HTML page of ``markdown``; images with a relative path are read from ``folder`` and embedded
    (a missing file raises ``FileNotFoundError``: a report never refers to a figure it did not write)."""
    folder = Path(folder)
    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(markdown)

    def embed(match: re.Match[str]) -> str:
        src = html.unescape(match.group(1))
        if src.startswith(("data:", "http://", "https://")):
            return match.group(0)
        path = folder / src
        mime = MIME.get(path.suffix.lower(), "application/octet-stream")
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        return f'<img src="data:{mime};base64,{data}"'

    body = _IMG.sub(embed, body)
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{body}"
            f"<script>{SCRIPT}</script>\n</body>\n</html>\n")


def write_html(markdown: str, folder: str | Path, *, title: str = "Report", name: str = "report.html") -> Path:
    """Write :func:`render`'s page of ``markdown`` to ``folder/name``; return its path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(render(markdown, folder, title=title), encoding="utf-8")
    return path
