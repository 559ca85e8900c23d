"""Server-side markdown rendering for the browser app: markdown-it-py, Pygments, nh3.

Model output is untrusted. :func:`render_markdown` turns it into HTML in three steps:
markdown-it-py (CommonMark + tables + strikethrough, raw HTML *disabled*, images shown
as links so no remote fetch ever happens), Pygments for fenced code (CSS classes, never
inline styles, so a strict Content-Security-Policy holds), and finally nh3, which keeps
only an allow-list of tags, attributes, classes and URL schemes (http, https, mailto).

Endpoints (blueprint ``render``):

- ``POST /api/render`` ``{text: str}`` → ``{html: str, plain: bool}``, or ``{texts: [str]}``
  → ``{html: [str], plain: [bool]}`` (one round trip for a page of messages; at most
  :data:`MAX_BATCH` texts). 400 on a missing or mistyped field; 413 when the body is
  larger than the server's ``max_body_bytes``.

What one request may cost is bounded. A text is rendered as markdown only when it is at
most :data:`MAX_RENDER_CHARS` characters, its tables hold at most :data:`MAX_TABLE_CELLS`
cells, it holds at most :data:`MAX_OPEN_BRACKETS` ``[`` and
:data:`MAX_EMPHASIS_DELIMITERS` of ``*``, ``_``, ``~`` (links and emphasis are what cost
most per character: ~10 µs per ``[``), and the request has not yet spent
:data:`RENDER_BUDGET_SECONDS` rendering; otherwise its HTML is the escaped text in
``<pre class="plain-text">`` and its ``plain`` flag is true, so the page can offer to show
it in pieces. Block nesting (quotes, lists) beyond :data:`MAX_NESTING` levels is rendered
flat by markdown-it itself.
- ``GET /api/render/highlight.css`` → the Pygments colours for ``.hl`` code blocks,
  light by default and dark under ``prefers-color-scheme: dark``.
"""
from __future__ import annotations

import functools
import html
import re
import threading
import time

from types import SimpleNamespace

from flask import Blueprint, Flask, Response, jsonify

from .httputil import ApiError, json_body

render_bp = Blueprint("render", __name__)

MAX_BATCH = 500
# Bounds on what rendering one text may cost (see the module docstring).
MAX_RENDER_CHARS = 200_000
MAX_TABLE_CELLS = 5_000
MAX_OPEN_BRACKETS = 5_000
MAX_EMPHASIS_DELIMITERS = 20_000
MAX_NESTING = 20
RENDER_BUDGET_SECONDS = 1.0
# Code longer than this is shown plain: highlighting cost grows with size, reading does not.
MAX_HIGHLIGHT_CHARS = 100_000
# Texts shorter than this are cached (a saved message is rendered again on every open).
CACHE_TEXT_CHARS = 20_000
LIGHT_STYLE = "default"
DARK_STYLE = "github-dark"

_ALIGN_CLASSES = {"align-left", "align-center", "align-right"}

ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "del", "div", "em", "h1", "h2", "h3", "h4",
    "h5", "h6", "hr", "i", "kbd", "li", "ol", "p", "pre", "s", "span", "strong", "sub", "sup",
    "table", "tbody", "td", "th", "thead", "tr", "ul",
}
def _code_block(code: str, lang: str) -> str:
    """The HTML of one code block: a header naming the language, then ``<pre class="hl">``."""
    t = _tools()
    lexer = None
    if lang and len(code) <= MAX_HIGHLIGHT_CHARS:
        try:
            lexer = t.get_lexer_by_name(lang, stripnl=False, ensurenl=False)
        except t.ClassNotFound:
            lexer = None
    body = t.highlight(code, lexer, t.formatter) if lexer is not None else html.escape(code)
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


def _build_parser(MarkdownIt):
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False,
                                   "maxNesting": MAX_NESTING})
    md.enable(["table", "strikethrough"])
    md.core.ruler.push("align_to_class", _align_to_class)
    md.add_render_rule("fence", _fence)
    md.add_render_rule("code_block", _indented_code)
    md.add_render_rule("image", _image_as_link)
    md.add_render_rule("table_open", _table_open)
    md.add_render_rule("table_close", _table_close)
    return md


@functools.cache
def _tools() -> SimpleNamespace:
    """markdown-it-py, Pygments and nh3, imported and set up on first use (about 60 ms
    of imports the server's start does not wait for; :func:`init_app` warms it up)."""
    import nh3
    from markdown_it import MarkdownIt
    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import get_lexer_by_name
    from pygments.token import STANDARD_TYPES
    from pygments.util import ClassNotFound

    token_classes = {c for c in STANDARD_TYPES.values() if c}
    cleaner = nh3.Cleaner(
        tags=ALLOWED_TAGS,
        attributes={"a": {"href", "title"}, "ol": {"start"}},
        allowed_classes={
            "span": token_classes | {"code-lang"},
            "div": {"code-block", "code-head", "table-wrap"},
            "pre": {"hl"},
            "th": _ALIGN_CLASSES,
            "td": _ALIGN_CLASSES,
        },
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
        set_tag_attribute_values={"a": {"target": "_blank"}},
    )
    return SimpleNamespace(md=_build_parser(MarkdownIt), cleaner=cleaner, formatter=HtmlFormatter(nowrap=True),
                           html_formatter=HtmlFormatter, highlight=highlight, get_lexer_by_name=get_lexer_by_name,
                           ClassNotFound=ClassNotFound)


