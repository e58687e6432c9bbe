"""Which connections may load local files, multi-statements off, identifiers for text().

Pure: connection objects are built without connecting, engines without a server.
"""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.dialects import mysql
from sqlalchemy.dialects.postgresql import asyncpg

from aioetl import ConfigError, ConnectionFactory, DatabaseType, create_test_settings
from aioetl.core.engine_options import engine_spec
from aioetl.core.infile import GuardedAiomysqlConnection, GuardedAsyncmyConnection
from aioetl.replication.rendering import for_text, quote_mysql
from aioetl.replication.state import quote_postgres

LOCAL_FILES = 1 << 7
MULTI_STATEMENTS = 1 << 16


@pytest.mark.parametrize(
    ("load_data", "local_files"), [(False, False), (True, True)], ids=["reader", "writer"]
)
async def test_aiomysql_flags(load_data: bool, local_files: bool) -> None:
    connection = GuardedAiomysqlConnection(
        user="u", local_infile=True, client_flag=MULTI_STATEMENTS, load_data=load_data
    )
    assert bool(connection.client_flag & LOCAL_FILES) is local_files
    assert not connection.client_flag & MULTI_STATEMENTS
    assert not connection._local_infile  # aiomysql's own (unguarded) handler stays off


async def test_asyncmy_flags() -> None:
    connection = GuardedAsyncmyConnection(
        user="u", local_infile=True, client_flag=MULTI_STATEMENTS | LOCAL_FILES
    )
    assert not connection._client_flag & MULTI_STATEMENTS
    assert not connection._local_infile


async def test_only_a_load_data_spec_may_load_local_files() -> None:
    settings = await create_test_settings(
        pipeline_config={"connections": {"replication": {"driver": "asyncmy"}}}
    )
    for db_type in DatabaseType:
        spec = engine_spec(settings.get_database_config(db_type), db_type, "test")
        assert "local_infile" not in spec.kwargs["connect_args"]
    with pytest.raises(ConfigError, match="aiomysql"):
        engine_spec(
            settings.get_database_config(DatabaseType.REPLICATION),
            DatabaseType.REPLICATION,
            "test",
            load_data=True,
        )
    with pytest.raises(ConfigError):
        engine_spec(
            settings.get_database_config(DatabaseType.ANALYTICS),
            DatabaseType.ANALYTICS,
            "test",
            load_data=True,
        )


async def test_the_load_data_engine_is_the_replicas_own() -> None:
    settings = await create_test_settings(
        pipeline_config={"connections": {"replication": {"driver": "asyncmy"}}}
    )
    try:
        replica = await ConnectionFactory.get_engine(settings, DatabaseType.REPLICATION)
        writer = await ConnectionFactory.get_load_data_engine(replica)
        assert writer is not replica
        assert writer.url.drivername == "mysql+aiomysql"
        assert writer.url.database == replica.url.database
        assert await ConnectionFactory.get_load_data_engine(replica) is writer
        # The same settings read through aiomysql are still not the writer.
        reader = await ConnectionFactory.get_engine(
            settings, DatabaseType.REPLICATION, driver="aiomysql"
        )
        assert reader is not writer
        for db_type in (DatabaseType.SOURCE, DatabaseType.ANALYTICS):
            other = await ConnectionFactory.get_engine(settings, db_type)
            with pytest.raises(ConfigError, match="only done into the replica"):
                await ConnectionFactory.get_load_data_engine(other)
    finally:
        await ConnectionFactory.dispose_all()


NAMES = ["p%q", ":name", "a:b", "x::int", "%(v)s", "it's", 'say "hi"', "back`tick", "b\\:s"]


@pytest.mark.parametrize("name", NAMES)
def test_identifiers_reach_the_driver_unchanged(name: str) -> None:
    for dialect in (mysql.dialect(paramstyle="format"), asyncpg.dialect()):
        quoted = quote_mysql(name) if dialect.name == "mysql" else for_text(quote_postgres(name))
        clause = text(f"SELECT {quoted} FROM t WHERE k = :k")
        compiled = clause.compile(dialect=dialect)
        assert list(compiled.params) == ["k"]  # the name holds no bind
        sql = str(compiled)
        if dialect.name == "mysql":
            # The driver formats the statement with its parameters: %% becomes %.
            sql = sql.replace("%s", "?").replace("%%", "%")
            assert sql == "SELECT `" + name.replace("`", "``") + "` FROM t WHERE k = ?"
        else:
            assert sql.startswith('SELECT "' + name.replace('"', '""') + '" FROM t')
