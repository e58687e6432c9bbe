-- Role, databases and schemas of the local aioetl warehouse (demo and tests). Idempotent.
-- Run with psql (it uses \gexec and \connect); used by compose.yaml and .ci/services.sh.
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'aioetl') THEN
    CREATE ROLE aioetl LOGIN PASSWORD 'aioetl_local';
  END IF;
END $$;

-- A second login with a distinctive password: the secrets test looks for it in all output.
DO $$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'aioetl_secret') THEN
    CREATE ROLE aioetl_secret LOGIN PASSWORD 'S3cret-PG-Only-For-Tests-5150' IN ROLE aioetl;
  END IF;
END $$;
-- Its sessions act as aioetl, so what they create stays usable by the other tests.
ALTER ROLE aioetl_secret SET role TO 'aioetl';

SELECT 'CREATE DATABASE opendental_analytics OWNER aioetl ENCODING ''UTF8'' TEMPLATE template0'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'opendental_analytics') \gexec
SELECT 'CREATE DATABASE test_opendental_analytics OWNER aioetl ENCODING ''UTF8'' TEMPLATE template0'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'test_opendental_analytics') \gexec

SELECT 'CREATE DATABASE aioetl_bench OWNER aioetl ENCODING ''UTF8'' TEMPLATE template0'
WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'aioetl_bench') \gexec

\connect aioetl_bench
CREATE SCHEMA IF NOT EXISTS raw AUTHORIZATION aioetl;

\connect opendental_analytics
CREATE SCHEMA IF NOT EXISTS raw AUTHORIZATION aioetl;
CREATE SCHEMA IF NOT EXISTS staging AUTHORIZATION aioetl;
CREATE SCHEMA IF NOT EXISTS intermediate AUTHORIZATION aioetl;
CREATE SCHEMA IF NOT EXISTS marts AUTHORIZATION aioetl;

\connect test_opendental_analytics
CREATE SCHEMA IF NOT EXISTS raw AUTHORIZATION aioetl;
CREATE SCHEMA IF NOT EXISTS staging AUTHORIZATION aioetl;
CREATE SCHEMA IF NOT EXISTS intermediate AUTHORIZATION aioetl;
CREATE SCHEMA IF NOT EXISTS marts AUTHORIZATION aioetl;
