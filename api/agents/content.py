"""A user message with attachments, as a model reads it (docs/architecture.md §5, §7).

:func:`user_content` turns the message text and its attached files into the ``content``
of an OpenAI-style user message:

- **images** (PNG, JPEG, GIF, WebP) become ``image_url`` parts with a ``data:`` URL, when
  the model takes images (``images=True``: the ``openai`` and ``hermes`` backends);
  otherwise (the embedded text-only model) a note names the image and says it cannot
  be seen;
- **text files** (``text/*``, JSON, XML, YAML, scripts, or any file that is valid UTF-8
  without NUL bytes) are inlined with their name, in a code fence;
- **PDF** is converted to text with pypdf, **Word .docx** and **OpenDocument .odt** with
  the standard library (their XML text runs); the result is inlined like a text file;
- anything else gets a note with its name, type and size.

All inlined text of one message shares one budget (:data:`TEXT_BUDGET_CHARS`); what is
cut is said in the text. The result is a string when there is no image part (every
chat API takes that), else a list of parts, text first.

An attachment is any object with ``name``, ``size``, ``mime`` and ``path`` (a
:class:`api.attachment_store.AttachmentFile`). Never imports the model layer.
"""
from __future__ import annotations

import base64
import re
import zipfile
from typing import Sequence

TEXT_BUDGET_CHARS = 200_000
IMAGE_TYPES = {"image/png", "image/jpeg", "image/gif", "image/webp"}
TEXT_TYPES = {"application/json", "application/xml", "application/javascript", "application/x-javascript",
              "application/x-yaml", "application/yaml", "application/toml", "application/x-sh",
              "application/x-python", "application/sql", "application/x-tex", "application/ld+json",
              "image/svg+xml"}
NOT_TEXT_PREFIXES = ("image/", "audio/", "video/", "font/")
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
ODT = "application/vnd.oasis.opendocument.text"
XML_MAX_BYTES = 32 * 1024 * 1024   # of a document's unpacked XML (a zip bomb stops here)
_BACKTICKS = re.compile(r"`+")
_DOCX_RUN = re.compile(rb"<w:t(?:\s[^>]*)?>([^<]*)</w:t>|</w:p>|<w:tab/>|<w:br/>")
_ODT_TEXT = re.compile(rb"<text:(?:p|h)(?:\s[^>]*)?/>|</text:(?:p|h)>|<text:tab/>|<text:line-break/>|>([^<]+)<")


def human_size(n: int) -> str:
    for unit in ("bytes", "KB", "MB"):
        if n < 1000 or unit == "MB":
            return f"{n:,} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    return str(n)


def _fence(text: str) -> str:
    longest = max((len(m.group()) for m in _BACKTICKS.finditer(text)), default=0)
    return "`" * max(3, longest + 1)


def _xml_unescape(raw: bytes) -> str:
    import html
    return html.unescape(raw.decode("utf-8", "replace"))


def _zip_member(path, member: str) -> bytes:
    with zipfile.ZipFile(path) as archive, archive.open(member) as f:
        return f.read(XML_MAX_BYTES)


def docx_text(path) -> str:
    """The text of a Word .docx file: its runs, a line per paragraph."""
    out = []
    for m in _DOCX_RUN.finditer(_zip_member(path, "word/document.xml")):
        token = m.group(0)
        if m.group(1) is not None:
            out.append(_xml_unescape(m.group(1)))
        elif token == b"</w:p>" or token == b"<w:br/>":
            out.append("\n")
        else:
            out.append("\t")
    return "".join(out).strip()


def odt_text(path) -> str:
    """The text of an OpenDocument .odt file: its paragraphs and headings."""
    out = []
    xml = _zip_member(path, "content.xml")
    body = xml.split(b"<office:text", 1)[-1]
    for m in _ODT_TEXT.finditer(body):
        if m.group(1) is not None:
            out.append(_xml_unescape(m.group(1)))
        elif b"tab" in m.group(0):
            out.append("\t")
        else:
            out.append("\n")
    return "".join(out).strip()


def pdf_text(path, budget: int) -> str:
    """The text of a PDF (pypdf), page by page, until ``budget`` characters."""
    from pypdf import PdfReader

    reader = PdfReader(str(path))
    pages = []
    total = 0
    for number, page in enumerate(reader.pages, 1):
        text = (page.extract_text() or "").strip()
        pages.append(f"[page {number}]\n{text}")
        total += len(text)
        if total > budget:
            break
    return "\n\n".join(pages)


def _plain_text(path, budget: int) -> str | None:
    with open(path, "rb") as f:
        raw = f.read(budget * 4 + 4)
    if b"\x00" in raw[:8192]:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(raw) - 4:      # not just a character cut at the read's end
            return None
        return raw[:exc.start].decode("utf-8")


def file_text(att, budget: int) -> tuple[str | None, str | None]:
    """``(text, None)`` for a file a model can read as text, ``(None, why)`` otherwise."""
    mime = att.mime
    try:
        if mime == "application/pdf":
            return pdf_text(att.path, budget), None
        if mime == DOCX or att.name.lower().endswith(".docx"):
            return docx_text(att.path), None
        if mime == ODT or att.name.lower().endswith(".odt"):
            return odt_text(att.path), None
        if mime.startswith(NOT_TEXT_PREFIXES) and mime not in TEXT_TYPES:
            return None, None
        text = _plain_text(att.path, budget)
        return text, None
    except ImportError:
        return None, "pypdf is not installed, so the PDF could not be read"
    except Exception as exc:   # a damaged or encrypted document: say so, keep the turn
        return None, f"it could not be read ({type(exc).__name__}: {str(exc)[:200]})"


def _describe(att) -> str:
    return f"{att.name} ({att.mime}, {human_size(att.size)})"


def user_content(text: str, attachments: Sequence, *, images: bool,
                 budget: int = TEXT_BUDGET_CHARS) -> str | list[dict]:
    """The ``content`` of the user message ``text`` with ``attachments`` (module doc)."""
    blocks = [text] if text.strip() else []
    parts: list[dict] = []
    room = budget
    for att in attachments:
        if att.mime in IMAGE_TYPES:
            if images:
                data = base64.b64encode(att.path.read_bytes()).decode("ascii")
                parts.append({"type": "image_url", "image_url": {"url": f"data:{att.mime};base64,{data}"}})
                blocks.append(f"[image attached: {_describe(att)}]")
            else:
                blocks.append(f"[image attached: {_describe(att)}. This model cannot see images; "
                              "ask the user to describe it if it matters.]")
            continue
        body, why = file_text(att, room)
        if body is None:
            blocks.append(f"[file attached: {_describe(att)}; {why or 'its contents are not text'}, "
                          "so they are not included]")
            continue
        note = ""
        if len(body) > room:
            note = f"\n[… {len(body) - room:,} more characters of {att.name} not included (size budget)]"
            body = body[:room]
        room -= len(body)
        fence = _fence(body)
        blocks.append(f"Attached file {_describe(att)}:\n{fence}\n{body}\n{fence}{note}")
    joined = "\n\n".join(blocks)
    if not parts:
        return joined
    return [{"type": "text", "text": joined}] + parts


def history_note(message: dict) -> str:
    """The text of an earlier user message plus a line naming its attachments (their
    contents are sent with the turn they belong to, not again)."""
    content = message.get("content") if isinstance(message.get("content"), str) else ""
    records = [a for a in message.get("attachments") or [] if isinstance(a, dict)]
    if not records:
        return content
    names = ", ".join(str(a.get("name")) for a in records)
    return f"{content}\n[attached then: {names}]".lstrip("\n")
