"""Log forging (issue 14, item 6): no request can put a line of its own into the log.
A real server; the raw request bytes go over a socket so nothing normalises them."""
from __future__ import annotations

import logging
import re
import socket
import sys

from api.request_log import OneLineFormatter, escape_for_log

from .helpers import LiveServer, wait_until

PASSWORD = "correct horse battery staple"
RECORD_START = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ \S+: ")


def raw_request(server: LiveServer, request_line: str, *headers: str) -> bytes:
    """Send ``request_line`` and ``headers`` as typed (percent escapes included) and return
    the whole answer."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        head = [request_line, "Host: 127.0.0.1", "Connection: close", *headers]
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def assert_no_forged_line(server: LiveServer, marker: str) -> None:
    """Every line of the log that mentions ``marker`` is a record of its own, with the
    control characters before the marker visible as escapes."""
    lines = "".join(server.output).splitlines()
    hits = [line for line in lines if marker in line]
    assert hits, f"{marker} was never logged"
    for line in hits:
        assert RECORD_START.match(line) or line.startswith("    "), line
        assert not line.startswith(marker), line


def test_a_newline_in_the_path_cannot_forge_a_line(make_server):
    server = make_server().start()
    for i, escape in enumerate(("%0a", "%0d%0a", "%0d", "%1b[2K%0d", "%e2%80%a8", "%c2%85")):
        raw_request(server, f"GET /x{escape}FORGED{i}%202024-01-01%2000:00:00,000%20INFO%20x HTTP/1.1")
    wait_until(lambda: sum("FORGED" in line for line in server.output) >= 6, message="the access log lines")
    for i in range(6):
        assert_no_forged_line(server, f"FORGED{i}")
    log = "".join(server.output)
    assert "\\nFORGED0" in log and "\\x1b[2K" in log and "\\u2028FORGED4" in log


def test_request_data_logged_by_other_modules_is_escaped_too(make_server):
    # A wrong bearer password logs the path from the auth module, not the access log.
    server = make_server(env={"HERMES_WEBUI_PASSWORD": PASSWORD}).start()
    raw_request(server, "GET /api/x%0aFORGEDAUTH%20WARNING HTTP/1.1", "Authorization: Bearer wrong")
    wait_until(lambda: sum("FORGEDAUTH" in line for line in server.output) >= 2,
               message="the auth warning and the access line")
    assert_no_forged_line(server, "FORGEDAUTH")
    assert sum("FORGEDAUTH" in line for line in server.output) == 2     # the warning and the access line


def test_a_traceback_keeps_its_lines_indented_and_its_message_escaped():
    formatter = OneLineFormatter("%(levelname)s %(name)s: %(message)s")
    try:
        raise ValueError("bad\nFORGED INFO line")
    except ValueError:
        record = logging.LogRecord("t", logging.ERROR, __file__, 1, "failed %s", ("a\rb",), sys.exc_info())
    lines = formatter.format(record).splitlines()
    assert lines[0] == "ERROR t: failed a\\rb"
    assert all(line.startswith("    ") for line in lines[1:]), lines
    assert any("bad" in line for line in lines[1:]) and not any(line.startswith("FORGED") for line in lines)
    assert escape_for_log("plain é ✓") == "plain é ✓"
