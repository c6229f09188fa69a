"""Where a worker or client finds Temporal: :class:`ServeOptions` and :func:`connect`.

Any Temporal deployment works: the local dev server (:mod:`.devserver`), a self-hosted
cluster, or Temporal Cloud (``tls=True`` with a client certificate and key, or an API key).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from temporalio.client import Client, TLSConfig

from ..errors import ConfigError, EmoUtilsError
from .store import DEFAULT_STORE_URL

__all__ = ["DEFAULT_TASK_QUEUE", "ServeOptions", "connect"]

#: The task queue workers poll and clients start workflows on, unless told otherwise.
DEFAULT_TASK_QUEUE = "emo-utils-serve"


@dataclass(frozen=True)
class ServeOptions:
    """Connection and storage settings shared by workers and clients.

    Attributes
    ----------
    address : str
        ``host:port`` of the Temporal front end (default ``localhost:7233``, the dev server's).
    namespace : str
        Temporal namespace.
    task_queue : str
        Task queue of the serving workflows and activities.
    store_url : str
        SQLAlchemy URL of the results store (default: SQLite file ``serve_results.sqlite``).
    tls : bool
        Connect with TLS (implied by any of the ``tls_*`` files).
    tls_ca, tls_cert, tls_key : str
        PEM files: the server's root CA, and the client certificate and key (mTLS).
    tls_server_name : str
        Overrides the name the server certificate is checked against.
    api_key : str
        API key (Temporal Cloud); default the ``TEMPORAL_API_KEY`` environment variable.
    """

    address: str = "localhost:7233"
    namespace: str = "default"
    task_queue: str = DEFAULT_TASK_QUEUE
    store_url: str = DEFAULT_STORE_URL
    tls: bool = False
    tls_ca: str = ""
    tls_cert: str = ""
    tls_key: str = ""
    tls_server_name: str = ""
    api_key: str = ""

    def __post_init__(self) -> None:
        host, sep, port = self.address.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ConfigError("serve.address", self.address, "must look like host:port")
        for name in ("namespace", "task_queue", "store_url"):
            if not getattr(self, name):
                raise ConfigError(f"serve.{name}", getattr(self, name), "must not be empty")
        if bool(self.tls_cert) != bool(self.tls_key):
            raise ConfigError(
                "serve.tls_cert", self.tls_cert, "give the client certificate and key together"
            )
        for name in ("tls_ca", "tls_cert", "tls_key"):
            value = getattr(self, name)
            if value and not Path(value).is_file():
                raise ConfigError(f"serve.{name}", value, "file not found")

    def tls_config(self) -> TLSConfig | bool:
        """The ``tls`` argument of :meth:`temporalio.client.Client.connect`."""
        if not (self.tls or self.tls_ca or self.tls_cert):
            return False

        def read(path: str) -> bytes | None:
            return Path(path).read_bytes() if path else None

        return TLSConfig(
            server_root_ca_cert=read(self.tls_ca),
            client_cert=read(self.tls_cert),
            client_private_key=read(self.tls_key),
            domain=self.tls_server_name or None,
        )


async def connect(options: ServeOptions) -> Client:
    """A Temporal client for ``options`` (address, namespace, TLS, API key).

    Raises
    ------
    EmoUtilsError
        The server cannot be reached (naming the address and the reason).
    """
    api_key = options.api_key or os.environ.get("TEMPORAL_API_KEY") or None
    try:
        return await Client.connect(
            options.address,
            namespace=options.namespace,
            tls=options.tls_config() if not api_key else (options.tls_config() or True),
            api_key=api_key,
        )
    except RuntimeError as exc:  # the SDK's connection errors
        raise EmoUtilsError(
            f"cannot reach Temporal at {options.address} (namespace {options.namespace}): {exc}"
        ) from exc
