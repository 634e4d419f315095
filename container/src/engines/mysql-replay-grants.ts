/**
 * Whether an account may replay a binlog into one database and nothing else. mariadb-binlog's --database keeps the
 * events whose default database is the dumped one, and --rewrite-db renames that default only: a statement that names
 * its tables (`ALTER TABLE shop.t …`, `DROP TABLE analytics.t`) is neither filtered nor renamed, and runs wherever the
 * replaying account may. So the account that replays must hold rights on the target database alone, besides BINLOG
 * REPLAY (and USAGE, which is none): its SHOW GRANTS lines are read here, and any other is what it holds beyond.
 */

/** Undoes the backquoting of a name in SHOW GRANTS, and the backslashes that make _ and % literal in a database grant. */
function grantedDatabase(quoted: string): string {
  return quoted.slice(1, -1).replace(/``/g, '`').replace(/\\([_%\\])/g, '$1');
}

/** The SHOW GRANTS lines that give rights beyond `database` (other than USAGE and BINLOG REPLAY on *.*). */
export function grantsBeyond(lines: readonly string[], database: string): string[] {
  return lines.filter((line) => {
    const grant = /^GRANT (.+?) ON (\*|`(?:[^`]|``)+`)\.(\*|`(?:[^`]|``)+`) TO /.exec(line);
    if (!grant) return true; // a role, a PROXY grant, or anything this does not read
    const [, privileges, db] = grant;
    if (db === '*') return !privileges.split(',').every((p) => ['USAGE', 'BINLOG REPLAY'].includes(p.trim()));
    return grantedDatabase(db) !== database;
  }).map((line) => line.replace(/ IDENTIFIED BY .*$/, ''));
}
