"""The evidence report as one self-contained HTML file, rendered from the layout model. Pure."""

from __future__ import annotations

import html
import re
from typing import Any

from shared.evidence.layout import (
    TONE_SYMBOLS,
    Badge,
    Block,
    Bullets,
    Cell,
    Code,
    Facts,
    Link,
    Note,
    Pairs,
    Paragraph,
    Part,
    Section,
    Table,
    build,
    footer,
    format_timestamp,
    neutralise_bidi,
)

_LONG_TOKEN = re.compile(r"\S{41,}")


def _e(text: Any) -> str:
    """Escaped for an attribute value or RCDATA (<title>)."""
    return html.escape(neutralise_bidi(str(text)), quote=True)


def _t(text: Any) -> str:
    """Escaped text content; very long unbroken tokens get break opportunities so tables keep their width."""
    out, last = [], 0
    text = str(text)
    for match in _LONG_TOKEN.finditer(text):
        token = match.group()
        out += [_e(text[last:match.start()]), "<wbr>".join(_e(token[i:i + 20]) for i in range(0, len(token), 20))]
        last = match.end()
    out.append(_e(text[last:]))
    return "".join(out)


def _html_part(part: Part) -> str:
    if isinstance(part, Badge):
        return (f'<span class="badge {part.tone}"><span aria-hidden="true">{TONE_SYMBOLS[part.tone]} </span>'
                f"{_t(part.text)}</span>")
    if isinstance(part, Pairs):
        if part.flow:
            return '<dl class="flow">' + " ".join(f"<div><dt>{_t(label)}</dt> <dd>{_t(value)}</dd></div>"
                                                 for label, value in part.items) + "</dl>"
        return '<dl class="pairs">' + " ".join(f"<dt>{_t(label)}</dt> <dd>{_t(value)}</dd>"
                                               for label, value in part.items) + "</dl>"
    if isinstance(part, Note):
        return f'<p class="note"><strong>Note:</strong> {_t(part.text)}</p>'
    if isinstance(part, Link):
        return f'<a class="line" href="#{_e(part.anchor)}">{_t(part.text)}</a>'
    if isinstance(part, Code):
        return f'<code class="line">{_t(part.text)}</code>'
    return _t(part)


def _html_cell(cell: Cell) -> str:
    if not isinstance(cell, tuple):
        return _html_part(cell)
    return " ".join(_html_part(part) if not isinstance(part, str) else f'<span class="line">{_t(part)}</span>'
                    for part in cell if part != "")


def _html_blocks(blocks: list[Block], out: list[str]) -> None:
    for block in blocks:
        if isinstance(block, Section):
            badge = f" {_html_part(block.badge)}" if block.badge else ""
            cls = "control" if block.level == 3 else "part"
            out.append(f'<section class="{cls}" id="{_e(block.anchor)}" aria-labelledby="{_e(block.anchor)}-h">'
                       f'<h{block.level} id="{_e(block.anchor)}-h">{_t(block.title)}{badge}</h{block.level}>')
            _html_blocks(block.blocks, out)
            out.append("</section>")
        elif isinstance(block, Paragraph):
            if block.kind == "note" and isinstance(block.text, Note):
                out.append(_html_part(block.text))
            else:
                out.append(f'<p class="{block.kind}">{_html_cell(block.text)}</p>')
        elif isinstance(block, Bullets):
            out.append(f'<h4>{_t(block.caption)}</h4><ul class="warnings">'
                       + "".join(f"<li>{_t(item)}</li>" for item in block.items) + "</ul>")
        elif isinstance(block, Facts):
            out.append(f'<table class="facts"><caption>{_t(block.caption)}</caption><tbody>'
                       + "".join(f'<tr><th scope="row">{_t(label)}</th><td>{_html_cell(value)}</td></tr>'
                                 for label, value in block.rows) + "</tbody></table>")
        elif isinstance(block, Table):
            head = "".join(f'<th scope="col">{_t(column)}</th>' for column in block.columns)
            rows = []
            for row in block.rows:
                cells = [f'<th scope="row">{_html_cell(cell)}</th>' if i == 0 and block.row_header
                         else f"<td>{_html_cell(cell)}</td>" for i, cell in enumerate(row)]
                rows.append("<tr>" + "".join(cells) + "</tr>")
            cols = ("<colgroup>" + "".join(f'<col style="width:{int(w)}%">' for w in block.widths) + "</colgroup>"
                    if block.widths else "")
            fixed = ' class="fixed"' if block.widths else ""
            out.append(f"<table{fixed}><caption>{_t(block.caption)}</caption>{cols}<thead><tr>{head}</tr></thead>"
                       f"<tbody>{''.join(rows)}</tbody></table>")
            if block.total > len(block.rows):
                out.append(f'<p class="more">… and {block.total - len(block.rows)} more; '
                           "the JSON evidence has all.</p>")


