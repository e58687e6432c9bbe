-- Databases and users of the local aioetl servers (demo and tests). Idempotent.
-- Used by compose.yaml (docker-entrypoint-initdb.d) and by .ci/services.sh.
-- These are throwaway local credentials, the same on every developer machine.
CREATE DATABASE IF NOT EXISTS opendental CHARACTER SET utf8mb3;
CREATE DATABASE IF NOT EXISTS opendental_replication CHARACTER SET utf8mb4;
CREATE DATABASE IF NOT EXISTS test_opendental CHARACTER SET utf8mb3;
CREATE DATABASE IF NOT EXISTS test_opendental_replication CHARACTER SET utf8mb4;
-- benchmarks/ (make bench): their own source and replica.
CREATE DATABASE IF NOT EXISTS aioetl_bench CHARACTER SET utf8mb3;
CREATE DATABASE IF NOT EXISTS aioetl_bench_replica CHARACTER SET utf8mb4;

-- The source reader: SELECT only, as a clinic would hand out.
CREATE USER IF NOT EXISTS 'aioetl_ro'@'%' IDENTIFIED BY 'aioetl_ro_local';
CREATE USER IF NOT EXISTS 'aioetl_ro'@'localhost' IDENTIFIED BY 'aioetl_ro_local';
GRANT SELECT, SHOW VIEW ON opendental.* TO 'aioetl_ro'@'%', 'aioetl_ro'@'localhost';
GRANT SELECT, SHOW VIEW ON test_opendental.* TO 'aioetl_ro'@'%', 'aioetl_ro'@'localhost';
GRANT SELECT, SHOW VIEW ON aioetl_bench.* TO 'aioetl_ro'@'%', 'aioetl_ro'@'localhost';

-- The replica writer.
CREATE USER IF NOT EXISTS 'aioetl'@'%' IDENTIFIED BY 'aioetl_local';
CREATE USER IF NOT EXISTS 'aioetl'@'localhost' IDENTIFIED BY 'aioetl_local';
GRANT ALL PRIVILEGES ON opendental_replication.* TO 'aioetl'@'%', 'aioetl'@'localhost';
GRANT ALL PRIVILEGES ON test_opendental_replication.* TO 'aioetl'@'%', 'aioetl'@'localhost';
GRANT ALL PRIVILEGES ON aioetl_bench_replica.* TO 'aioetl'@'%', 'aioetl'@'localhost';

-- Distinctive passwords for the secrets test (it searches all output for them).
CREATE USER IF NOT EXISTS 'aioetl_secret_ro'@'%' IDENTIFIED BY 'S3cret-MySQL-Only-For-Tests-8086';
GRANT SELECT ON test_opendental.* TO 'aioetl_secret_ro'@'%';
CREATE USER IF NOT EXISTS 'aioetl_secret_rw'@'%' IDENTIFIED BY 'S3cret-MySQL-Only-For-Tests-8086';
GRANT ALL PRIVILEGES ON test_opendental_replication.* TO 'aioetl_secret_rw'@'%';

-- The administrator that writes the synthetic clinic into the source and sets up tests
-- (creating users with odd passwords, killing connections).
CREATE USER IF NOT EXISTS 'aioetl_admin'@'%' IDENTIFIED BY 'aioetl_admin_local';
CREATE USER IF NOT EXISTS 'aioetl_admin'@'localhost' IDENTIFIED BY 'aioetl_admin_local';
GRANT ALL PRIVILEGES ON *.* TO 'aioetl_admin'@'%' WITH GRANT OPTION;
GRANT ALL PRIVILEGES ON *.* TO 'aioetl_admin'@'localhost' WITH GRANT OPTION;
FLUSH PRIVILEGES;
