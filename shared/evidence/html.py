"""The evidence report as one self-contained HTML file, rendered from the layout model with Jinja2. Pure.

The templates and the stylesheet live in `templates/` (deployed with the package as files); the stylesheet is
inlined at render time. Autoescape is on for every template, undefined names raise (StrictUndefined), and every
value from the document goes through the `text` or `value` filter below, which escape it; nothing from the
document is marked safe.
"""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any, NoReturn

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from shared.evidence.layout import (
    TONE_SYMBOLS,
    Badge,
    Bullets,
    Code,
    Facts,
    Link,
    Note,
    Pairs,
    Paragraph,
    Section,
    Table,
    build,
    footer,
    format_timestamp,
    neutralise_bidi,
)

TEMPLATES = Path(__file__).with_name("templates")
_LONG_TOKEN = re.compile(r"\S{41,}")


def escape_value(text: Any) -> Markup:
    """Escaped for an attribute value or RCDATA (<title>), bidi controls shown as visible escapes.

    html.escape rather than MarkupSafe's escape: it writes &quot; and &#x27;, as the report always has.
    """
    return Markup(html.escape(neutralise_bidi(str(text)), quote=True))  # noqa: S704 - the input is escaped here


def escape_text(text: Any) -> Markup:
    """Escaped text content; very long unbroken tokens get break opportunities so tables keep their width."""
    out: list[str] = []
    last, text = 0, str(text)
    for match in _LONG_TOKEN.finditer(text):
        token = match.group()
        out += [
            escape_value(text[last : match.start()]),
            "<wbr>".join(escape_value(token[i : i + 20]) for i in range(0, len(token), 20)),
        ]
        last = match.end()
    out.append(escape_value(text[last:]))
    return Markup("".join(out))  # noqa: S704 - escaped pieces joined by our own <wbr>


def _unknown_block(block: object) -> NoReturn:
    raise TypeError(f"the HTML report has no template for a {type(block).__name__} block")


def _environment() -> Environment:
    environment = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,  # all templates: select_autoescape would switch it off for *.html.j2
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,  # deployed files do not change while the app runs: no stat per render
    )
    environment.filters.update(text=escape_text, value=escape_value)
    kinds: dict[str, type] = {
        "badge": Badge,
        "pairs": Pairs,
        "link": Link,
        "code": Code,
        "note": Note,
        "parts": tuple,
        "section": Section,
        "paragraph": Paragraph,
        "bullets": Bullets,
        "facts": Facts,
        "table": Table,
    }
    for name, kind in kinds.items():
        environment.tests[name] = lambda value, kind=kind: isinstance(value, kind)
    environment.globals.update(TONE_SYMBOLS=TONE_SYMBOLS, unknown_block=_unknown_block)
    return environment


ENVIRONMENT = _environment()  # built once per process; it caches the compiled templates


def render_html(document: dict[str, Any]) -> str:
    """The evidence report as one self-contained HTML file: inline CSS, no scripts, nothing loaded from elsewhere."""
    title, blocks = build(document)
    return ENVIRONMENT.get_template("report.html.j2").render(
        title=title, started=format_timestamp(document.get("started_at")), body=blocks, footer=footer(document)
    )
