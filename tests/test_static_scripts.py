"""The partner-side connect.js stays small and standalone; no portal script ever posts
a message to "*"."""

from __future__ import annotations

import re

from portal.resources import static_dir


def test_connect_js_is_under_5_kb_and_has_no_dependencies() -> None:
    source = (static_dir() / "connect.js").read_bytes()
    assert len(source) < 5 * 1024
    text = source.decode()
    assert not re.search(r"\bimport\b|\brequire\(|<script", text)
    assert "root.PortalConnect = {open: open" in text


def test_no_script_posts_to_every_origin() -> None:
    for path in static_dir().glob("*.js"):
        text = path.read_text()
        for call in re.findall(r"postMessage\(([^)]*)\)", text):
            assert not re.search(r"""["']\*["']""", call), (path.name, call)
    result_js = (static_dir() / "result.js").read_text()
    assert "postMessage(payload.message, origin)" in result_js