@functools.lru_cache(maxsize=4096)
def _render_cached(text: str) -> str:
    t = _tools()
    return t.cleaner.clean(t.md.render(text))


def render_markdown(text: str) -> str:
    """Sanitised HTML for markdown ``text`` (model output or any untrusted string).

    Safe to insert with ``innerHTML``: no scripts, event handlers, inline styles,
    iframes, images or ``javascript:`` URLs survive. Links open in a
    new tab with ``rel="noopener noreferrer nofollow"``. Unbounded: callers that take
    untrusted input use :func:`render_bounded`.
    """
    if len(text) <= CACHE_TEXT_CHARS:
        return _render_cached(text)
    t = _tools()
    return t.cleaner.clean(t.md.render(text))


# A table's delimiter row once quote markers and indentation are stripped: "| --- | :-: |".
_DELIMITER_ROW = re.compile(r"\|?[ \t]*:?-+:?[ \t]*(?:\|[ \t]*:?-+:?[ \t]*)*\|?[ \t]*")
_QUOTE_INDENT = " \t>"


def table_cells(text: str) -> int:
    """An upper bound on the cells markdown-it would make of ``text``'s tables: for each
    delimiter row, its columns times its lines up to the next blank line (markdown-it pads
    every row to the header's width, which is how 1.5 KB becomes 64,000 empty cells).
    Stops counting past :data:`MAX_TABLE_CELLS`."""
    lines = text.split("\n")
    total, i = 0, 0
    while i < len(lines) and total <= MAX_TABLE_CELLS:
        row = lines[i].lstrip(_QUOTE_INDENT)
        i += 1
        if "|" not in row or "-" not in row or not _DELIMITER_ROW.fullmatch(row):
            continue
        columns = len(re.findall(r"-+", row))
        rows = 1  # the header
        while i < len(lines) and lines[i].strip(_QUOTE_INDENT):
            rows += 1
            i += 1
        total += columns * rows
    return total


def too_costly(text: str) -> str | None:
    """Why rendering ``text`` as markdown would cost too much, or None (see the docstring)."""
    if len(text) > MAX_RENDER_CHARS:
        return f"longer than {MAX_RENDER_CHARS} characters"
    if text.count("[") > MAX_OPEN_BRACKETS:
        return f"more than {MAX_OPEN_BRACKETS} '['"
    if text.count("*") + text.count("_") + text.count("~") > MAX_EMPHASIS_DELIMITERS:
        return f"more than {MAX_EMPHASIS_DELIMITERS} emphasis delimiters"
    if "|" in text and "-" in text and table_cells(text) > MAX_TABLE_CELLS:
        return f"tables with more than {MAX_TABLE_CELLS} cells"
    return None


def plain_html(text: str) -> str:
    """``text`` escaped, as one ``<pre class="plain-text">`` block (safe for innerHTML)."""
    return f'<pre class="plain-text">{html.escape(text, quote=False)}</pre>'


def render_bounded(texts: list[str], budget_seconds: float = RENDER_BUDGET_SECONDS) -> tuple[list[str], list[bool]]:
    """``(html, plain)`` for each text: markdown when :func:`too_costly` finds nothing and
    less than ``budget_seconds`` of rendering have been spent on the earlier texts,
    else :func:`plain_html` with ``plain`` true."""
    out, plain = [], []
    deadline = time.monotonic() + budget_seconds
    for text in texts:
        if too_costly(text) is None and time.monotonic() < deadline:
            out.append(render_markdown(text))
            plain.append(False)
        else:
            out.append(plain_html(text))
            plain.append(True)
    return out, plain


@functools.lru_cache(maxsize=1)
def highlight_css() -> str:
    """Pygments colours for ``.hl`` blocks: light, then dark inside a media query."""
    def token_rules(style: str) -> list[str]:
        # Token colours only: the block's own background and layout belong to app.css.
        defs = _tools().html_formatter(style=style).get_style_defs(".hl")
        return [line for line in defs.splitlines() if line.startswith(".hl .")]

    light = "\n".join(token_rules(LIGHT_STYLE))
    dark = "\n".join("  " + line for line in token_rules(DARK_STYLE))
    return (f"/* Pygments styles {LIGHT_STYLE} (light) and {DARK_STYLE} (dark) */\n{light}\n"
            f"@media (prefers-color-scheme: dark) {{\n{dark}\n}}\n")


@render_bp.post("/api/render")
def render_endpoint():
    """``{text}`` → ``{html, plain}`` or ``{texts: [..]}`` → ``{html: [..], plain: [..]}``;
    400 on bad input; costly texts come back as plain text (see the module docstring)."""
    body = json_body()
    if "texts" in body:
        texts = body["texts"]
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            raise ApiError("field 'texts' must be a list of strings")
        if len(texts) > MAX_BATCH:
            raise ApiError(f"at most {MAX_BATCH} texts per request")
        out, plain = render_bounded(texts)
        return jsonify(html=out, plain=plain)
    text = body.get("text")
    if not isinstance(text, str):
        raise ApiError("field 'text' must be a string" if "text" in body else "missing field 'text'")
    out, plain = render_bounded([text])
    return jsonify(html=out[0], plain=plain[0])


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
