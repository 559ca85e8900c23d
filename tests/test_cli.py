"""The command line: errors a person can act on, --version, and the --port-file ready signal.

Each case runs ``python server.py …`` as a subprocess with a temporary HOME, as a user would.
"""
from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from api.version import __version__

from .helpers import ROOT, SERVER, LiveServer, fake_script, stream_events, wait_until


def run_server(tmp_path: Path, *args: str, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """Run server.py to completion (it is expected to exit on its own)."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("HERMES_")}
    full_env.update(HOME=str(home), **(env or {}))
    return subprocess.run([sys.executable, str(SERVER), "--agent", "fake", "--port", "0", *args],
                          cwd=str(ROOT), env=full_env, capture_output=True, text=True, timeout=timeout)


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    """The single ``hermes-webui: error: …`` line of a failed start (no traceback)."""
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("hermes-webui: error: "), lines[0]
    return lines[0]


def test_version_prints_the_version_and_exits_0(tmp_path):
    proc = run_server(tmp_path, "--version")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"hermes-webui {__version__}"


@pytest.mark.parametrize("how", ["flag", "env"])
def test_an_unknown_log_level_is_a_one_line_usage_error(tmp_path, how):
    if how == "flag":
        proc = run_server(tmp_path, "--state-dir", str(tmp_path / "st"), "--log-level", "LOUD")
    else:
        proc = run_server(tmp_path, "--state-dir", str(tmp_path / "st"), env={"HERMES_WEBUI_LOG_LEVEL": "LOUD"})
    assert proc.returncode == 2
    line = one_line_error(proc)
    assert "--log-level" in line and "LOUD" in line and "DEBUG" in line and "WARNING" in line
    assert not (tmp_path / "st").exists()       # refused before anything was created


def test_a_log_level_in_lower_case_is_accepted(make_server):
    server = make_server(args=("--log-level", "debug")).start()
    assert server.get("/health").status_code == 200
    assert server.stop() == 0
    assert any(" DEBUG " in line for line in server.output)


def test_a_state_dir_that_is_a_file_says_so_with_the_fix(tmp_path):
    target = tmp_path / "not-a-dir"
    target.write_text("I am a file\n")
    proc = run_server(tmp_path, "--state-dir", str(target))
    assert proc.returncode == 3
    line = one_line_error(proc)
    assert str(target) in line and "is a file, not a folder" in line and "--state-dir" in line
    assert "settings.json" not in line and "password" not in line
    assert target.read_text() == "I am a file\n"


def test_a_state_dir_below_a_file_says_so_with_the_fix(tmp_path):
    (tmp_path / "file").write_text("x")
    proc = run_server(tmp_path, "--state-dir", str(tmp_path / "file" / "state"))
    assert proc.returncode == 3
    line = one_line_error(proc)
    assert "a folder above it, is a file" in line and "--state-dir" in line
    assert "settings.json" not in line and "Errno" not in line


def _unwritable_dir(tmp_path: Path) -> Path:
    """A folder this process cannot create files in: a read-only one for a normal user;
    for root (which ignores permission bits), sysfs's /sys/fs, where nobody may."""
    if os.geteuid() != 0:
        folder = tmp_path / "read-only"
        folder.mkdir()
        folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
        return folder
    folder = Path("/sys/fs")
    try:
        (folder / "hermes-webui-probe").mkdir()
    except OSError:
        return folder
    (folder / "hermes-webui-probe").rmdir()
    pytest.skip("no folder here that root cannot write")


@pytest.mark.parametrize("below", [False, True], ids=["the-dir", "a-new-dir-inside"])
def test_an_unwritable_state_dir_says_so_with_the_fix(tmp_path, below):
    folder = _unwritable_dir(tmp_path)
    state_dir = folder / "state" if below else folder
    try:
        proc = run_server(tmp_path, "--state-dir", str(state_dir))
    finally:
        if folder.parent == tmp_path:
            folder.chmod(stat.S_IRWXU)
    assert proc.returncode == 3
    line = one_line_error(proc)
    assert str(state_dir) in line and "no permission" in line and "--state-dir" in line
    assert "settings.json" not in line and "Errno" not in line


def test_a_missing_password_file_says_how_to_create_it(tmp_path):
    proc = run_server(tmp_path, "--state-dir", str(tmp_path / "st"), "--password-file", str(tmp_path / "pw"))
    assert proc.returncode == 2
    line = one_line_error(proc)
    assert "does not exist" in line and "first line" in line and "Errno" not in line


def test_the_port_file_says_where_the_server_listens_and_goes_at_exit(make_server):
    server = make_server().start()
    info = json.loads(server.port_file.read_text())
    assert info["pid"] == server.proc.pid
    assert info["host"] == "127.0.0.1" and isinstance(info["port"], int) and info["port"] > 0
    assert requests.get(info["url"] + "health", timeout=10).json()["status"] == "ok"
    assert server.stop() == 0
    assert not server.port_file.exists()


def test_a_stale_port_file_is_replaced_not_read(tmp_path):
    port_file = tmp_path / "port.json"
    port_file.write_text(json.dumps({"host": "127.0.0.1", "port": 1, "pid": 1, "url": "http://127.0.0.1:1/"}))
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HERMES_")}
    proc = subprocess.Popen([sys.executable, str(SERVER), "--agent", "fake", "--port", "0", "--port-file",
                             str(port_file), "--state-dir", str(tmp_path / "st")], cwd=str(ROOT),
                            env={**env, "HOME": str(home)}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        info = wait_until(lambda: (port_file.exists() and json.loads(port_file.read_text())["pid"] == proc.pid
                                   and json.loads(port_file.read_text())), timeout=30, message="the new port file")
        assert info["port"] != 1
        assert requests.get(info["url"] + "health", timeout=10).status_code == 200
    finally:
        proc.terminate()
        proc.wait(30)


def test_an_unwritable_port_file_stops_the_start_with_the_fix(tmp_path):
    proc = run_server(tmp_path, "--state-dir", str(tmp_path / "st"), "--port-file", str(tmp_path / "no" / "port"))
    assert proc.returncode == 2
    assert "the port file" in proc.stderr and "--port-file" in proc.stderr and "Traceback" not in proc.stderr


def test_agent_openai_without_its_package_names_the_install_command(make_server, tmp_path):
    hide = tmp_path / "hide-openai"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text("import sys\nsys.modules['openai'] = None  # as if not installed\n")
    server = make_server(agent="openai", env={"PYTHONPATH": str(hide)}).start()
    install = "pip install 'hermes-webui[openai]'"
    assert any(install in line for line in server.output)
    sid = server.new_session()
    events = stream_events(server, server.start_chat(sid, fake_script(tokens=1)))
    errors = [e["data"] for e in events if e["event"] == "apperror"]
    assert errors and errors[0]["type"] == "backend_unavailable" and install in errors[0]["message"]


def test_server_py_runs_from_another_directory(tmp_path):
    """``python /path/to/server.py`` works from any folder (its backend is found beside it)."""
    server = LiveServer(tmp_path / "srv", cwd=tmp_path)
    server.start()
    try:
        assert server.get("/").status_code == 200
    finally:
        server.stop()


@pytest.mark.parametrize("name,kind", [("sessions", "file"), ("profiles", "file"), ("auth_secret.key", "dir"),
                                       ("settings.json", "dir"), ("search.sqlite", "dir")])
def test_something_in_the_way_inside_the_state_dir_says_so_with_the_fix(tmp_path, name, kind):
    state = tmp_path / "state"
    state.mkdir()
    (state / name).mkdir() if kind == "dir" else (state / name).write_text("in the way\n")
    proc = run_server(tmp_path, "--state-dir", str(state))
    assert proc.returncode in (2, 3), proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("hermes-webui: error: ") and name in last and "--state-dir" in last, last
    assert "may hold the password" not in last
    assert (state / name).is_dir() == (kind == "dir")  # left as it was


def test_an_environment_value_of_the_wrong_type_is_named(tmp_path):
    proc = run_server(tmp_path, env={"HERMES_WEBUI_THREADS": "abc"})
    assert proc.returncode == 2
    assert one_line_error(proc) == "hermes-webui: error: HERMES_WEBUI_THREADS='abc' is not a whole number"
