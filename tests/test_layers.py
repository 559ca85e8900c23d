"""The layers hold beyond the file level: the lower layers import without the web layer.

Each check runs in a fresh interpreter, so what an earlier test imported cannot hide a
back-edge.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from .helpers import ROOT

LOWER_LAYERS = ["api", "api.errors", "api.codec", "api.journal", "api.atomic", "api.models", "api.streams",
                "api.turns", "api.session_index", "api.session_recovery", "api.agents", "api.agents.base",
                "api.agents.fake", "api.config"]
WEB_MODULES = ("flask", "werkzeug", "api.app", "api.routes", "api.httputil")


def _modules_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys, json; print(json.dumps(sorted(sys.modules)))"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("module", LOWER_LAYERS)
def test_lower_layers_import_without_flask(module):
    loaded = _modules_after(f"import {module}")
    assert not loaded & set(WEB_MODULES), sorted(loaded & set(WEB_MODULES))


def test_the_package_itself_imports_only_its_version():
    loaded = _modules_after("import api")
    assert {m for m in loaded if m.startswith("api.")} == {"api.version"}


def test_the_recovery_command_runs_without_the_web_layer(tmp_path):
    code = ("import runpy, sys\nsys.argv = ['x', '--audit', '--state-dir', %r]\n"
            "try:\n    runpy.run_module('api.session_recovery', run_name='__main__')\nexcept SystemExit:\n    pass"
            % str(tmp_path))
    (tmp_path / "sessions").mkdir()
    loaded = _modules_after(code)
    assert not loaded & set(WEB_MODULES)
