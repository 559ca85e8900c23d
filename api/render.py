"""Server-side markdown rendering for the browser app: markdown-it-py, Pygments, nh3.

Model output is untrusted. :func:`render_markdown` turns it into HTML in three steps:
markdown-it-py (CommonMark + tables + strikethrough, raw HTML *disabled*) with the
mdit-py-plugins task lists, footnotes and math (``$…$``, ``$$…$$``, ``\\(…\\)``,
``\\[…\\]``, rendered to MathML by latex2mathml, on the server: no client library),
linkify-it-py for bare URLs, Pygments for fenced code (CSS classes, never inline styles,
so a strict Content-Security-Policy holds), and finally nh3, which keeps only an
allow-list of tags, attributes, classes and URL schemes (http, https, mailto, and
``data:`` for images only).

Images (:func:`image_html`): an attachment (``/api/attachment?…``), a workspace file
(``/api/file/raw?…``) and a ``data:`` PNG/JPEG/GIF/WebP are shown inline; a relative path
is a workspace file, shown as ``<img data-ws-path="…">`` whose ``src`` the page fills in
for the open session; a remote image is never fetched (the CSP says ``img-src 'self'
data: blob:``): it becomes a link labelled with its alt text and host. Anything else
(``javascript:``, ``file:``, an SVG ``data:`` URL) keeps only its alt text. Task-list
checkboxes are always ``<input type="checkbox" disabled>``; footnote ids carry a
per-text prefix so two replies on one page never share one.

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
  light by default and dark under ``<html data-theme="dark">`` (the page's theme).
"""
from __future__ import annotations

import functools
import hashlib
import html
import re
import threading
import time
from urllib.parse import unquote, urlsplit

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
MAX_MATH_DELIMITERS = 2_000     # "$", "\\(" and "\\[" of one text
MAX_FORMULA_CHARS = 2_000       # a longer formula is shown as its source
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
    "h5", "h6", "hr", "i", "img", "input", "kbd", "li", "ol", "p", "pre", "s", "section", "span",
    "strong", "sub", "sup", "table", "tbody", "td", "th", "thead", "tr", "ul",
} | {  # what latex2mathml writes (presentation MathML)
    "math", "menclose", "merror", "mfrac", "mi", "mmultiscripts", "mn", "mo", "mover", "mpadded", "mphantom",
    "mprescripts", "mroot", "mrow", "ms", "mspace", "msqrt", "mstyle", "msub", "msubsup", "msup", "mtable",
    "mtd", "mtext", "mtr", "munder", "munderover", "none", "semantics", "annotation",
}
MATHML_ATTRIBUTES = {
    "accent", "accentunder", "align", "close", "columnalign", "columnlines", "columnspacing", "depth",
    "display", "displaystyle", "fence", "form", "height", "largeop", "linethickness", "lspace", "mathsize",
    "mathvariant", "maxsize", "minsize", "movablelimits", "notation", "open", "rowalign", "rowlines",
    "rowspacing", "rspace", "scriptlevel", "separator", "separators", "stretchy", "symmetric", "width",
    "xmlns", "encoding",
}
# Image sources shown inline: this server's attachments and workspace files, data: rasters.
_OWN_IMAGE = re.compile(r"/api/(?:attachment|file/raw)\?[^\s\"'<>\\]*")
_DATA_IMAGE = re.compile(r"data:image/(?:png|jpeg|gif|webp);base64,[A-Za-z0-9+/=%]*")
_FOOTNOTE_ID = re.compile(r"fn(?:ref)?-[0-9a-f]{10}-\d+(?::\d+)?")
_RELATIVE = re.compile(r"(?![a-zA-Z][a-zA-Z0-9+.-]*:)(?!/)(?!\\)[^?#]+")
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


def image_html(src: str, alt: str) -> str:
    """The HTML of a markdown image (see the module docstring): inline for this server's
    files and ``data:`` rasters, ``data-ws-path`` for a workspace path, a link naming
    the host for a remote image, the alt text alone for anything else."""
    alt_attr = html.escape(alt, quote=True)
    if _OWN_IMAGE.fullmatch(src) or _DATA_IMAGE.fullmatch(src):
        return f'<img src="{html.escape(src, quote=True)}" alt="{alt_attr}" loading="lazy">'
    parts = urlsplit(src)
    if parts.scheme in ("http", "https") and parts.hostname:
        label = f"{alt or 'image'} ({parts.hostname})"
        return (f'<a class="remote-image" href="{html.escape(src, quote=True)}" target="_blank">'
                f'{html.escape(label)}</a>')
    if src and _RELATIVE.fullmatch(src) and ".." not in src.split("/"):
        return f'<img data-ws-path="{html.escape(unquote(src), quote=True)}" alt="{alt_attr}" loading="lazy">'
    return html.escape(alt)


