"""A strict reading of the HTML report with the standard library: structure, elements, tables and text."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser

VOID = {"meta", "link", "br", "wbr", "col", "img", "hr", "input", "source"}
ALLOWED_ELEMENTS = {
    "html",
    "head",
    "meta",
    "title",
    "style",
    "body",
    "header",
    "main",
    "footer",
    "section",
    "h1",
    "h2",
    "h3",
    "h4",
    "p",
    "span",
    "strong",
    "a",
    "code",
    "table",
    "caption",
    "colgroup",
    "col",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
    "dl",
    "dt",
    "dd",
    "div",
    "ul",
    "li",
    "wbr",
}
ALLOWED_ATTRIBUTES = {
    "lang",
    "charset",
    "name",
    "content",
    "class",
    "id",
    "aria-labelledby",
    "aria-hidden",
    "href",
    "scope",
    "style",
}


@dataclass
class Table:
    caption: str = ""
    section: str = ""  # id of the innermost enclosing <section>
    head: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)


class ReportParser(HTMLParser):
    """Collects problems (unbalanced tags, unexpected elements or attributes), tables, ids, links and text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []
        self.stack: list[str] = []
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.ids: list[str] = []
        self.tables: list[Table] = []
        self.text: list[str] = []
        self.badges: list[str] = []
        self.doctype: str | None = None
        self._table_stack: list[Table] = []
        self._cell: list[str] | None = None
        self._row: list[str] | None = None
        self._in_head_row = False
        self._caption: list[str] | None = None
        self._badge_depth: int | None = None
        self._badge: list[str] = []
        self._sections: list[tuple[int, str]] = []

    def handle_decl(self, decl: str) -> None:
        if self.elements:
            self.problems.append("doctype after the first element")
        self.doctype = decl

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = [name for name, _ in attrs]
        if len(set(names)) != len(names):
            self.problems.append(f"duplicate attribute on <{tag}>")
        attributes = dict(attrs)
        self.elements.append((tag, attributes))
        if tag not in ALLOWED_ELEMENTS:
            self.problems.append(f"unexpected element <{tag}>")
        for name in names:
            if name not in ALLOWED_ATTRIBUTES:
                self.problems.append(f"unexpected attribute {name} on <{tag}>")
        if "id" in attributes:
            self.ids.append(str(attributes["id"]))
        if tag == "th" and attributes.get("scope") not in ("col", "row"):
            self.problems.append("<th> without scope=col|row")
        if tag not in VOID:
            self.stack.append(tag)
        if tag == "section":
            self._sections.append((len(self.stack), str(attributes.get("id", ""))))
        if tag == "table":
            self._table_stack.append(Table(section=self._sections[-1][1] if self._sections else ""))
        elif tag == "caption":
            self._caption = []
        elif tag == "tr":
            self._row, self._in_head_row = [], self.stack[-2:-1] == ["thead"]
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []
        if tag == "span" and "badge" in str(attributes.get("class", "")).split():
            self._badge_depth, self._badge = len(self.stack), []

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in VOID:
            self.problems.append(f"self-closing non-void element <{tag}/>")
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes <{self.stack[-1] if self.stack else 'nothing'}>")
            return
        if self._sections and self._sections[-1][0] == len(self.stack):
            self._sections.pop()
        if self._badge_depth == len(self.stack):
            self.badges.append("".join(self._badge).strip())
            self._badge_depth = None
        self.stack.pop()
        table = self._table_stack[-1] if self._table_stack else None
        if tag == "caption" and table is not None and self._caption is not None:
            table.caption, self._caption = " ".join("".join(self._caption).split()), None
        elif tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None and table is not None:
            if self._in_head_row:
                table.head = self._row
            else:
                table.rows.append(self._row)
            self._row = None
        elif tag == "table" and table is not None:
            self.tables.append(self._table_stack.pop())

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        for sink in (self._cell, self._caption):
            if sink is not None:
                sink.append(data)
        if self._badge_depth is not None:
            self._badge.append(data)


def parse(document: str) -> ReportParser:
    parser = ReportParser()
    parser.feed(document)
    parser.close()
    if parser.stack:
        parser.problems.append(f"unclosed elements: {parser.stack}")
    return parser


def table(parser: ReportParser, caption_start: str, section: str | None = None) -> Table:
    """The one table whose caption starts so (in the section with that id, when given)."""
    found = [t for t in parser.tables if t.caption.startswith(caption_start) and section in (None, t.section)]
    assert len(found) == 1, f"{len(found)} tables captioned {caption_start!r}: {[t.caption for t in parser.tables]}"
    return found[0]
