/**
 * Scratch MariaDB databases on the local server (scripts/services.sh), with a realistic fixture:
 * a foreign key, a view, a stored function, a trigger, a user with a grant, strings full of
 * quotes, backslashes and '),(' that trip naive INSERT parsing, and binary data.
 */
import { spawnSync } from 'node:child_process';
import { TableStats } from './postgres';

export const MYSQL = { host: '127.0.0.1', port: Number(process.env.MYSQL_TCP_PORT ?? 3306), user: 'restorable', password: 'restorable' };

/** Runs SQL with the mysql client; returns the batch output rows. The test password travels in MYSQL_PWD. */
export function mysqlExec(database: string | undefined, sql: string): string[][] {
  const result = spawnSync('mysql', ['-h', MYSQL.host, '-P', String(MYSQL.port), '-u', MYSQL.user, '--batch', '--skip-column-names',
    ...(database ? [database] : [])], { input: sql, encoding: 'utf8', env: { ...process.env, MYSQL_PWD: MYSQL.password }, maxBuffer: 64 * 1024 * 1024 });
  if (result.status !== 0) {
    throw new Error(`mysql failed (run 'npm run services' if the server is down): ${result.stderr || result.error?.message}`);
  }
  return result.stdout.split('\n').filter((l) => l !== '').map((l) => l.split('\t'));
}

export const mysqlUser = (database: string) => `${database.slice(0, 60)}_app`;

export function dropMysqlDatabase(database: string): void {
  mysqlExec(undefined, `DROP DATABASE IF EXISTS \`${database}\`; DROP USER IF EXISTS '${mysqlUser(database)}'@'localhost';`);
}

export function createMysqlDatabase(database: string): void {
  mysqlExec(undefined, `DROP DATABASE IF EXISTS \`${database}\`; CREATE DATABASE \`${database}\` CHARACTER SET utf8mb4;`);
}

export function createMysqlFixture(database: string, customers: number): void {
  createMysqlDatabase(database);
  const user = mysqlUser(database);
  mysqlExec(database, `
    CREATE TABLE customers (id INT AUTO_INCREMENT PRIMARY KEY, name VARCHAR(200) NOT NULL, note TEXT NULL, photo BLOB NULL);
    CREATE TABLE orders (id BIGINT AUTO_INCREMENT PRIMARY KEY, customer_id INT NOT NULL, amount DECIMAL(12,2) NOT NULL,
      CONSTRAINT fk_customer FOREIGN KEY (customer_id) REFERENCES customers (id));
    CREATE TABLE audit_log (id BIGINT AUTO_INCREMENT PRIMARY KEY, action VARCHAR(20) NOT NULL, order_id BIGINT NOT NULL);
    CREATE TABLE empty_table (id INT);
    CREATE FUNCTION order_total(cid INT) RETURNS DECIMAL(14,2) READS SQL DATA
      RETURN (SELECT COALESCE(SUM(amount), 0) FROM orders WHERE customer_id = cid);
    CREATE TRIGGER orders_audit AFTER INSERT ON orders FOR EACH ROW INSERT INTO audit_log (action, order_id) VALUES ('insert', NEW.id);
    CREATE VIEW customer_totals AS SELECT c.id, c.name, order_total(c.id) AS total FROM customers c;
    INSERT INTO customers (name, note, photo)
      SELECT CASE MOD(seq, 4) WHEN 0 THEN CONCAT('O''Brien ', seq) WHEN 1 THEN CONCAT('tricky),(', seq, ');')
                              WHEN 2 THEN CONCAT('back\\\\slash \\'q\\' "dq" ', seq) ELSE CONCAT('Zoë\\n', seq) END,
             IF(MOD(seq, 3) = 0, NULL, MD5(seq)), IF(MOD(seq, 5) = 0, UNHEX(SHA2(seq, 256)), NULL)
      FROM seq_1_to_${customers};
    INSERT INTO orders (customer_id, amount) SELECT 1 + MOD(seq, ${customers}), ROUND(RAND() * 1000, 2) FROM seq_1_to_${customers * 3};
    CREATE USER IF NOT EXISTS '${user}'@'localhost' IDENTIFIED BY 'app-password-not-real';
    GRANT SELECT ON \`${database}\`.customer_totals TO '${user}'@'localhost';`);
}

/** Row count and CHECKSUM TABLE of every base table. */
export function mysqlTableStats(database: string): Map<string, TableStats> {
  const tables = mysqlExec(database, `SELECT table_name FROM information_schema.tables WHERE table_schema = '${database}' AND table_type = 'BASE TABLE' ORDER BY 1`);
  const stats = new Map<string, TableStats>();
  for (const [table] of tables) {
    const [[rows]] = mysqlExec(database, `SELECT COUNT(*) FROM \`${table}\``);
    const [[, checksum]] = mysqlExec(database, `CHECKSUM TABLE \`${table}\``);
    stats.set(table, { rows: Number(rows), checksum });
  }
  return stats;
}
