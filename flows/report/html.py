"""The report page: one HTML file with its styles, charts, data and script inline.

Nothing is fetched: no CDN, no font, no image URL (the favicon is an empty data
URI), so the page opens from disk on an offline machine. The index table's rows
travel as JSON in a ``<script type="application/json">`` block and a small
script draws, sorts and filters them; every other part is plain HTML and SVG.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from html import escape
from typing import Any

from flows.report.svg import STATUS_COLORS, STATUS_NAMES
from tasks.units import human_bytes, human_count

SECTIONS = [
    ("What is there", ["files-by-type", "bytes-by-type", "files-by-extractor", "bytes-by-extractor"]),
    ("Sizes and ages", ["size-distribution", "mtime-timeline"]),
    ("Extraction outcomes", ["outcomes", "outcomes-by-extractor", "error-types"]),
    ("Where the bytes are", ["largest-files", "busiest-dirs", "biggest-dirs"]),
]

CSS = """
:root { --ink:#1f2933; --muted:#66788a; --line:#e4e7eb; --bg:#f7f8fa; --card:#fff; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif; color:var(--ink);
       background:var(--bg); }
header { padding:20px 28px 8px; }
h1 { font-size:22px; margin:0 0 4px; }
h2 { font-size:17px; margin:28px 0 10px; }
.sub { color:var(--muted); font-size:13px; word-break:break-all; }
main { padding:0 28px 40px; }
.cards { display:flex; flex-wrap:wrap; gap:10px; margin:14px 0 4px; }
.card { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:10px 14px; min-width:120px; }
.card b { display:block; font-size:20px; }
.card span { color:var(--muted); font-size:12px; }
.grid { display:grid; grid-template-columns:repeat(auto-fit,minmax(460px,1fr)); gap:14px; }
figure.chart { margin:0; background:var(--card); border:1px solid var(--line); border-radius:8px; padding:12px; }
figcaption { font-weight:600; margin-bottom:8px; }
figure.chart svg { width:100%; height:auto; max-height:520px; }
table { border-collapse:collapse; width:100%; background:var(--card); font-size:13px; }
th, td { border-bottom:1px solid var(--line); padding:5px 8px; text-align:left; vertical-align:top; }
th { background:#eef1f4; position:sticky; top:0; cursor:pointer; user-select:none; white-space:nowrap; }
th[aria-sort=ascending]::after { content:" ▲"; } th[aria-sort=descending]::after { content:" ▼"; }
td.num { text-align:right; white-space:nowrap; font-variant-numeric:tabular-nums; }
td.path { word-break:break-all; }
td.err { color:#9b2c2c; max-width:420px; }
.badge { display:inline-block; padding:0 6px; border-radius:9px; color:#fff; font-size:12px; white-space:nowrap; }
.tablewrap { max-height:640px; overflow:auto; border:1px solid var(--line); border-radius:8px; }
.tools { display:flex; gap:12px; align-items:center; margin:8px 0; color:var(--muted); }
input[type=search] { padding:5px 8px; width:320px; border:1px solid #cbd2d9; border-radius:6px; }
a { color:#2563a8; }
"""

SCRIPT = """
(function () {
  var data = JSON.parse(document.getElementById('index-data').textContent);
  var rows = data.rows, href = data.groups_href, colors = data.status_colors, names = data.status_names;
  var root = data.root || '';
  var body = document.querySelector('#index-table tbody'), count = document.getElementById('index-count');
  var filter = document.getElementById('index-filter'), sortCol = 0, sortDir = 1;
  function human(n) {
    var u = ['B', 'KB', 'MB', 'GB', 'TB'], i = 0;
    while (Math.abs(n) >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return i ? n.toFixed(1) + ' ' + u[i] : n + ' B';
  }
  function when(t) { return t == null ? '' : new Date(t * 1000).toISOString().slice(0, 19).replace('T', ' '); }
  function cell(tr, text, cls) {
    var td = document.createElement('td'); td.textContent = text == null ? '' : text;
    if (cls) td.className = cls; tr.appendChild(td); return td;
  }
  function draw() {
    var q = filter.value.toLowerCase(), frag = document.createDocumentFragment(), shown = 0;
    for (var i = 0; i < rows.length; i++) {
      var r = rows[i];
      if (q && (r[0] + ' ' + (r[4] || '') + ' ' + r[5] + ' ' + (r[6] || '')).toLowerCase().indexOf(q) < 0) continue;
      var tr = document.createElement('tr');
      var a = document.createElement('a'); a.href = href + '/' + r[7] + '.json'; a.title = r[0];
      a.textContent = root && r[0].indexOf(root) === 0 ? r[0].slice(root.length) : r[0];
      var td = cell(tr, '', 'path'); td.appendChild(a);
      cell(tr, human(r[1]), 'num').title = r[1] + ' bytes';
      cell(tr, when(r[2]), 'num'); cell(tr, r[3]); cell(tr, r[4]);
      var b = document.createElement('span'); b.className = 'badge'; b.textContent = names[r[5]] || r[5];
      b.style.background = colors[r[5]] || '#888'; cell(tr, '').appendChild(b);
      cell(tr, r[6], 'err'); frag.appendChild(tr); shown++;
    }
    body.replaceChildren(frag);
    count.textContent = shown.toLocaleString() + ' rows shown';
  }
  function sortBy(col) {
    sortDir = col === sortCol ? -sortDir : (col === 1 || col === 2 ? -1 : 1); sortCol = col;
    rows.sort(function (x, y) {
      var a = x[col], b = y[col];
      if (a == null) return 1; if (b == null) return -1;
      return (a < b ? -1 : a > b ? 1 : 0) * sortDir;
    });
    document.querySelectorAll('#index-table th').forEach(function (th, i) {
      th.setAttribute('aria-sort', i === col ? (sortDir > 0 ? 'ascending' : 'descending') : 'none');
    });
    draw();
  }
  document.querySelectorAll('#index-table th').forEach(function (th, i) {
    th.addEventListener('click', function () { sortBy(i); });
  });
  filter.addEventListener('input', draw);
  draw();
})();
"""

COLUMNS = ["path", "size", "modified (UTC)", "ext", "extractor", "status", "error"]


def _card(value: str, label: str) -> str:
    return f'<div class="card"><b>{escape(value)}</b><span>{escape(label)}</span></div>'


def _cards(facts: dict[str, Any]) -> str:
    files, status = facts["files"], facts["status"]

    def pct(n: int) -> str:
        return f"{100 * n / files:.1f}%" if files else "-"

    tl = facts["timeline"]
    span = ""
    if tl.get("labels"):
        span = tl["labels"][0] if len(tl["labels"]) == 1 else f"{tl['labels'][0]} … {tl['labels'][-1]}"
    cards = [
        _card(human_count(files), "files"), _card(human_bytes(facts["bytes"]), "total size"),
        _card(human_count(facts["groups"]), "groups"),
        _card(pct(status["ok"]), f"extracted ({human_count(status['ok'])})"),
        _card(human_count(status["error"]), "failed"), _card(human_count(status["unknown"]), "unknown type"),
        _card(human_count(status["skipped"]), "done earlier"),
    ]
    if span:
        cards.append(_card(span, "modified"))
    return '<div class="cards">' + "".join(cards) + "</div>"


def _errors_table(facts: dict[str, Any], group_href: Callable[[str], str]) -> str:
    top = facts["errors"]["top"]
    if not top:
        return ""
    rows = "".join(
        f'<tr><td class="num">{human_count(e["files"])}</td><td>{escape(e["type"] or "")}</td>'
        f'<td>{escape(e["extractor"] or "")}</td><td class="err">{escape(e["message"])}</td>'
        f'<td class="path"><a href="{escape(group_href(e["group_id"]))}">{escape(e["example"])}</a></td></tr>'
        for e in top)
    head = "".join(f"<th>{h}</th>" for h in ("files", "type", "extractor", "message (first seen)", "example"))
    return (f'<h3>Top error messages</h3><table id="top-errors"><thead><tr>{head}</tr></thead>'
            f"<tbody>{rows}</tbody></table>")


def _json_script(element_id: str, data: Any) -> str:
    text = json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return f'<script type="application/json" id="{element_id}">{text}</script>'


def render_page(facts: dict[str, Any], charts: dict[str, tuple[str, str]], groups_href: str) -> str:
    """The whole report as one HTML string."""

    def group_href(gid: str) -> str:
        return f"{groups_href}/{gid}.json"

    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<link rel="icon" href="data:,">',
        f"<title>Xtract report: {escape(facts['root'] or facts['out_dir'])}</title>",
        f"<style>{CSS}</style></head><body>",
        f"<header><h1>Xtract report: {escape(facts['root'] or '/')}</h1>",
        f'<div class="sub">metadata <code>{escape(facts["out_dir"])}</code> · generated '
        f'{escape(facts["generated_at"])} from index.parquet in {facts["seconds"]:.1f}s</div>',
        _cards(facts), "</header><main>",
    ]
    for title, ids in SECTIONS:
        parts.append(f"<section><h2>{escape(title)}</h2><div class=\"grid\">")
        for cid in ids:
            caption, svg = charts[cid]
            parts.append(f'<figure class="chart" id="chart-{cid}"><figcaption>{escape(caption)}</figcaption>'
                         f"{svg}</figure>")
        parts.append("</div>")
        if title == "Extraction outcomes":
            parts.append(_errors_table(facts, group_href))
        parts.append("</section>")
    table = facts["table"]
    head = "".join(f'<th aria-sort="none">{escape(c)}</th>' for c in COLUMNS)
    parts += [
        "<section><h2>Index</h2>",
        f'<div class="tools"><input type="search" id="index-filter" placeholder="filter by path, extractor, '
        f'status or error"><span id="index-count"></span><span>· {escape(table["note"])}; paths under '
        f'{escape(facts["root"] or "/")}; click a header to sort, a path for its group metadata</span></div>',
        f'<div class="tablewrap"><table id="index-table"><thead><tr>{head}</tr></thead><tbody></tbody></table></div>',
        "</section></main>",
        _json_script("index-data", {"rows": table["rows"], "groups_href": groups_href, "root": facts["root"],
                                    "status_colors": STATUS_COLORS, "status_names": STATUS_NAMES}),
        f"<script>{SCRIPT}</script>",
        f'<footer class="sub" style="padding:0 28px 20px">prefect-xtract · {datetime.now(UTC):%Y-%m-%d}</footer>',
        "</body></html>",
    ]
    return "\n".join(parts)
