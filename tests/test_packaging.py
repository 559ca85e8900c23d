"""Packaging: the wheel installs one namespace, hermes_webui, with the page as package data,
and the installed ``hermes-webui`` serves the page from any folder.

The wheel is built from this checkout (``pip wheel``, in an isolated build environment as
``pip install .`` does) and installed into a fresh virtual environment that borrows this
interpreter's third-party packages (a ``.pth`` line naming their folders), so nothing is
downloaded for it and nothing of this checkout is importable there.
"""
from __future__ import annotations

import csv
import io
import json
import os
import shutil
import site
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from api.version import __version__

from .helpers import ROOT, LiveServer

WEBUI_SUFFIXES = (".html", ".css", ".js", ".svg", ".png", ".webmanifest")


# Left out of the copy that is built: what a previous build or test run leaves in a checkout
# (setuptools would pack a stale build/lib into the wheel).
NOT_SOURCE = shutil.ignore_patterns(".git", "build", "dist", "*.egg-info", ".venv", "__pycache__", ".pytest_cache",
                                    ".hypothesis", ".benchmarks")


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """``(wheel path, build output)`` of a wheel built from a clean copy of this checkout."""
    src = tmp_path_factory.mktemp("src") / "hermes-webui"
    shutil.copytree(ROOT, src, ignore=NOT_SOURCE)
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(out), str(src)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    wheels = list(out.glob("hermes_webui-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0], proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def installed(built, tmp_path_factory):
    """A fresh venv holding the wheel (and its console script); returns the venv's folder."""
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    purelib = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"], *site.getsitepackages()}
    # Only folders: a .pth line adds a folder to sys.path without running that folder's own
    # .pth files, so this checkout's editable install (if any) stays out of the venv.
    Path(purelib, "borrowed_packages.pth").write_text("\n".join(sorted(p for p in ours if os.path.isdir(p))) + "\n")
    proc = subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "--no-index",
                           str(built[0])], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return venv


def wheel_files(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as zf:
        record = next(n for n in zf.namelist() if n.endswith(".dist-info/RECORD"))
        return [row[0] for row in csv.reader(io.StringIO(zf.read(record).decode()))]


def test_the_wheel_holds_one_top_level_package(built):
    tops = {name.split("/", 1)[0] for name in wheel_files(built[0])}
    assert tops == {"hermes_webui", f"hermes_webui-{__version__}.dist-info"}


def test_the_wheel_holds_the_code_and_every_file_of_the_page(built):
    files = set(wheel_files(built[0]))
    for name in ("server.py", "api/__init__.py", "api/app.py", "api/config.py", "api/agents/local.py"):
        assert f"hermes_webui/{name}" in files
    code = {p.relative_to(ROOT).as_posix() for p in (ROOT / "api").rglob("*.py") if "__pycache__" not in p.parts}
    assert {f"hermes_webui/{c}" for c in code} <= files
    page = {p.relative_to(ROOT).as_posix() for p in (ROOT / "webui").rglob("*") if p.suffix in WEBUI_SUFFIXES}
    assert "webui/index.html" in page and "webui/css/app.css" in page and "webui/js/app.js" in page
    assert {f"hermes_webui/{p}" for p in page} <= files


def test_the_console_script_is_hermes_webui_server_main(built):
    with zipfile.ZipFile(built[0]) as zf:
        entry = zf.read(next(n for n in zf.namelist() if n.endswith(".dist-info/entry_points.txt"))).decode()
    assert "hermes-webui = hermes_webui.server:main" in entry


def test_building_warns_about_no_undeclared_package_data(built):
    assert "is absent from the `packages` configuration" not in built[1]
    assert "BuildBackendWarning" not in built[1]


def test_the_installed_command_prints_its_version_from_any_folder(installed, tmp_path):
    proc = subprocess.run([str(installed / "bin" / "hermes-webui"), "--version"], cwd=str(tmp_path),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"hermes-webui {__version__}"


def test_the_installed_copy_imports_as_hermes_webui_only(installed, tmp_path):
    script = ("import importlib.util, json, hermes_webui.server as s, hermes_webui.api.config as c;"
              "print(json.dumps({'server': s.__file__, 'config': c.__file__,"
              " 'top': [n for n in ('api', 'server', 'webui') if importlib.util.find_spec(n)]}))")
    proc = subprocess.run([str(installed / "bin" / "python"), "-c", script], cwd=str(tmp_path),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout)
    assert found["server"].startswith(str(installed)) and found["config"].startswith(str(installed))
    assert found["top"] == []


class InstalledServer(LiveServer):
    """The installed ``hermes-webui`` command instead of this checkout's server.py."""

    def __init__(self, tmp: Path, venv: Path):
        super().__init__(tmp, cwd=tmp)
        self.venv = venv

    def command(self) -> list[str]:
        return [str(self.venv / "bin" / "hermes-webui")] + super().command()[2:]


def test_the_installed_command_serves_the_page_from_any_folder(installed, tmp_path):
    server = InstalledServer(tmp_path, installed).start()
    try:
        page = server.get("/")
        assert page.status_code == 200 and "<html" in page.text
        for path in ("/static/js/app.js", "/static/css/app.css", "/static/panels/panels.css", "/favicon.ico"):
            assert server.get(path).status_code == 200, path
        sid = server.new_session()
        assert server.session(sid)["session_id"] == sid
    finally:
        assert server.stop() == 0
