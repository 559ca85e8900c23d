"""Secrets off the command line (issue 14, item 9): ``--password-file`` (and its
environment twin) instead of ``--password``, which still works but warns at start-up."""
from __future__ import annotations

import pytest
import requests

from .helpers import LiveServer

PASSWORD = "correct horse battery staple"
WARNING = "--password is visible to every user of this machine"


def can_log_in(server: LiveServer, password: str) -> int:
    return requests.post(server.url("/api/auth/login"), json={"password": password}, timeout=30).status_code


@pytest.mark.parametrize("how", ["flag", "env"])
def test_password_file_protects_the_server_without_a_warning(make_server, tmp_path, how):
    secret = tmp_path / "pw"
    secret.write_text(PASSWORD + "\n")
    if how == "flag":
        server = make_server(args=("--password-file", str(secret), "--require-password")).start()
    else:
        server = make_server(env={"HERMES_WEBUI_PASSWORD_FILE": str(secret)}, args=("--require-password",)).start()
    assert requests.get(server.url("/api/sessions"), timeout=30).status_code == 401
    assert can_log_in(server, PASSWORD + "\n") == 401          # the line end is not part of it
    assert can_log_in(server, PASSWORD) == 200
    server.stop()
    log = "".join(server.output)
    assert WARNING not in log and PASSWORD not in log


def test_password_flag_still_works_but_warns(make_server):
    server = make_server(args=("--password", PASSWORD)).start()
    assert can_log_in(server, PASSWORD) == 200
    server.stop()
    log = "".join(server.output)
    assert WARNING in log and "--password-file" in log
    assert PASSWORD not in log


def test_password_from_the_environment_does_not_warn(make_server):
    server = make_server(env={"HERMES_WEBUI_PASSWORD": PASSWORD}).start()
    server.stop()
    assert WARNING not in "".join(server.output)


@pytest.mark.parametrize("case", ["missing", "empty", "both"])
def test_a_bad_password_file_stops_the_start_with_a_reason(tmp_path, case):
    secret = tmp_path / "pw"
    args = ["--password-file", str(secret)]
    expected = {"missing": "cannot read the password file", "empty": "is empty", "both": "give the password once"}
    if case == "empty":
        secret.write_text("\n")
    if case == "both":
        secret.write_text(PASSWORD)
        args += ["--password", "another"]
    server = LiveServer(tmp_path / "srv", args=tuple(args))
    with pytest.raises(RuntimeError):
        server.start(timeout=30)
    assert server.proc.wait(timeout=15) == 2
    log = "".join(server.output)
    assert expected[case] in log and "Traceback" not in log and PASSWORD not in log


@pytest.mark.parametrize("mode,warns", [(0o600, False), (0o644, True), (0o640, True)])
def test_a_password_file_other_users_can_read_is_warned_about(make_server, tmp_path, mode, warns):
    secret = tmp_path / "pw"
    secret.write_text(PASSWORD + "\n")
    secret.chmod(mode)
    server = make_server(args=("--password-file", str(secret))).start()
    assert can_log_in(server, PASSWORD) == 200
    server.stop()
    log = "".join(server.output)
    assert ("can be read by other users" in log and "chmod 600" in log) == warns
