"""TLS for every connection: SSL contexts from ``ssl_mode`` and a guard before login.

The drivers do not keep the promise of ``ssl_mode`` on their own: aiomysql goes on in
plaintext when the server does not offer TLS, even with an SSL context; asyncmy would
try TLS against a server that never offered it; both send a ``mysql_clear_password``
password to any server that asks; asyncpg's ``prefer`` falls back to plaintext. So
aioetl opens MySQL connections with a subclass of the driver's Connection that reads the
server's capabilities before authenticating and refuses, and hands asyncpg an SSL context
(never a fallback mode) from ``require`` upward. In a mode from ``require`` upward no
password is ever sent to a server that has not completed TLS.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import ssl
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from aioetl.config._tls import TLS_REQUIRED_MODES, default_ssl_mode
from aioetl.errors import TlsError

__all__ = [
    "TlsPolicy",
    "mysql_connector",
    "postgres_connector",
    "ssl_context",
    "tls_guarded",
]

#: Older protocol versions are broken; every supported server speaks TLS 1.2.
MINIMUM_TLS_VERSION: Final = ssl.TLSVersion.TLSv1_2
#: MySQL's capability flag for "this server can switch the connection to TLS".
MYSQL_CLIENT_SSL: Final = 0x0800
#: Authentication plugins that send the password itself: never without TLS.
CLEARTEXT_PLUGINS: Final = frozenset({"mysql_clear_password", "dialog"})


@dataclass(frozen=True, kw_only=True, slots=True)
class TlsPolicy:
    """A database's resolved TLS settings, and where to point the user when TLS fails."""

    mode: str
    ca: str | None = None
    cert: str | None = None
    key: str | None = None
    #: ``TEST_OPENDENTAL_SOURCE``: the variables' stem, for messages.
    stem: str = ""
    #: ``source 127.0.0.1:3306/opendental``: for messages (never a password).
    label: str = ""

    @property
    def required(self) -> bool:
        """Whether a server that does not complete TLS is refused before any password."""
        return self.mode in TLS_REQUIRED_MODES

    @classmethod
    def from_config(cls, config: Mapping[str, Any], *, stem: str, label: str) -> TlsPolicy:
        return cls(
            mode=config.get("ssl_mode") or default_ssl_mode(config.get("host")),
            ca=config.get("ssl_ca"),
            cert=config.get("ssl_cert"),
            key=config.get("ssl_key"),
            stem=stem,
            label=label,
        )


def ssl_context(policy: TlsPolicy) -> ssl.SSLContext | None:
    """The SSL context ``policy.mode`` asks for (``None`` for ``disable``).

    As in libpq, ``require`` with a CA file verifies the chain like ``verify-ca``; the
    verifying modes without a CA file trust the system's store. Reads the files: call it
    off the event loop.
    """
    if policy.mode == "disable":
        return None
    verify = policy.mode in {"verify-ca", "verify-full"} or (
        policy.mode == "require" and policy.ca is not None
    )
    if verify:
        context = ssl.create_default_context(cafile=policy.ca)
        context.check_hostname = policy.mode == "verify-full"
        context.verify_mode = ssl.CERT_REQUIRED
    else:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    context.minimum_version = MINIMUM_TLS_VERSION
    if policy.cert is not None:
        context.load_cert_chain(policy.cert, keyfile=policy.key)
    return context


class _Refused(Exception):
    """Raised inside the driver's handshake; becomes a TlsError at the connector."""


def _no_tls_message(policy: TlsPolicy) -> str:
    return (
        f"{policy.label}: the server offers no TLS (ssl_mode {policy.mode}); "
        "no password was sent: enable TLS on the server"
    )


def _cleartext_message(policy: TlsPolicy, plugin: str) -> str:
    return (
        f"{policy.label}: the server asked for {plugin} authentication, which sends the "
        "password in the clear, without TLS; no password was sent: enable TLS on the server"
    )


def _check_before_login(conn: Any, offers_tls: bool, server_plugin: str) -> bool:
    """Refuse or go on, once the server's greeting is read; ``True`` when TLS will be used.

    Drops the SSL context when the server offers no TLS and the mode allows plaintext
    (``prefer``): asyncmy would otherwise start a TLS handshake the server cannot answer.
    """
    policy: TlsPolicy = conn._aioetl_tls
    context = conn._aioetl_ssl_context
    if policy.required and not offers_tls:
        raise _Refused(_no_tls_message(policy))
    conn._ssl_context = context if offers_tls else None
    use_tls = conn._ssl_context is not None
    if server_plugin in CLEARTEXT_PLUGINS and not use_tls:
        raise _Refused(_cleartext_message(policy, server_plugin))
    return use_tls


def _check_auth_switch(conn: Any, plugin_name: bytes | str) -> None:
    name = plugin_name.decode() if isinstance(plugin_name, bytes) else str(plugin_name)
    if name in CLEARTEXT_PLUGINS and not conn._secure:
        raise _Refused(_cleartext_message(conn._aioetl_tls, name))


class _AiomysqlGuard:
    """For aiomysql.Connection: the checks run between the greeting and the login."""

    async def _request_authentication(self) -> Any:
        conn: Any = self
        use_tls = _check_before_login(
            conn,
            bool(conn.server_capabilities & MYSQL_CLIENT_SSL),
            conn._client_auth_plugin or conn._server_auth_plugin or "",
        )
        # aiomysql set CLIENT_SSL when it got a context; a login without TLS must not claim it.
        if use_tls:
            conn.client_flag |= MYSQL_CLIENT_SSL
        else:
            conn.client_flag &= ~MYSQL_CLIENT_SSL
        return await super()._request_authentication()  # type: ignore[misc]

    async def _process_auth(self, plugin_name: bytes, auth_packet: Any) -> Any:
        _check_auth_switch(self, plugin_name)
        return await super()._process_auth(plugin_name, auth_packet)  # type: ignore[misc]


