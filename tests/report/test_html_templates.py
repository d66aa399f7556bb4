"""The Jinja2 set-up behind the HTML report: autoescape, loud failures, the stylesheet and the deployed files."""

from __future__ import annotations

import fnmatch
import re
import subprocess
import sys

import jinja2
import pytest

from shared.evidence.html import ENVIRONMENT, TEMPLATES, render_html
from shared.evidence.layout import Paragraph, build
from tests.report.documents import check_document
from tests.report.htmlcheck import parse
from tests.support.tenant import REPO

TEMPLATE_NAMES = sorted(ENVIRONMENT.list_templates())


def with_template(name: str, source: str) -> jinja2.Environment:
    """The report's environment (same filters, tests, autoescape, undefined) with one template replaced."""
    return ENVIRONMENT.overlay(loader=jinja2.ChoiceLoader([jinja2.DictLoader({name: source}), ENVIRONMENT.loader]))


def test_the_templates_are_there_and_compile():
    assert {"report.html.j2", "blocks.html.j2", "report.css"} <= set(TEMPLATE_NAMES)
    for name in TEMPLATE_NAMES:
        ENVIRONMENT.get_template(name)  # a syntax error in any of them fails here, used or not


def test_autoescape_is_on_for_report_templates():
    """select_autoescape() would leave *.html.j2 unescaped: a plain expression must escape on its own."""
    probe = with_template("probe.html.j2", "{{ name }}").get_template("probe.html.j2")
    assert probe.render(name='<script>alert(1)</script> "x"') == "&lt;script&gt;alert(1)&lt;/script&gt; &#34;x&#34;"


def test_no_template_marks_anything_safe_or_switches_escaping_off():
    for name in TEMPLATE_NAMES:
        source = (TEMPLATES / name).read_text(encoding="utf-8")
        assert not re.search(r"\|\s*safe\b", source), f"{name} uses |safe"
        assert not re.search(r"autoescape\s+false", source, flags=re.IGNORECASE), f"{name} turns autoescape off"


def test_a_typo_in_a_template_is_an_error_not_a_blank():
    source = (TEMPLATES / "blocks.html.j2").read_text(encoding="utf-8")
    assert "p.tone" in source
    broken = with_template("blocks.html.j2", source.replace("p.tone", "p.tonne"))
    _, blocks = build(check_document())
    with pytest.raises(jinja2.UndefinedError, match="tonne"):
        broken.get_template("report.html.j2").render(title="t", started="s", body=blocks, footer="f")
    with pytest.raises(jinja2.UndefinedError, match="titel"):
        with_template("report.html.j2", "<title>{{ titel|value }}</title>").get_template("report.html.j2").render(
            title="t"
        )


def test_a_block_kind_without_a_template_is_an_error_not_dropped():
    blocks = ENVIRONMENT.get_template("blocks.html.j2").module.blocks  # type: ignore[attr-defined]
    assert str(blocks([Paragraph("<hello>")])) == '<p class="p">&lt;hello&gt;</p>\n'
    with pytest.raises(TypeError, match="no template for a dict block"):
        blocks([{"caption": "not a block"}])


def test_the_stylesheet_is_inlined_verbatim():
    css = (TEMPLATES / "report.css").read_text(encoding="utf-8")
    assert ".badge{" in css
    html = render_html(check_document())
    assert f"<style>\n{css}</style>" in html
    assert [tag for tag, _ in parse(html).elements].count("style") == 1


def test_templates_load_from_the_package_whatever_the_working_directory(tmp_path):
    """The Functions host does not run from the repository root; the templates must be found anyway."""
    probe = (
        "import sys; from shared.evidence.html import render_html; "
        "sys.stdout.write(render_html({'organization': 'fabrikam'}))"
    )
    run = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "<h1>Mailbox audit evidence: fabrikam</h1>" in run.stdout


def test_the_deployment_package_includes_the_templates():
    """.funcignore decides what `func azure functionapp publish` uploads: none of its patterns may drop a template."""
    patterns = [
        line.strip()
        for line in (REPO / ".funcignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert not [p for p in patterns if p.startswith("!")], "negated patterns: extend this check"
    files = [path.relative_to(REPO) for path in TEMPLATES.iterdir() if path.is_file()]
    assert {path.name for path in files} >= {"report.html.j2", "blocks.html.j2", "report.css"}
    for path in files:
        parts = path.parts
        for pattern in patterns:
            bare = pattern.strip("/")
            if "/" in bare:  # anchored at the root: compare with the path's leading components
                hit = any(fnmatch.fnmatch("/".join(parts[:n]), bare) for n in range(1, len(parts) + 1))
            else:  # matches a file or directory of that name anywhere
                hit = any(fnmatch.fnmatch(part, bare) for part in parts)
            assert not hit, f".funcignore pattern {pattern!r} excludes {path}"
