"""Server-side markdown rendering for the browser app: markdown-it-py, Pygments, nh3.

Model output is untrusted. :func:`render_markdown` turns it into HTML in three steps:
markdown-it-py (CommonMark + tables + strikethrough, raw HTML *disabled*, images shown
as links so no remote fetch ever happens), Pygments for fenced code (CSS classes, never
inline styles, so a strict Content-Security-Policy holds), and finally nh3, which keeps
only an allow-list of tags, attributes, classes and URL schemes (http, https, mailto).

Endpoints (blueprint ``render``):

- ``POST /api/render`` ``{text: str}`` → ``{html: str}``, or ``{texts: [str]}`` →
  ``{html: [str]}`` (one round trip for a page of messages; at most
  :data:`MAX_BATCH` texts). 400 on a missing or mistyped field; 413 when the body is
  larger than the server's ``max_body_bytes``.
- ``GET /api/render/highlight.css`` → the Pygments colours for ``.hl`` code blocks,
  light by default and dark under ``prefers-color-scheme: dark``.
"""
from __future__ import annotations

import functools
import html
import threading

import nh3
from flask import Blueprint, Flask, Response, jsonify
from markdown_it import MarkdownIt
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.token import STANDARD_TYPES
from pygments.util import ClassNotFound

from .httputil import ApiError, json_body

render_bp = Blueprint("render", __name__)

MAX_BATCH = 500
# Code longer than this is shown plain: highlighting cost grows with size, reading does not.
MAX_HIGHLIGHT_CHARS = 100_000
# Texts shorter than this are cached (a saved message is rendered again on every open).
CACHE_TEXT_CHARS = 20_000
LIGHT_STYLE = "default"
DARK_STYLE = "github-dark"

_FORMATTER = HtmlFormatter(nowrap=True)
_TOKEN_CLASSES = {c for c in STANDARD_TYPES.values() if c}
_ALIGN_CLASSES = {"align-left", "align-center", "align-right"}

ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "del", "div", "em", "h1", "h2", "h3", "h4",
    "h5", "h6", "hr", "i", "kbd", "li", "ol", "p", "pre", "s", "span", "strong", "sub", "sup",
    "table", "tbody", "td", "th", "thead", "tr", "ul",
}
_CLEANER = nh3.Cleaner(
    tags=ALLOWED_TAGS,
    attributes={"a": {"href", "title"}, "ol": {"start"}},
    allowed_classes={
        "span": _TOKEN_CLASSES | {"code-lang"},
        "div": {"code-block", "code-head", "table-wrap"},
        "pre": {"hl"},
        "th": _ALIGN_CLASSES,
        "td": _ALIGN_CLASSES,
    },
    url_schemes={"http", "https", "mailto"},
    link_rel="noopener noreferrer nofollow",
    set_tag_attribute_values={"a": {"target": "_blank"}},
)


def _code_block(code: str, lang: str) -> str:
    """The HTML of one code block: a header naming the language, then ``<pre class="hl">``."""
    lexer = None
    if lang and len(code) <= MAX_HIGHLIGHT_CHARS:
        try:
            lexer = get_lexer_by_name(lang, stripnl=False, ensurenl=False)
        except ClassNotFound:
            lexer = None
    body = highlight(code, lexer, _FORMATTER) if lexer is not None else html.escape(code)
    label = html.escape(lang or "text")
    return (f'<div class="code-block"><div class="code-head"><span class="code-lang">{label}</span></div>'
            f'<pre class="hl"><code>{body}</code></pre></div>\n')


def _fence(self, tokens, idx, options, env) -> str:
    token = tokens[idx]
    lang = token.info.strip().split(maxsplit=1)[0] if token.info.strip() else ""
    return _code_block(token.content, lang[:40])


def _indented_code(self, tokens, idx, options, env) -> str:
    return _code_block(tokens[idx].content, "")


def _image_as_link(self, tokens, idx, options, env) -> str:
    """An image becomes a link to it: no remote load, no tracking pixel, no CSP violation."""
    token = tokens[idx]
    alt = self.renderInlineAsText(token.children or [], options, env) or "image"
    src = html.escape(str(token.attrGet("src") or ""), quote=True)
    return f'<a href="{src}">{html.escape(alt)}</a>'


