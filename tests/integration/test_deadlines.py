"""Every network wait has a deadline: a server that goes silent at checkout (the pool's
pre-ping of an idle connection) fails the checkout, it does not hang it."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest

from aioetl import (
    ConnectionFactory,
    DatabaseConnectionError,
    DatabaseType,
    DictConfigProvider,
    RetryExhaustedError,
    Settings,
    create_connection_manager,
)
from aioetl.core.engine_options import CHECKOUT_GRACE

from .faultproxy import FaultProxy

pytestmark = [pytest.mark.integration, pytest.mark.faults]

TARGETS = [
    ("TEST_OPENDENTAL_SOURCE", DatabaseType.SOURCE, "source"),
    ("TEST_POSTGRES_ANALYTICS", DatabaseType.ANALYTICS, "analytics"),
]


@pytest.mark.parametrize(("prefix", "db_type", "section"), TARGETS, ids=["mariadb", "postgresql"])
async def test_a_silent_server_at_checkout_fails_the_checkout(
    prefix: str, db_type: DatabaseType, section: str
) -> None:
    async with FaultProxy("127.0.0.1", int(os.environ[f"{prefix}_PORT"])) as proxy:
        env = {**os.environ, f"{prefix}_PORT": str(proxy.port)}
        options = {"pool_timeout": 0.5, "connect_timeout": 0.5, "max_retries": 0}
        pipeline = {"connections": {section: {"rate_limit_interval": 0, **options}}}
        settings = await Settings.load("test", DictConfigProvider(env=env, pipeline=pipeline))
        engine = await ConnectionFactory.get_engine(settings, db_type)
        try:
            async with create_connection_manager(engine) as manager:
                await manager.execute_with_retry("SELECT 1")
            pool: Any = engine.pool
            assert pool.checkedin() == 1  # an idle pooled connection, pinged at checkout
            proxy.silent = True
            task = asyncio.create_task(create_connection_manager(engine).__aenter__())
            with pytest.raises((DatabaseConnectionError, RetryExhaustedError)) as info:
                async with asyncio.timeout(30 + CHECKOUT_GRACE):  # a hang fails the test
                    await task
            assert "could not get a working connection within" in str(info.value)
            assert pool.checkedout() == 0
        finally:
            await ConnectionFactory.dispose_all()
