"""Torture suite settings: long modes (``@pytest.mark.slow``) run only on request.

Run them with ``python -m pytest tests/torture -m slow`` or by setting
``HERMES_TORTURE_LONG=1``; the quick modes always run.
"""
from __future__ import annotations

import os

import pytest


def long_mode_requested(config) -> bool:
    return "slow" in (config.getoption("markexpr") or "") or os.environ.get("HERMES_TORTURE_LONG") == "1"


@pytest.fixture(autouse=True)
def _skip_long_modes_unless_asked(request):
    if request.node.get_closest_marker("slow") and not long_mode_requested(request.config):
        pytest.skip("long torture mode: run with -m slow or HERMES_TORTURE_LONG=1")