class _AsyncmyGuard:
    """For asyncmy.Connection: the same checks, on asyncmy's attribute names."""

    async def _request_authentication(self) -> Any:
        conn: Any = self
        use_tls = _check_before_login(
            conn,
            bool(conn.server_capabilities & MYSQL_CLIENT_SSL),
            conn._auth_plugin_name or "",
        )
        if use_tls:
            conn._client_flag |= MYSQL_CLIENT_SSL
        else:
            conn._client_flag &= ~MYSQL_CLIENT_SSL
        return await super()._request_authentication()  # type: ignore[misc]

    async def _process_auth(self, plugin_name: bytes, auth_packet: Any) -> Any:
        _check_auth_switch(self, plugin_name)
        return await super()._process_auth(plugin_name, auth_packet)  # type: ignore[misc]


_GUARDS: Final[Mapping[str, type]] = {"aiomysql": _AiomysqlGuard, "asyncmy": _AsyncmyGuard}


@functools.cache
def tls_guarded(driver: str, base: type | None = None) -> type:
    """``base`` (default: the driver's Connection) with the TLS checks before login."""
    if base is None:
        base = importlib.import_module(driver).Connection
    return type(f"TlsGuarded{base.__name__}", (_GUARDS[driver], base), {})


def _tls_failure(exc: BaseException) -> ssl.SSLError | None:
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 8:
        if isinstance(current, ssl.SSLError):
            return current
        current = current.__cause__ or current.__context__
        seen += 1
    return None


def _handshake_message(policy: TlsPolicy, error: ssl.SSLError) -> str:
    if isinstance(error, ssl.SSLCertVerificationError):
        return (
            f"{policy.label}: TLS certificate verify failed ({error.verify_message}): "
            f"check {policy.stem}_SSL_CA"
        )
    return (
        f"{policy.label}: TLS handshake failed ({error.reason or type(error).__name__}): "
        f"check the server's TLS set-up and {policy.stem}_SSL_MODE"
    )


def _context_factory(policy: TlsPolicy) -> Callable[[], Awaitable[ssl.SSLContext | None]]:
    """Build the context once, in a thread (it reads files), on the first connect."""
    built: list[ssl.SSLContext | None] = []

    async def get() -> ssl.SSLContext | None:
        if not built:
            try:
                context = await asyncio.to_thread(ssl_context, policy)
            except (OSError, ssl.SSLError) as exc:
                detail = getattr(exc, "reason", None) or exc.strerror or exc
                raise TlsError(
                    f"{policy.label}: cannot load the TLS files ({detail}): "
                    f"check {policy.stem}_SSL_CA, _SSL_CERT and _SSL_KEY",
                    database=policy.label,
                ) from None
            built.append(context)
        return built[0]

    return get


def mysql_connector(
    driver: str,
    *,
    timeout: float,
    policy: TlsPolicy,
    base: type | None = None,
    init_kwargs: Mapping[str, Any] | None = None,
) -> Callable[..., Awaitable[Any]]:
    """The connect function SQLAlchemy's MySQL dialects call (``async_creator_fn``).

    Bounded as a whole, handshake and login included: aiomysql's and asyncmy's
    ``connect_timeout`` only covers opening the socket. ``base`` is the Connection class
    the TLS checks are put on (default: the driver's own), ``init_kwargs`` more arguments
    for it.
    """
    get_context = _context_factory(policy)
    extra = dict(init_kwargs or {})

    async def connect(*args: Any, **kwargs: Any) -> Any:
        context = await get_context()
        conn = tls_guarded(driver, base)(*args, **kwargs, **extra, ssl=context)
        conn._aioetl_tls = policy
        conn._aioetl_ssl_context = context
        try:
            async with asyncio.timeout(timeout):
                await (conn._connect() if driver == "aiomysql" else conn.connect())
        except BaseException as exc:
            conn.close()
            if isinstance(exc, _Refused):
                raise TlsError(str(exc), database=policy.label) from None
            failure = _tls_failure(exc)
            if failure is not None and isinstance(exc, Exception):
                raise TlsError(_handshake_message(policy, failure), database=policy.label) from exc
            raise
        return conn

    return connect


#: asyncpg's words for a server that answered 'N' (or an error) to the SSLRequest.
_POSTGRES_NO_TLS: Final = ("rejected SSL upgrade", "error response during SSL exchange")


def postgres_connector(*, policy: TlsPolicy) -> Callable[..., Awaitable[Any]]:
    """The connect function SQLAlchemy's asyncpg dialect calls (``async_creator_fn``).

    From ``require`` upward asyncpg gets an SSL context, with which it refuses a server
    that declines TLS before sending anything else; ``prefer`` and ``disable`` keep
    asyncpg's own behaviour.
    """
    get_context = _context_factory(policy)

    async def connect(*args: Any, **kwargs: Any) -> Any:
        if policy.mode == "disable":
            kwargs["ssl"] = False
        elif policy.mode == "prefer":
            kwargs["ssl"] = "prefer"
        else:
            kwargs["ssl"] = await get_context()
        try:
            return await importlib.import_module("asyncpg").connect(*args, **kwargs)
        except Exception as exc:
            if policy.required and any(text in str(exc) for text in _POSTGRES_NO_TLS):
                raise TlsError(_no_tls_message(policy), database=policy.label) from None
            failure = _tls_failure(exc)
            if failure is not None:
                raise TlsError(_handshake_message(policy, failure), database=policy.label) from exc
            raise

    return connect
