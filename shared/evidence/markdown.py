"""The evidence report as GitHub-flavoured Markdown, rendered from the layout model. Pure."""

from __future__ import annotations

import re
from collections.abc import Iterable
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
    neutralise_bidi,
)

_MD_ESCAPE = re.compile(r"([\\`*_\[\]<>|~&#!])")
_MD_BLOCK_START = re.compile(r"^(\s*)([-+=>]|\d+[.)])")
_NEWLINES = re.compile(r"\r\n|\r|\n")
_MD_CODE_SAFE = re.compile(r"[A-Za-z0-9 ._:$@/-]+")


def md_escape(text: str) -> str:
    """Inline-safe Markdown: punctuation backslash-escaped, pipes escaped, newlines as <br>."""
    return _NEWLINES.sub("<br>", _MD_ESCAPE.sub(r"\\\1", neutralise_bidi(text)))


def _md_block_text(text: str) -> str:
    return _MD_BLOCK_START.sub(lambda m: m.group(1) + "\\" + m.group(2), md_escape(text), count=1)


def _md_part(part: Part) -> str:
    if isinstance(part, Badge):
        return f"**{TONE_SYMBOLS[part.tone]} {md_escape(part.text)}**"
    if isinstance(part, Pairs):
        return "<br>".join(f"{md_escape(label)}: {md_escape(value)}" for label, value in part.items)
    if isinstance(part, Note):
        return f"_Note: {md_escape(part.text)}_"
    if isinstance(part, Link):
        return md_escape(part.text)
    if isinstance(part, Code):
        return f"`{part.text}`" if _MD_CODE_SAFE.fullmatch(part.text) else md_escape(part.text)
    return md_escape(part)


def _md_cell(cell: Cell) -> str:
    parts = cell if isinstance(cell, tuple) else (cell,)
    return "<br>".join(_md_part(part) for part in parts if part != "") or " "


def _md_row(cells: Iterable[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _md_blocks(blocks: list[Block], out: list[str]) -> None:
    for block in blocks:
        if isinstance(block, Section):
            badge = f" ({_md_part(block.badge)})" if block.badge else ""
            out += ["#" * block.level + " " + md_escape(block.title) + badge, ""]
            _md_blocks(block.blocks, out)
        elif isinstance(block, Paragraph):
            parts = block.text if isinstance(block.text, tuple) else (block.text,)
            text = " ".join(_md_block_text(part) if isinstance(part, str) else _md_part(part) for part in parts)
            out += [("> " if block.kind == "note" else "") + text, ""]
        elif isinstance(block, Bullets):
            out += [f"**{md_escape(block.caption)}**", ""]
            out += [f"- {_md_block_text(item)}" for item in block.items] + [""]
        elif isinstance(block, Facts):
            out += [f"**{md_escape(block.caption)}**", "", _md_row(["Item", "Value"]), _md_row(["---", "---"])]
            out += [_md_row([md_escape(label), _md_cell(value)]) for label, value in block.rows] + [""]
        elif isinstance(block, Table):
            out += [
                f"**{md_escape(block.caption)}**",
                "",
                _md_row(md_escape(c) for c in block.columns),
                _md_row("---" for _ in block.columns),
            ]
            out += [_md_row(_md_cell(cell) for cell in row) for row in block.rows] + [""]
            if block.total > len(block.rows):
                out += [f"… and {block.total - len(block.rows)} more; the JSON evidence has all.", ""]


def render_markdown(document: dict[str, Any]) -> str:
    """The evidence report as GitHub-flavoured Markdown."""
    title, blocks = build(document)
    out = [f"# {md_escape(title)}", ""]
    _md_blocks(blocks, out)
    out.append(footer(document))
    return "\n".join(out).rstrip() + "\n"