def _table_open(self, tokens, idx, options, env) -> str:
    return '<div class="table-wrap"><table>\n'


def _table_close(self, tokens, idx, options, env) -> str:
    return "</table></div>\n"


def _align_to_class(state) -> None:
    """Core rule: table cell alignment as a class, since a strict CSP forbids inline styles."""
    for token in state.tokens:
        if token.type in ("th_open", "td_open"):
            style = str(token.attrs.pop("style", ""))
            if style.startswith("text-align:"):
                token.attrs["class"] = "align-" + style.split(":", 1)[1].strip()


def _build_parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.enable(["table", "strikethrough"])
    md.core.ruler.push("align_to_class", _align_to_class)
    md.add_render_rule("fence", _fence)
    md.add_render_rule("code_block", _indented_code)
    md.add_render_rule("image", _image_as_link)
    md.add_render_rule("table_open", _table_open)
    md.add_render_rule("table_close", _table_close)
    return md


_MD = _build_parser()


@functools.lru_cache(maxsize=4096)
def _render_cached(text: str) -> str:
    return _CLEANER.clean(_MD.render(text))


def render_markdown(text: str) -> str:
    """Sanitised HTML for markdown ``text`` (model output or any untrusted string).

    Safe to insert with ``innerHTML``: no scripts, event handlers, inline styles,
    iframes, images or ``javascript:`` URLs survive. Links open in a
    new tab with ``rel="noopener noreferrer nofollow"``.
    """
    if len(text) <= CACHE_TEXT_CHARS:
        return _render_cached(text)
    return _CLEANER.clean(_MD.render(text))


@functools.lru_cache(maxsize=1)
def highlight_css() -> str:
    """Pygments colours for ``.hl`` blocks: light, then dark inside a media query."""
    def token_rules(style: str) -> list[str]:
        # Token colours only: the block's own background and layout belong to app.css.
        defs = HtmlFormatter(style=style).get_style_defs(".hl")
        return [line for line in defs.splitlines() if line.startswith(".hl .")]

    light = "\n".join(token_rules(LIGHT_STYLE))
    dark = "\n".join("  " + line for line in token_rules(DARK_STYLE))
    return (f"/* Pygments styles {LIGHT_STYLE} (light) and {DARK_STYLE} (dark) */\n{light}\n"
            f"@media (prefers-color-scheme: dark) {{\n{dark}\n}}\n")


@render_bp.post("/api/render")
def render_endpoint():
    """``{text}`` → ``{html}`` or ``{texts: [..]}`` → ``{html: [..]}``; 400 on bad input."""
    body = json_body()
    if "texts" in body:
        texts = body["texts"]
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            raise ApiError("field 'texts' must be a list of strings")
        if len(texts) > MAX_BATCH:
            raise ApiError(f"at most {MAX_BATCH} texts per request")
        return jsonify(html=[render_markdown(t) for t in texts])
    text = body.get("text")
    if not isinstance(text, str):
        raise ApiError("field 'text' must be a string" if "text" in body else "missing field 'text'")
    return jsonify(html=render_markdown(text))


@render_bp.get("/api/render/highlight.css")
def highlight_css_endpoint():
    """The code-highlighting stylesheet (text/css, cacheable for an hour)."""
    resp = Response(highlight_css(), mimetype="text/css")
    resp.headers["Cache-Control"] = "public, max-age=3600"
    return resp


def _warm_up() -> None:
    # The first render imports Pygments' lexer tables (~150 ms); do it before a user waits.
    render_markdown("*warm* `up`\n\n```python\nx = 1\n```\n\n| a |\n|---|\n| b |\n")


def init_app(app: Flask) -> None:
    """Register the render blueprint (called by :func:`api.create_app`) and warm the
    renderer up in a background thread."""
    app.register_blueprint(render_bp)
    threading.Thread(target=_warm_up, name="render-warm-up", daemon=True).start()
