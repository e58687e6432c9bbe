"""Pure resolution of a database's TLS settings (``<PREFIX>_SSL_*`` and pipeline.yml).

The environment wins over ``pipeline.yml``; what neither sets takes the default for the
host: ``verify-full`` for a server across the network, ``prefer`` on loopback. The only
I/O is the check that named files exist, through the ``is_file`` callable a caller may
replace.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Mapping
from typing import Any, Final

from aioetl.config._yaml import where
from aioetl.errors import ConfigError

#: libpq's modes, weakest first: from ``require`` upward no password travels in the clear.
SSL_MODES: Final = ("disable", "prefer", "require", "verify-ca", "verify-full")
#: The modes that refuse a server which does not complete TLS.
TLS_REQUIRED_MODES: Final = frozenset({"require", "verify-ca", "verify-full"})
#: A server across the network gets its certificate and name verified unless told otherwise.
REMOTE_DEFAULT_SSL_MODE: Final = "verify-full"
#: On loopback nothing crosses a network; TLS is used when the server offers it.
LOOPBACK_DEFAULT_SSL_MODE: Final = "prefer"
#: ``(pipeline.yml key, variable suffix)`` of each TLS setting.
TLS_KEYS: Final = (
    ("ssl_mode", "SSL_MODE"),
    ("ssl_ca", "SSL_CA"),
    ("ssl_cert", "SSL_CERT"),
    ("ssl_key", "SSL_KEY"),
)
_FILE_KEYS: Final = ("ssl_ca", "ssl_cert", "ssl_key")


def is_loopback(host: str | None) -> bool:
    """Whether ``host`` names this machine: ``localhost``, 127.0.0.0/8 or ::1."""
    if not host:
        return False
    name = host.strip().lower().strip("[]")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def default_ssl_mode(host: str | None) -> str:
    """The mode used when neither the environment nor pipeline.yml sets one."""
    return LOOPBACK_DEFAULT_SSL_MODE if is_loopback(host) else REMOTE_DEFAULT_SSL_MODE


def resolve_tls(
    *,
    env: Mapping[str, str],
    stem: str,
    section: str,
    options: Mapping[str, Any],
    host: str | None,
    origin: str,
    is_file: Callable[[str], bool] = os.path.isfile,
) -> dict[str, str | None]:
    """The ``ssl_mode``, ``ssl_ca``, ``ssl_cert`` and ``ssl_key`` of one database.

    ``stem`` is the variables' common part (``TEST_OPENDENTAL_SOURCE``), ``options`` the
    database's pipeline.yml section (already type-checked) at ``section``
    (``connections.source``), ``origin`` where ``env`` came from. Raises ConfigError
    naming the variable or the pipeline.yml key at fault.
    """
    resolved: dict[str, str | None] = {}
    sources: dict[str, str] = {}
    for key, suffix in TLS_KEYS:
        variable = f"{stem}_{suffix}"
        raw = env.get(variable)
        if raw is not None and raw.strip():
            resolved[key] = raw.strip()
            sources[key] = f"{variable} (read from {origin})"
        elif options.get(key) is not None:
            resolved[key] = str(options[key])
            sources[key] = f"{where(options, key)}{section}.{key}"
        else:
            resolved[key] = None
    mode = resolved["ssl_mode"]
    if mode is None:
        mode = default_ssl_mode(host)
        sources["ssl_mode"] = f"the default for host {host!r}"
    else:
        mode = mode.lower()
        if mode not in SSL_MODES:
            raise ConfigError(
                f"{sources['ssl_mode']} must be one of {', '.join(SSL_MODES)}, "
                f"got {resolved['ssl_mode']!r}"
            )
    resolved["ssl_mode"] = mode
    for key in _FILE_KEYS:
        path = resolved[key]
        if path is None:
            continue
        if mode not in TLS_REQUIRED_MODES:
            raise ConfigError(
                f"{sources[key]} is set but the ssl_mode is {mode} ({sources['ssl_mode']}): "
                f"certificates are used from require upward; set {stem}_SSL_MODE=verify-full"
            )
        path = os.path.expanduser(path)
        if not is_file(path):
            raise ConfigError(
                f"{sources[key]}: the file {path} does not exist or is not a file; "
                "give the path of a PEM file readable by aioetl"
            )
        resolved[key] = path
    if resolved["ssl_key"] is not None and resolved["ssl_cert"] is None:
        raise ConfigError(
            f"{sources['ssl_key']} is set without {stem}_SSL_CERT: a client key needs "
            "its certificate"
        )
    return resolved