def _image(self, tokens, idx, options, env) -> str:
    token = tokens[idx]
    alt = self.renderInlineAsText(token.children or [], options, env)
    return image_html(str(token.attrGet("src") or ""), alt)


def _math_html(content: str, display: bool) -> str:
    """MathML for the LaTeX ``content`` (latex2mathml); its source in ``<code>`` when it
    is too long or does not convert."""
    if len(content) <= MAX_FORMULA_CHARS:
        try:
            return _tools().latex(content.strip(), display="block" if display else "inline")
        except Exception:  # latex2mathml raises many kinds on input it does not understand
            pass
    code = f'<code class="math-source">{html.escape(content)}</code>'
    return f'<div class="math-block">{code}</div>\n' if display else code


def _math_inline(self, tokens, idx, options, env) -> str:
    return _math_html(tokens[idx].content, False)


def _math_block(self, tokens, idx, options, env) -> str:
    return f'<div class="math-block">{_math_html(tokens[idx].content, True)}</div>\n'


def _checkbox_attrs(tag: str, attr: str, value: str) -> str | None:
    """nh3's attribute filter: image sources and footnote ids on their allow-lists;
    ``data:`` only for images."""
    if tag == "img" and attr == "src":
        return value if _OWN_IMAGE.fullmatch(value) or _DATA_IMAGE.fullmatch(value) else None
    if attr == "href" and value.strip().lower().startswith("data:"):
        return None
    if attr == "id":
        return value if _FOOTNOTE_ID.fullmatch(value) else None
    return value


def _table_open(self, tokens, idx, options, env) -> str:
    return '<div class="table-wrap"><table>\n'


def _table_close(self, tokens, idx, options, env) -> str:
    return "</table></div>\n"


def _new_tab(state) -> None:
    """Core rule: links open in a new tab, except footnote links within the page."""
    stack = list(state.tokens)
    while stack:
        token = stack.pop()
        if token.children:
            stack.extend(token.children)
        if token.type == "link_open" and not str(token.attrGet("href") or "").startswith("#"):
            token.attrSet("target", "_blank")


def _align_to_class(state) -> None:
    """Core rule: table cell alignment as a class, since a strict CSP forbids inline styles."""
    for token in state.tokens:
        if token.type in ("th_open", "td_open"):
            style = str(token.attrs.pop("style", ""))
            if style.startswith("text-align:"):
                token.attrs["class"] = "align-" + style.split(":", 1)[1].strip()


def _build_parser(MarkdownIt):
    from mdit_py_plugins.dollarmath import dollarmath_plugin
    from mdit_py_plugins.footnote import footnote_plugin
    from mdit_py_plugins.tasklists import tasklists_plugin
    from mdit_py_plugins.texmath import texmath_plugin

    md = MarkdownIt("commonmark", {"html": False, "linkify": True, "typographer": False,
                                   "maxNesting": MAX_NESTING})
    md.enable(["table", "strikethrough", "linkify"])
    # "$5 and $10" stays text: no space or digit next to an inner "$"
    md.use(dollarmath_plugin, allow_space=False, allow_digits=False, allow_labels=False, double_inline=True)
    md.use(texmath_plugin, delimiters="brackets")
    md.use(tasklists_plugin)
    md.use(footnote_plugin)
    md.core.ruler.push("align_to_class", _align_to_class)
    md.core.ruler.push("new_tab", _new_tab)
    md.add_render_rule("fence", _fence)
    md.add_render_rule("code_block", _indented_code)
    md.add_render_rule("image", _image)
    for name in ("math_inline", "math_inline_double"):
        md.add_render_rule(name, _math_inline)
    for name in ("math_block", "math_block_eqno", "math_block_label"):
        md.add_render_rule(name, _math_block)
    md.add_render_rule("table_open", _table_open)
    md.add_render_rule("table_close", _table_close)
    return md


_TOOLS_LOCK = threading.Lock()
_TOOLS: SimpleNamespace | None = None


def _tools() -> SimpleNamespace:
    """markdown-it-py (and its plugins), Pygments, latex2mathml and nh3, imported and set
    up once, on first use (imports the server's start does not wait for; :func:`init_app`
    warms them up). Under a lock: two threads importing Pygments' formatters at once can
    see a half-initialised module."""
    global _TOOLS
    if _TOOLS is None:
        with _TOOLS_LOCK:
            if _TOOLS is None:
                _TOOLS = _load_tools()
    return _TOOLS


