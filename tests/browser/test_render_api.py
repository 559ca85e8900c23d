"""The server side of the browser app, over HTTP (no browser needed): markdown rendering
(POST /api/render) is sanitised, the page carries its CSRF meta tag, static files are
served from webui/ only."""
from __future__ import annotations

from html.parser import HTMLParser

import pytest

from api.render import ALLOWED_TAGS

ATTACKS = [
    "<script>window.pwned=1</script>",
    "<img src=x onerror=alert(1)>",
    "<iframe src='https://evil.example'></iframe>",
    "[click](javascript:alert(1))",
    "[data](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "![pixel](https://tracker.example/p.gif)",
    "<a href='javascript:alert(1)'>raw</a>",
    '<div style="position:fixed;inset:0">overlay</div>',
    "```html\n<script>alert(1)</script>\n```",
    "| a |\n|:-:|\n| <b onclick=alert(1)>x</b> |",
]


class Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.found: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.found.append((tag, dict(attrs)))


def parse(html: str) -> list[tuple[str, dict]]:
    p = Tags()
    p.feed(html)
    return p.found


def render(server, **body):
    r = server.post("/api/render", body)
    assert r.status_code == 200, r.text
    return r.json()["html"]


def test_markdown_renders_with_highlighted_code(live_server):
    html = render(live_server, text="Some **bold**\n\n```python\ndef f():\n    return 1\n```\n")
    tags = parse(html)
    assert ("strong", {}) in tags
    assert ("pre", {"class": "hl"}) in tags
    assert ("span", {"class": "k"}) in tags  # Pygments: `def` is a keyword
    assert '<span class="code-lang">python</span>' in html


@pytest.mark.parametrize("attack", ATTACKS)
def test_model_output_is_sanitised(live_server, attack):
    for tag, attrs in parse(render(live_server, text=attack)):
        assert tag in ALLOWED_TAGS, tag
        assert not any(name.startswith("on") or name in ("style", "src") for name in attrs), (tag, attrs)
        href = attrs.get("href", "")
        assert href == "" or href.startswith(("http://", "https://", "mailto:")), href


def test_links_open_safely_and_images_become_links(live_server):
    tags = parse(render(live_server, text="[site](https://example.com) ![pic](https://example.com/a.png)"))
    links = [attrs for tag, attrs in tags if tag == "a"]
    assert [a["href"] for a in links] == ["https://example.com", "https://example.com/a.png"]
    assert all(a["rel"] == "noopener noreferrer nofollow" and a["target"] == "_blank" for a in links)
    assert not any(tag == "img" for tag, _ in tags)


def test_batch_render_keeps_order(live_server):
    r = live_server.post("/api/render", {"texts": ["*one*", "", "**three**"]})
    assert r.status_code == 200
    assert r.json()["html"] == ["<p><em>one</em></p>\n", "", "<p><strong>three</strong></p>\n"]


@pytest.mark.parametrize("body", [{}, {"text": 3}, {"texts": "nope"}, {"texts": [1]}, {"texts": ["x"] * 501}])
def test_bad_render_input_is_a_400_json_error(live_server, body):
    r = live_server.post("/api/render", body)
    assert r.status_code == 400
    assert r.json()["error"]


def test_highlight_stylesheet_covers_light_and_dark(live_server):
    r = live_server.get("/api/render/highlight.css")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/css")
    assert ".hl .k {" in r.text and ':root[data-theme="dark"] .hl .k {' in r.text   # the page's theme (js/theme.js)


def test_page_has_csrf_and_limit_meta_and_no_inline_script(live_server):
    r = live_server.get("/")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
    tags = parse(r.text)
    [token] = [a["content"] for t, a in tags if t == "meta" and a.get("name") == "csrf-token"]
    assert token and "__" not in token                              # auth off: the server's page token
    assert ("meta", {"name": "max-message-bytes", "content": str(1024 * 1024)}) in tags  # --max-message-bytes
    scripts = [attrs for tag, attrs in tags if tag == "script"]
    assert scripts and all(a.get("src", "").startswith("/static/") for a in scripts)
    assert not any(name.startswith("on") or name == "style" for _, attrs in tags for name in attrs)


@pytest.mark.parametrize("path,status", [
    ("/static/js/app.js", 200), ("/static/favicon.svg", 200), ("/static/css/app.css", 200), ("/favicon.ico", 200),
    ("/static/__init__.py", 404), ("/static/%2e%2e/api/render.py", 404), ("/static/nope.js", 404),
])
def test_static_files_come_from_webui_only(live_server, path, status):
    r = live_server.get(path)
    assert r.status_code == status
    if path.endswith(".js") and status == 200:
        assert "javascript" in r.headers["Content-Type"]