CSS = """
:root{color-scheme:light}
*{box-sizing:border-box}
body{margin:0 auto;max-width:1240px;padding:24px 28px;color:#1f2328;background:#fff;
 font:14px/1.45 system-ui,-apple-system,"Segoe UI","DejaVu Sans","Liberation Sans",Arial,sans-serif}
h1{font-size:24px;margin:0 0 12px}
h2{font-size:19px;margin:28px 0 10px;padding-bottom:4px;border-bottom:2px solid #d0d7de}
h3{font-size:16px;margin:22px 0 8px}
h4{font-size:14px;margin:14px 0 6px}
section.control~section.control{border-top:1px solid #d0d7de;padding-top:4px}
code{font:12.5px/1.4 ui-monospace,"DejaVu Sans Mono","Liberation Mono",Consolas,monospace;color:#3d444d}
table{border-collapse:collapse;width:100%;margin:6px 0 14px;font-size:13px}
caption{text-align:left;font-weight:600;padding:4px 0;caption-side:top}
th,td{border:1px solid #d0d7de;padding:5px 7px;text-align:left;vertical-align:top;overflow-wrap:break-word}
thead th{background:#eef1f4}
tbody th{background:#f6f8fa;font-weight:600}
tbody tr:nth-child(even) td{background:#fbfcfd}
table.facts th{width:16em}
.line{display:block}
dl.pairs{display:grid;grid-template-columns:max-content minmax(0,1fr);gap:0 8px;margin:0}
dl.pairs dt{font-weight:600}
dl.pairs dd{margin:0}
dl.flow{margin:0}
dl.flow dt{display:inline;font-weight:600}
dl.flow dd{display:inline;margin:0}
table.fixed{table-layout:fixed}
td .badge,th .badge{font-size:12px}
.badge{display:inline-block;padding:0 7px;border:1px solid;border-radius:4px;font-weight:700;white-space:nowrap}
.ok{background:#dff3e4;color:#14532d;border-color:#1a7f37}
.bad{background:#fde2e1;color:#82071e;border-color:#cf222e}
.err{background:#fff1c2;color:#6b3d00;border-color:#bf8700}
.info{background:#e3edfc;color:#0a3069;border-color:#0969da}
.neutral{background:#eef1f4;color:#1f2328;border-color:#8c959f}
p.verdict{font-size:16px;padding:10px 12px;border:1px solid #d0d7de;border-radius:6px;background:#f6f8fa}
p.verdict .badge{font-size:16px;margin-right:8px}
.note{font-size:12.5px;color:#3d444d;margin:6px 0;padding:6px 9px;border-left:4px solid #0969da;background:#f1f6fe}
td .note{margin:6px 0 0}
.more{font-style:italic}
ul.warnings{margin:4px 0 12px;padding-left:22px}
footer{margin-top:28px;padding-top:8px;border-top:1px solid #d0d7de;font-size:12px;color:#57606a}
@page{size:A4 landscape;margin:12mm}
@media print{
 body{max-width:none;padding:0;font-size:10pt}
 table{font-size:9pt}
 td .badge,th .badge{font-size:8pt;padding:0 4px}
 #summary{break-before:page}
 thead{display:table-header-group}
 tr,.badge,.note{break-inside:avoid}
 h2,h3,h4,caption{break-after:avoid}
 a{color:inherit;text-decoration:none}
 *{-webkit-print-color-adjust:exact;print-color-adjust:exact}
}
"""


def render_html(document: dict[str, Any]) -> str:
    """The evidence report as one self-contained HTML file: inline CSS, no scripts, nothing loaded from elsewhere."""
    title, blocks = build(document)
    started = format_timestamp(document.get("started_at"))
    out = ['<!DOCTYPE html>', '<html lang="en">', "<head>", '<meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           '<meta name="generator" content="mailbox-audit-guard">',
           f"<title>{_e(title)} · {_e(started)}</title>", f"<style>{CSS}</style>", "</head>", "<body>",
           f"<header><h1>{_t(title)}</h1></header>", "<main>"]
    _html_blocks(blocks, out)
    out += ["</main>", f"<footer><p>{_t(footer(document))}</p></footer>", "</body>", "</html>"]
    return "\n".join(out) + "\n"
