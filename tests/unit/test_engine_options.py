"""Engine arguments from settings: pure, no server needed."""

from __future__ import annotations

from typing import Any

import pytest

from aioetl import (
    ConfigError,
    ConnectionFactory,
    DatabaseType,
    PostgresSchema,
    create_test_settings,
)
from aioetl.core.engine_options import SOURCE_READ_ONLY_COMMAND, engine_spec


async def spec_for(db_type: DatabaseType, **pipeline: Any) -> Any:
    settings = await create_test_settings(
        env_vars={"TEST_OPENDENTAL_SOURCE_PASSWORD": "p@ss:w/rd%#?&= x"},
        pipeline_config={"connections": pipeline},
    )
    return engine_spec(settings.get_database_config(db_type), db_type, "test")


async def test_mysql_url_and_options() -> None:
    spec = await spec_for(DatabaseType.SOURCE, source={"connect_timeout": 3, "charset": "utf8mb3"})
    assert spec.url.drivername == "mysql+aiomysql"
    assert spec.url.password == "p@ss:w/rd%#?&= x"
    assert "p@ss" not in str(spec.url) and "p@ss" not in repr(spec.url)
    assert spec.url.query["charset"] == "utf8mb3"
    assert spec.kwargs["connect_args"]["connect_timeout"] == 3
    assert spec.kwargs["connect_args"]["init_command"] == SOURCE_READ_ONLY_COMMAND
    assert spec.kwargs["pool_pre_ping"] is True
    assert spec.profile.rate_limit_interval == 0.1
    assert spec.profile.read_only


async def test_replica_is_writable_and_unthrottled() -> None:
    spec = await spec_for(DatabaseType.REPLICATION, replication={"driver": "asyncmy"})
    assert spec.url.drivername == "mysql+asyncmy"
    assert "init_command" not in spec.kwargs["connect_args"]
    assert spec.profile.rate_limit_interval == 0.0 and not spec.profile.read_only


async def test_postgres_options() -> None:
    spec = await spec_for(
        DatabaseType.ANALYTICS,
        analytics={"application_name": "etl", "command_timeout": 9, "connect_timeout": 4},
    )
    assert spec.url.drivername == "postgresql+asyncpg"
    args = spec.kwargs["connect_args"]
    assert args["timeout"] == 4 and args["command_timeout"] == 9
    assert args["server_settings"] == {"search_path": "raw", "application_name": "etl"}


async def test_retry_options_reach_the_profile() -> None:
    spec = await spec_for(
        DatabaseType.REPLICATION,
        replication={"max_retries": 7, "retry_backoff_base": 0.2, "retry_backoff_max": 3},
    )
    assert spec.profile.retry.max_retries == 7
    assert spec.profile.retry.backoff_base == 0.2
    assert spec.profile.retry.backoff_max == 3


async def test_missing_variables_are_all_named() -> None:
    settings = await create_test_settings(
        env_vars={"TEST_OPENDENTAL_SOURCE_HOST": "", "TEST_OPENDENTAL_SOURCE_USER": ""}
    )
    with pytest.raises(ConfigError) as info:
        await ConnectionFactory.get_opendental_source_test_connection(settings=settings)
    assert "TEST_OPENDENTAL_SOURCE_HOST, TEST_OPENDENTAL_SOURCE_USER are not set" in str(info.value)


@pytest.mark.parametrize(
    ("production_host", "db_type", "schema"),
    [
        ("127.0.0.1", DatabaseType.SOURCE, None),
        ("localhost", DatabaseType.SOURCE, None),
        ("LOCALHOST", DatabaseType.REPLICATION, None),
        ("127.0.0.1", DatabaseType.ANALYTICS, PostgresSchema.MARTS),
    ],
)
async def test_test_settings_pointing_at_production_are_refused(
    production_host: str, db_type: DatabaseType, schema: PostgresSchema | None
) -> None:
    settings = await create_test_settings(
        env_vars={
            "OPENDENTAL_SOURCE_HOST": production_host,
            "OPENDENTAL_SOURCE_DB": "test_opendental",
            "MYSQL_REPLICATION_HOST": production_host,
            "MYSQL_REPLICATION_DB": "test_opendental_replication",
            "POSTGRES_ANALYTICS_HOST": production_host,
            "POSTGRES_ANALYTICS_DB": "test_opendental_analytics",
        }
    )
    with pytest.raises(ConfigError, match="test settings point at the production"):
        await ConnectionFactory.get_engine(settings, db_type, schema)


async def test_distinct_production_database_is_fine() -> None:
    settings = await create_test_settings(
        env_vars={"OPENDENTAL_SOURCE_HOST": "127.0.0.1", "OPENDENTAL_SOURCE_DB": "opendental"}
    )
    try:
        engine = await ConnectionFactory.get_engine(settings, DatabaseType.SOURCE)
        assert engine.url.database == "test_opendental"
    finally:
        await ConnectionFactory.dispose_all()


async def test_non_enum_is_a_type_error() -> None:
    settings = await create_test_settings()
    with pytest.raises(TypeError):
        await ConnectionFactory.get_engine(settings, "source")  # type: ignore[arg-type]
