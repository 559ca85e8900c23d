"""Misconfiguration is visible at start-up: a log line and /health ``problems`` (issue 15, item 8)."""
from __future__ import annotations

from .helpers import wait_until


def test_a_healthy_configuration_reports_no_problems(live_server):
    assert live_server.get("/health").json()["problems"] == []


def test_openai_without_a_base_url_or_key_is_reported_with_the_fix(make_server):
    server = make_server(agent="openai").start()
    problems = server.get("/health").json()["problems"]
    assert len(problems) == 1
    assert "--base-url" in problems[0]["message"] and "--base-url" in problems[0]["fix"]
    wait_until(lambda: "configuration problem: --agent openai has no --base-url" in server.log_text(),
               message="the start-up log line")


def test_a_missing_model_path_is_reported_before_any_message(make_server, tmp_path):
    missing = tmp_path / "nope.gguf"
    server = make_server(agent="local", args=("--model-path", str(missing))).start()
    problems = server.get("/health").json()["problems"]
    assert [p["message"] for p in problems] == [f"--model-path {missing} does not exist"]
    assert "configuration problem" in server.log_text()


def test_hermes_without_a_provider_is_reported(make_server):
    server = make_server(agent="hermes").start()
    problems = server.get("/health").json()["problems"]
    assert problems and ("hermes setup" in problems[0]["fix"] or "install" in problems[0]["fix"])
