"""A small, safe Markdown subset for the catalog's MARKDOWN help blocks.

Everything is HTML-escaped first; then paragraphs, `- ` lists, **bold**, `code` and
[links](https://…) are recognised. Links must be https and open in a new tab without
a referrer. No raw HTML ever passes through.
"""

from __future__ import annotations

import re

from markupsafe import Markup, escape

_LINK = re.compile(r"\[([^\]\n]+)\]\((https://[^)\s\"'<>]+)\)")
_BOLD = re.compile(r"\*\*([^*\n]+)\*\*")
_CODE = re.compile(r"`([^`\n]+)`")


def render_markdown(text: str) -> Markup:
    blocks = [block for block in re.split(r"\n\s*\n", text.strip()) if block.strip()]
    html = []
    for block in blocks:
        lines = [line.strip() for line in block.splitlines() if line.strip()]
        if all(line.startswith(("- ", "* ")) for line in lines):
            items = "".join(f"<li>{_inline(line[2:])}</li>" for line in lines)
            html.append(f"<ul>{items}</ul>")
        else:
            html.append(f"<p>{_inline(' '.join(lines))}</p>")
    return Markup("".join(html))  # noqa: S704 - every piece was escaped by _inline


def _inline(text: str) -> str:
    escaped = str(escape(text))
    escaped = _CODE.sub(r"<code>\1</code>", escaped)
    escaped = _BOLD.sub(r"<strong>\1</strong>", escaped)
    return _LINK.sub(
        r'<a href="\2" target="_blank" rel="noopener noreferrer">\1</a>', escaped
    )
