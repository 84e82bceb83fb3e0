"""Loading from the Hugging Face Hub that fails at once, with a message that says what to do.

Without network access `datasets` and `transformers` retry for up to a minute and then raise
deep inside their own code. We probe the Hub once (a TCP connect with a short timeout); if it
cannot be reached we switch both libraries to offline mode for the load, so that a cached
copy is still used and a missing one fails immediately. Any failure becomes a `HubUnavailableError`
whose one-line message names the fix.
"""

from __future__ import annotations

import contextlib
import functools
import os
import socket
from collections.abc import Iterator
from urllib.parse import urlparse


class HubUnavailableError(RuntimeError):
    """A model or data set could not be loaded from the Hub or its local cache."""


@functools.cache
def hub_reachable(timeout: float = 3.0) -> bool:
    """True if a TCP connection to the Hub endpoint opens within `timeout` seconds."""
    if _env_offline():
        return False
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    host = urlparse(endpoint).hostname or "huggingface.co"
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def _env_offline() -> bool:
    return any(
        os.environ.get(name, "").upper() in {"1", "ON", "YES", "TRUE"}
        for name in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


@contextlib.contextmanager
def _offline_mode() -> Iterator[None]:
    """Force the Hub libraries into offline mode (cache only) for the duration."""
    import datasets.config
    import huggingface_hub.constants as hub_constants

    saved = (hub_constants.HF_HUB_OFFLINE, datasets.config.HF_HUB_OFFLINE)
    hub_constants.HF_HUB_OFFLINE = True
    datasets.config.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        hub_constants.HF_HUB_OFFLINE, datasets.config.HF_HUB_OFFLINE = saved


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:200] if text else ""


@contextlib.contextmanager
def hub_load(what: str, fix: str) -> Iterator[None]:
    """Context for one Hub load: cache-only when the Hub is unreachable, one clear error if it fails.

    `what` names the thing being loaded ("data set 'squad_v2'"), `fix` says how to get it.
    """
    mode = contextlib.nullcontext() if hub_reachable() else _offline_mode()
    try:
        with mode:
            yield
    except HubUnavailableError:
        raise
    except Exception as err:  # the libraries raise OSError, ConnectionError, ValueError, ...
        reach = "reachable" if hub_reachable() else "not reachable from this machine"
        raise HubUnavailableError(
            f"Could not load {what}: the Hugging Face Hub is {reach} and no usable local copy "
            f"was found ({type(err).__name__}: {_first_line(err)}). {fix}"
        ) from err
