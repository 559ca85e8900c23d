"""The version of hermes-webui: read by setup.cfg (``attr:``) and ``hermes-webui --version``."""

__version__ = "0.1.0"
