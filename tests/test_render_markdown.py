"""Markdown features of POST /api/render (api/render.py) and what the sanitiser lets
through: images by source, task lists, bare URLs, strikethrough, footnotes, math as
MathML, tables, and hostile inputs aimed at each of them."""
from __future__ import annotations

from html.parser import HTMLParser

import pytest

from api.render import ALLOWED_TAGS


class Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.found: list[tuple[str, dict]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.found.append((tag, dict(attrs)))

    def handle_startendtag(self, tag, attrs):
        self.found.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)


def rendered(server, text: str) -> tuple[str, list[tuple[str, dict]], str]:
    r = server.post("/api/render", {"text": text})
    assert r.status_code == 200, r.text
    html = r.json()["html"]
    p = Tags()
    p.feed(html)
    return html, p.found, "".join(p.text).strip()


def of(tags, name):
    return [attrs for tag, attrs in tags if tag == name]


def test_own_files_and_data_images_show_inline(live_server):
    _, tags, _ = rendered(live_server, "![shot](/api/attachment?session_id=s1&id=abc) "
                                       "![ws](/api/file/raw?session_id=s1&path=a.png) "
                                       "![dot](data:image/png;base64,iVBORw0KGgo=)")
    assert [(i["src"], i["alt"]) for i in of(tags, "img")] == [
        ("/api/attachment?session_id=s1&id=abc", "shot"), ("/api/file/raw?session_id=s1&path=a.png", "ws"),
        ("data:image/png;base64,iVBORw0KGgo=", "dot")]


def test_a_relative_image_is_a_workspace_file_the_page_resolves(live_server):
    _, tags, _ = rendered(live_server, "![chart](out/chart%201.png) ![up](../secret.png)")
    assert of(tags, "img") == [{"data-ws-path": "out/chart 1.png", "alt": "chart", "loading": "lazy"}]


def test_a_remote_image_is_a_link_naming_its_host_and_never_loaded(live_server):
    _, tags, text = rendered(live_server, "![a cat](https://cdn.example.org/cat.png)")
    assert not of(tags, "img")
    [link] = of(tags, "a")
    assert link["href"] == "https://cdn.example.org/cat.png" and link["class"] == "remote-image"
    assert text == "a cat (cdn.example.org)"


@pytest.mark.parametrize("src", ["javascript:alert(1)", "data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+",
                                 "data:text/html;base64,PHNjcmlwdD4=", "file:///etc/passwd",
                                 "//evil.example/x.png", "/api/session?session_id=x"])
def test_hostile_image_sources_never_become_an_img_with_that_src(live_server, src):
    _, tags, _ = rendered(live_server, f"![x]({src})")
    for attrs in of(tags, "img"):
        assert "src" not in attrs or attrs["src"].startswith(("/api/attachment?", "/api/file/raw?", "data:image/png"))
    for attrs in of(tags, "a"):
        assert attrs["href"].startswith(("http://", "https://")), attrs


def test_task_lists_are_disabled_checkboxes(live_server):
    _, tags, _ = rendered(live_server, "- [x] done\n- [ ] todo\n")
    boxes = of(tags, "input")
    assert len(boxes) == 2
    assert all(b["type"] == "checkbox" and b["disabled"] == "disabled" for b in boxes)
    assert "checked" in boxes[0] and "checked" not in boxes[1]
    assert ("ul", {"class": "contains-task-list"}) in tags


def test_bare_urls_become_links_that_open_safely(live_server):
    _, tags, _ = rendered(live_server, "See www.example.com and https://example.org/a?b=1.")
    assert [(a["href"], a["target"], a["rel"]) for a in of(tags, "a")] == [
        ("http://www.example.com", "_blank", "noopener noreferrer nofollow"),
        ("https://example.org/a?b=1", "_blank", "noopener noreferrer nofollow")]


def test_strikethrough_and_tables_that_scroll(live_server):
    html, tags, _ = rendered(live_server, "~~gone~~\n\n| a | b |\n|:-|-:|\n| 1 | 2 |\n")
    assert "<s>gone</s>" in html
    assert ("div", {"class": "table-wrap"}) in tags and ("th", {"class": "align-left"}) in tags


def test_footnotes_link_within_the_page_with_ids_unique_to_the_text(live_server):
    html, tags, _ = rendered(live_server, "Claim[^1].\n\n[^1]: The source.\n")
    refs = [a for a in of(tags, "a") if a.get("href", "").startswith("#")]
    assert len(refs) == 2 and all("target" not in a for a in refs)
    ids = {a["id"] for a in of(tags, "a") if "id" in a} | {li["id"] for li in of(tags, "li") if "id" in li}
    assert {r["href"][1:] for r in refs} == ids
    _, other, _ = rendered(live_server, "Other[^1].\n\n[^1]: Another.\n")
    assert ids.isdisjoint({li["id"] for li in of(other, "li") if "id" in li})


def test_math_becomes_mathml_and_keeps_thin_spaces(live_server):
    html, tags, _ = rendered(live_server, "Inline $a\\,b$ and \\(x^2\\).\n\n$$\\frac{1}{2}$$\n")
    maths = of(tags, "math")
    assert [m["display"] for m in maths] == ["inline", "inline", "block"]
    assert ("mspace", {"width": "0.167em"}) in tags          # \, is a thin space, not a lost comma
    assert "mfrac" in [t for t, _ in tags] and "msup" in [t for t, _ in tags]


def test_money_is_not_math(live_server):
    _, tags, text = rendered(live_server, "It costs $5 and $10 today.")
    assert not of(tags, "math") and text == "It costs $5 and $10 today."


def test_math_that_does_not_convert_shows_its_source(live_server):
    _, tags, text = rendered(live_server, "$$\\begin{nonsense$$")
    assert ("code", {"class": "math-source"}) in tags and "\\begin{nonsense" in text


@pytest.mark.parametrize("attack", [
    "<img src=x onerror=alert(1)>",
    "<svg><script>alert(1)</script></svg>",
    "[click](javascript:alert(1))",
    "$x$ <math><mi><img src=x onerror=alert(1)></mi></math>",
    "$\\href{javascript:alert(1)}{x}$",
    "- [ ] <input type=text onfocus=alert(1) autofocus>",
    "[^1]\n\n[^1]: <a id=x onclick=alert(1)>y</a>",
    "![x\" onerror=\"alert(1)](/api/attachment?session_id=a&id=b)",
    "![x](/api/attachment?session_id=a&id=b\"onerror=\"alert(1))",
])
def test_hostile_inputs_leave_only_allowed_tags_and_attributes(live_server, attack):
    html, tags, _ = rendered(live_server, attack)
    for tag, attrs in tags:
        assert tag in ALLOWED_TAGS, tag
        assert not any(name.startswith("on") or name in ("style", "autofocus") for name in attrs), (tag, attrs)
        assert not str(attrs.get("href", "")).lower().startswith(("javascript:", "data:")), attrs
        if tag == "img":
            assert attrs.get("src", "/api/attachment?").startswith(("/api/attachment?", "/api/file/raw?")), attrs
        if tag == "input":
            assert attrs["type"] == "checkbox" and attrs["disabled"] == "disabled", attrs
    assert "<script" not in html and "<svg" not in html