def _load_tools() -> SimpleNamespace:
    import nh3
    from latex2mathml.converter import convert as latex_to_mathml
    from markdown_it import MarkdownIt
    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import get_lexer_by_name
    from pygments.token import STANDARD_TYPES
    from pygments.util import ClassNotFound

    token_classes = {c for c in STANDARD_TYPES.values() if c}
    mathml = {tag: MATHML_ATTRIBUTES for tag in ALLOWED_TAGS if tag.startswith("m") and tag != "math"}
    cleaner = nh3.Cleaner(
        tags=ALLOWED_TAGS,
        attributes={"a": {"href", "title", "id"}, "ol": {"start"}, "li": {"id"},
                    "img": {"src", "alt", "title", "loading", "data-ws-path"}, "input": {"checked"},
                    "math": MATHML_ATTRIBUTES, **mathml},
        attribute_filter=_checkbox_attrs,
        allowed_classes={
            "span": token_classes | {"code-lang"},
            "div": {"code-block", "code-head", "table-wrap", "math-block"},
            "pre": {"hl"},
            "th": _ALIGN_CLASSES,
            "td": _ALIGN_CLASSES,
            "a": {"remote-image", "footnote-backref"},
            "code": {"math-source"},
            "ul": {"contains-task-list"}, "ol": {"footnotes-list"},
            "li": {"task-list-item", "footnote-item"},
            "input": {"task-list-item-checkbox"},
            "sup": {"footnote-ref"}, "hr": {"footnotes-sep"}, "section": {"footnotes"},
        },
        url_schemes={"http", "https", "mailto", "data"},
        link_rel="noopener noreferrer nofollow",
        tag_attribute_values={"a": {"target": {"_blank"}}},
        set_tag_attribute_values={"input": {"type": "checkbox", "disabled": "disabled"}},
    )
    return SimpleNamespace(md=_build_parser(MarkdownIt), cleaner=cleaner, formatter=HtmlFormatter(nowrap=True),
                           latex=latex_to_mathml,
                           html_formatter=HtmlFormatter, highlight=highlight, get_lexer_by_name=get_lexer_by_name,
                           ClassNotFound=ClassNotFound)


def _render(text: str) -> str:
    t = _tools()
    doc_id = hashlib.sha1(text.encode("utf-8", "surrogatepass")).hexdigest()[:10]  # footnote ids
    return t.cleaner.clean(t.md.render(text, {"docId": doc_id}))


@functools.lru_cache(maxsize=4096)
def _render_cached(text: str) -> str:
    return _render(text)


def render_markdown(text: str) -> str:
    """Sanitised HTML for markdown ``text`` (model output or any untrusted string).

    Safe to insert with ``innerHTML``: no scripts, event handlers, inline styles,
    iframes, remote images, SVG or ``javascript:`` URLs survive. Links open in a
    new tab with ``rel="noopener noreferrer nofollow"``. Unbounded: callers that take
    untrusted input use :func:`render_bounded`.
    """
    if len(text) <= CACHE_TEXT_CHARS:
        return _render_cached(text)
    return _render(text)


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
    if text.count("$") + text.count("\\(") + text.count("\\[") > MAX_MATH_DELIMITERS:
        return f"more than {MAX_MATH_DELIMITERS} math delimiters"
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
    """Pygments colours for ``.hl`` blocks: light, then dark under ``<html data-theme="dark">``."""
    def token_rules(style: str) -> list[str]:
        # Token colours only: the block's own background and layout belong to app.css.
        defs = _tools().html_formatter(style=style).get_style_defs(".hl")
        return [line for line in defs.splitlines() if line.startswith(".hl .")]

    light = "\n".join(token_rules(LIGHT_STYLE))
    dark = "\n".join(':root[data-theme="dark"] ' + line for line in token_rules(DARK_STYLE))
    return (f"/* Pygments styles {LIGHT_STYLE} (light) and {DARK_STYLE} (dark: the page's theme, js/theme.js) */\n"
            f"{light}\n{dark}\n")


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
    render_markdown("*warm* `up` $x^2$\n\n```python\nx = 1\n```\n\n| a |\n|---|\n| b |\n")


def init_app(app: Flask) -> None:
    """Register the render blueprint (called by :func:`api.create_app`) and warm the
    renderer up in a background thread."""
    app.register_blueprint(render_bp)
    threading.Thread(target=_warm_up, name="render-warm-up", daemon=True).start()
