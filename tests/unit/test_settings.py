"""Settings rules, table-driven over DictConfigProvider."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from aioetl import (
    ConfigError,
    DatabaseType,
    DictConfigProvider,
    PostgresSchema,
    Settings,
    create_test_settings,
)

PROD_ENV = {
    "OPENDENTAL_SOURCE_HOST": "od.clinic.lan",
    "OPENDENTAL_SOURCE_PORT": "3307",
    "OPENDENTAL_SOURCE_DB": "opendental",
    "OPENDENTAL_SOURCE_USER": "reader",
    "OPENDENTAL_SOURCE_PASSWORD": "prod-secret-1",
    "MYSQL_REPLICATION_HOST": "replica.lan",
    "MYSQL_REPLICATION_DB": "opendental_replication",
    "MYSQL_REPLICATION_USER": "writer",
    "MYSQL_REPLICATION_PASSWORD": "prod-secret-2",
    "POSTGRES_ANALYTICS_HOST": "dwh.lan",
    "POSTGRES_ANALYTICS_DB": "opendental_analytics",
    "POSTGRES_ANALYTICS_USER": "loader",
    "POSTGRES_ANALYTICS_PASSWORD": "prod-secret-3",
}
TEST_ENV = {f"TEST_{k}": v.replace("prod", "test") for k, v in PROD_ENV.items()}


async def load(env: dict[str, str], environment: str | None = None, **kw: Any) -> Settings:
    return await Settings.load(environment, DictConfigProvider(env=env, **kw))


@pytest.mark.parametrize(
    ("explicit", "env", "expected"),
    [
        (None, {}, "production"),
        ("test", {}, "test"),
        ("TEST", {}, "test"),
        (" Production ", {}, "production"),
        (None, {"ETL_ENVIRONMENT": "test"}, "test"),
        (None, {"ENVIRONMENT": "test"}, "test"),
        (None, {"APP_ENV": "test"}, "test"),
        (None, {"ETL_ENVIRONMENT": "production", "ENVIRONMENT": "test"}, "production"),
        (None, {"ETL_ENVIRONMENT": "", "APP_ENV": "test"}, "test"),
        ("production", {"ETL_ENVIRONMENT": "test"}, "production"),
    ],
)
async def test_environment_resolution(
    explicit: str | None, env: dict[str, str], expected: str
) -> None:
    settings = await load(env, explicit)
    assert settings.environment == expected
    assert settings.env_prefix == ("TEST_" if expected == "test" else "")


@pytest.mark.parametrize(
    ("explicit", "env", "named"),
    [
        ("staging", {}, "the environment argument"),
        (None, {"ETL_ENVIRONMENT": "prod"}, "ETL_ENVIRONMENT"),
        (None, {"ENVIRONMENT": "dev"}, "ENVIRONMENT"),
        (None, {"APP_ENV": "qa"}, "APP_ENV"),
    ],
)
async def test_unknown_environment_is_an_error(
    explicit: str | None, env: dict[str, str], named: str
) -> None:
    with pytest.raises(ConfigError, match=named):
        await load(env, explicit)


async def test_production_reads_unprefixed_variables() -> None:
    settings = await load({**PROD_ENV, **TEST_ENV}, "production")
    config = settings.get_source_connection_config()
    assert (config["host"], config["port"], config["database"], config["user"]) == (
        "od.clinic.lan",
        3307,
        "opendental",
        "reader",
    )
    assert config["password"] == "prod-secret-1"


async def test_test_reads_only_prefixed_variables() -> None:
    settings = await load({**PROD_ENV, **TEST_ENV}, "test")
    assert settings.get_replication_connection_config()["host"] == "replica.lan"
    assert settings.get_replication_connection_config()["password"] == "test-secret-2"


@pytest.mark.parametrize("db_type", list(DatabaseType))
async def test_no_fallback_from_test_to_production(db_type: DatabaseType) -> None:
    settings = await load(PROD_ENV, "test")
    config = settings.get_database_config(db_type)
    assert config["host"] is None and config["database"] is None and config["user"] is None
    assert config["password"] is None
    assert not settings.validate_configs()


async def test_no_fallback_from_production_to_test() -> None:
    settings = await load(TEST_ENV, "production")
    assert settings.get_source_connection_config()["host"] is None
    assert not settings.validate_configs()


async def test_validate_logs_every_missing_variable_by_full_name(
    caplog: pytest.LogCaptureFixture,
) -> None:
    env = dict(TEST_ENV)
    del env["TEST_OPENDENTAL_SOURCE_HOST"]
    env["TEST_POSTGRES_ANALYTICS_USER"] = "  "
    settings = await load(env, "test")
    with caplog.at_level(logging.ERROR, logger="aioetl.config"):
        assert settings.validate_configs() is False
    text = caplog.text
    assert "TEST_OPENDENTAL_SOURCE_HOST" in text
    assert "TEST_POSTGRES_ANALYTICS_USER" in text
    assert "TEST_MYSQL_REPLICATION" not in text
    assert "secret" not in text


async def test_complete_settings_validate() -> None:
    assert (await load(TEST_ENV, "test")).validate_configs() is True


@pytest.mark.parametrize(
    ("db_type", "port"),
    [(DatabaseType.SOURCE, 3306), (DatabaseType.REPLICATION, 3306), (DatabaseType.ANALYTICS, 5432)],
)
async def test_standard_port_when_unset(db_type: DatabaseType, port: int) -> None:
    env = {k: v for k, v in TEST_ENV.items() if not k.endswith("_PORT")}
    assert (await load(env, "test")).get_database_config(db_type)["port"] == port


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("abc", "must be a port number, got 'abc'"),
        ("3306.0", "must be a port number"),
        ("-1", "must be a port number"),
        ("0", "from 1 to 65535, got 0"),
        ("65536", "from 1 to 65535, got 65536"),
        ("99999999", "from 1 to 65535"),
    ],
)
async def test_bad_port_names_the_variable(value: str, message: str) -> None:
    settings = await load({**TEST_ENV, "TEST_OPENDENTAL_SOURCE_PORT": value}, "test")
    with pytest.raises(ConfigError, match=message) as info:
        settings.get_source_connection_config()
    assert "TEST_OPENDENTAL_SOURCE_PORT" in str(info.value)
    assert "the injected environment" in str(info.value)


async def test_config_dict_has_defaults_and_pipeline_options() -> None:
    pipeline = {"connections": {"source": {"pool_size": 7, "read_timeout": 12}}}
    settings = await load(TEST_ENV, "test", pipeline=pipeline)
    source = settings.get_source_connection_config()
    assert source["pool_size"] == 7
    assert source["read_timeout"] == 12.0
    assert source["max_overflow"] == 10
    assert source["pool_timeout"] == 30
    assert source["pool_recycle"] == 1800
    assert source["rate_limit_interval"] == 0.1
    assert source["charset"] == "utf8mb4"
    replica = settings.get_replication_connection_config()
    assert replica["pool_size"] == 5
    assert replica["rate_limit_interval"] == 0.0
    assert "schema" not in replica


async def test_each_call_returns_a_fresh_dict() -> None:
    settings = await load(TEST_ENV, "test")
    first = settings.get_source_connection_config()
    first["host"] = "changed"
    assert settings.get_source_connection_config()["host"] == "od.clinic.lan"
    assert settings.get_source_connection_config() is not settings.get_source_connection_config()


@pytest.mark.parametrize(
    ("method", "schema"),
    [
        ("get_analytics_raw_connection_config", "raw"),
        ("get_analytics_staging_connection_config", "staging"),
        ("get_analytics_intermediate_connection_config", "intermediate"),
        ("get_analytics_marts_connection_config", "marts"),
    ],
)
async def test_schema_twins(method: str, schema: str) -> None:
    settings = await load(TEST_ENV, "test")
    assert getattr(settings, method)()["schema"] == schema
    assert settings.get_analytics_connection_config(PostgresSchema(schema))["schema"] == schema


async def test_analytics_schema_from_variable_and_default() -> None:
    settings = await load(TEST_ENV, "test")
    assert settings.get_database_config(DatabaseType.ANALYTICS)["schema"] == "raw"
    settings = await load({**TEST_ENV, "TEST_POSTGRES_ANALYTICS_SCHEMA": "Marts"}, "test")
    assert settings.get_database_config(DatabaseType.ANALYTICS)["schema"] == "marts"
    settings = await load({**TEST_ENV, "TEST_POSTGRES_ANALYTICS_SCHEMA": "public"}, "test")
    with pytest.raises(ConfigError, match="TEST_POSTGRES_ANALYTICS_SCHEMA"):
        settings.get_database_config(DatabaseType.ANALYTICS)


@pytest.mark.parametrize(
    ("db_type", "schema"),
    [("source", None), (DatabaseType.ANALYTICS, "raw"), (1, None)],
)
async def test_non_enum_arguments_are_type_errors(db_type: Any, schema: Any) -> None:
    settings = await load(TEST_ENV, "test")
    with pytest.raises(TypeError):
        settings.get_database_config(db_type, schema)


async def test_passwords_never_in_repr_or_str() -> None:
    settings = await load({**TEST_ENV, **PROD_ENV}, "test")
    for db_type in DatabaseType:
        config = settings.get_database_config(db_type)
        for shown in (repr(config), str(config), f"{config}", repr(settings), str(settings)):
            assert "secret" not in shown
        assert "***" in repr(config)
    assert "secret" not in repr(settings.provider)


@pytest.mark.parametrize(
    ("pipeline", "message"),
    [
        ({"connection": {}}, "unknown key 'connection'"),
        ({"connections": []}, "expected a mapping under connections"),
        ({"connections": {"warehouse": {}}}, "unknown database connections.warehouse"),
        ({"connections": {"source": 5}}, "expected a mapping under connections.source"),
        ({"connections": {"source": {"pool_size": 0}}}, "pool_size must be an integer >= 1"),
        ({"connections": {"source": {"pool_size": "5"}}}, "pool_size must be an integer"),
        ({"connections": {"source": {"pool_size": True}}}, "pool_size must be an integer"),
        ({"connections": {"source": {"pool_timeout": -1}}}, "pool_timeout must be a number"),
        ({"connections": {"source": {"application_name": "x"}}}, "not a known option"),
        ({"connections": {"analytics": {"read_timeout": 5}}}, "not a known option"),
        ({"connections": {"analytics": {"statement_timeout": 5}}}, "not a known option"),
        ({"connections": {"replication": {"driver": "mysqlclient"}}}, "one of aiomysql, asyncmy"),
        ({"connections": {"source": {"rate_limit_interval": -0.1}}}, "rate_limit_interval"),
        ({"replication": {"rebuild_read": "fast"}}, "rebuild_read .*one of pages, scan"),
    ],
)
async def test_bad_pipeline_is_rejected(pipeline: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        await load(TEST_ENV, "test", pipeline=pipeline)


@pytest.mark.parametrize(
    ("tables", "message"),
    [
        ({}, "missing the 'tables' mapping"),
        ({"tables": ["patient"]}, "'tables' must be a mapping"),
        ({"tables": "patient"}, "'tables' must be a mapping"),
        ({"tables": {"pat`ient": {"primary_key": "PatNum"}}}, "not a valid identifier"),
        ({"tables": {"patient; DROP": {"primary_key": "PatNum"}}}, "not a valid identifier"),
        ({"tables": {"pat ient": {"primary_key": "PatNum"}}}, "not a valid identifier"),
        ({"tables": {"pat'ient": {"primary_key": "PatNum"}}}, "not a valid identifier"),
        ({"tables": {"patient": {"primary_key": "Pat Num"}}}, "not a valid identifier"),
        ({"tables": {"patient": {"primary_key": "PatNum", "batch_size": 0}}}, "batch_size"),
        ({"tables": {"patient": {"primary_key": "PatNum", "batch_size": -5}}}, "batch_size"),
        (
            {"tables": {"patient": {"primary_key": "PatNum", "extraction_strategy": "cdc"}}},
            "one of full, incremental",
        ),
        (
            {
                "tables": {
                    "patient": {"primary_key": "PatNum", "extraction_strategy": "incremental"}
                }
            },
            "no incremental_column",
        ),
        ({"tables": {"patient": {"primary_key": "PatNum", "colour": "red"}}}, "not a known table"),
    ],
)
async def test_bad_tables_are_rejected(tables: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        await load(TEST_ENV, "test", tables=tables)


async def test_table_config_defaults_and_unknown_table() -> None:
    settings = await load(
        TEST_ENV,
        "test",
        tables={"tables": {"definition": {"primary_key": "DefNum"}}},
    )
    config = settings.get_table_config("definition")
    assert config["extraction_strategy"] == "full"
    assert config["batch_size"] == 10_000
    assert config["incremental_column"] is None
    config["batch_size"] = 1
    assert settings.get_table_config("definition")["batch_size"] == 10_000
    with pytest.raises(ConfigError, match="'patient' is not listed"):
        settings.get_table_config("patient")
    assert settings.table_names == ["definition"]


async def test_create_test_settings_defaults_and_overrides() -> None:
    settings = await create_test_settings()
    assert settings.environment == "test"
    assert isinstance(settings.provider, DictConfigProvider)
    source = settings.get_source_connection_config()
    assert (source["host"], source["port"], source["database"]) == (
        "127.0.0.1",
        3306,
        "test_opendental",
    )
    assert settings.get_replication_connection_config()["database"] == (
        "test_opendental_replication"
    )
    analytics = settings.get_database_config(DatabaseType.ANALYTICS)
    assert (analytics["database"], analytics["port"], analytics["schema"]) == (
        "test_opendental_analytics",
        5432,
        "raw",
    )
    settings = await create_test_settings(
        env_vars={"TEST_OPENDENTAL_SOURCE_DB": "other"},
        pipeline_config={"connections": {"source": {"pool_size": 2}}},
        tables_config={"tables": {"definition": {"primary_key": "DefNum"}}},
    )
    assert settings.get_source_connection_config()["database"] == "other"
    assert settings.get_source_connection_config()["pool_size"] == 2
    assert settings.table_names == ["definition"]


@pytest.mark.parametrize(
    ("changes", "databases", "message"),
    [
        ({}, list(DatabaseType), None),
        (
            {"TEST_OPENDENTAL_SOURCE_HOST": ""},
            list(DatabaseType),
            "TEST_OPENDENTAL_SOURCE_HOST is not set or empty (read from the injected environment); "
            "the source database needs it",
        ),
        (
            {"TEST_POSTGRES_ANALYTICS_DB": " ", "TEST_POSTGRES_ANALYTICS_USER": None},
            list(DatabaseType),
            "TEST_POSTGRES_ANALYTICS_DB, TEST_POSTGRES_ANALYTICS_USER are not set or empty",
        ),
        # Only the databases asked about count (replicate --target replica needs no warehouse).
        ({"TEST_POSTGRES_ANALYTICS_DB": ""}, [DatabaseType.SOURCE, DatabaseType.REPLICATION], None),
    ],
)
async def test_require_variables(
    changes: dict[str, str | None], databases: list[DatabaseType], message: str | None
) -> None:
    env = dict(TEST_ENV)
    for name, value in changes.items():
        if value is None:
            env.pop(name)
        else:
            env[name] = value
    settings = await load(env, "test")
    if message is None:
        settings.require_variables(databases)
        return
    with pytest.raises(ConfigError) as info:
        settings.require_variables(databases)
    assert message in str(info.value)
    assert "secret" not in str(info.value)


@pytest.mark.parametrize(
    ("listed", "asked", "message"),
    [
        (["patient", "appointment"], "patients", "(listed: patient, appointment)"),
        ([], "patient", "(no table is listed)"),
        (
            [f"t{n:02d}" for n in range(20)] + ["procedurelog"],
            "procedurlog",
            "did you mean procedurelog?",
        ),
        ([f"t{n:02d}" for n in range(20)], "zzz", "20 tables are listed, none with a close name"),
    ],
)
async def test_an_unknown_table_names_the_known_ones(
    listed: list[str], asked: str, message: str
) -> None:
    tables = {"tables": {name: {"primary_key": "Id"} for name in listed}}
    settings = await load(TEST_ENV, "test", tables=tables)
    with pytest.raises(ConfigError) as info:
        settings.get_table_config(asked)
    assert f"table {asked!r} is not listed" in str(info.value)
    assert message in str(info.value)
