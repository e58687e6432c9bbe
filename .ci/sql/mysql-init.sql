-- Databases and users of the local aioetl servers (demo and tests). Idempotent.
-- Run by .ci/services.sh, which also creates the administrator aioetl_admin with a
-- password generated on this machine (kept in .aioetl/local.env).
-- Accounts are on 'localhost' and '127.0.0.1' only (the server skips name resolution,
-- so a TCP login from 127.0.0.1 needs its own account). Under Docker, services.sh turns
-- '127.0.0.1' into '%': logins reach the containers from Docker's bridge, and compose
-- publishes the ports on the host's 127.0.0.1 only.
-- The passwords below are published, so none of these users holds a global privilege.
CREATE DATABASE IF NOT EXISTS opendental CHARACTER SET utf8mb3;
CREATE DATABASE IF NOT EXISTS opendental_replication CHARACTER SET utf8mb4;
CREATE DATABASE IF NOT EXISTS test_opendental CHARACTER SET utf8mb3;
CREATE DATABASE IF NOT EXISTS test_opendental_replication CHARACTER SET utf8mb4;
-- benchmarks/ (make bench): their own source and replica.
CREATE DATABASE IF NOT EXISTS aioetl_bench CHARACTER SET utf8mb3;
CREATE DATABASE IF NOT EXISTS aioetl_bench_replica CHARACTER SET utf8mb4;

-- The source reader: SELECT only, as a clinic would hand out (aioetl check warns, or
-- fails in production, when the source user holds more).
CREATE USER IF NOT EXISTS 'aioetl_ro'@'localhost' IDENTIFIED BY 'aioetl_ro_local';
CREATE USER IF NOT EXISTS 'aioetl_ro'@'127.0.0.1' IDENTIFIED BY 'aioetl_ro_local';
GRANT SELECT, SHOW VIEW ON opendental.* TO 'aioetl_ro'@'localhost', 'aioetl_ro'@'127.0.0.1';
GRANT SELECT, SHOW VIEW ON test_opendental.* TO 'aioetl_ro'@'localhost', 'aioetl_ro'@'127.0.0.1';
GRANT SELECT, SHOW VIEW ON aioetl_bench.* TO 'aioetl_ro'@'localhost', 'aioetl_ro'@'127.0.0.1';

-- The replica writer: everything, on the replica databases only.
CREATE USER IF NOT EXISTS 'aioetl'@'localhost' IDENTIFIED BY 'aioetl_local';
CREATE USER IF NOT EXISTS 'aioetl'@'127.0.0.1' IDENTIFIED BY 'aioetl_local';
GRANT ALL PRIVILEGES ON opendental_replication.* TO 'aioetl'@'localhost', 'aioetl'@'127.0.0.1';
GRANT ALL PRIVILEGES ON test_opendental_replication.* TO 'aioetl'@'localhost', 'aioetl'@'127.0.0.1';
GRANT ALL PRIVILEGES ON aioetl_bench_replica.* TO 'aioetl'@'localhost', 'aioetl'@'127.0.0.1';

-- Distinctive passwords for the secrets test (it searches all output for them).
CREATE USER IF NOT EXISTS 'aioetl_secret_ro'@'127.0.0.1' IDENTIFIED BY 'S3cret-MySQL-Only-For-Tests-8086';
GRANT SELECT ON test_opendental.* TO 'aioetl_secret_ro'@'127.0.0.1';
CREATE USER IF NOT EXISTS 'aioetl_secret_rw'@'127.0.0.1' IDENTIFIED BY 'S3cret-MySQL-Only-For-Tests-8086';
GRANT ALL PRIVILEGES ON test_opendental_replication.* TO 'aioetl_secret_rw'@'127.0.0.1';

