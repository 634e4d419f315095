/**
 * The corruption matrix (corruption-matrix.ts) for MariaDB: a SQL load is no transaction, so a streamed restore
 * that fails after its first statement leaves part of the backup behind, and must say the target is not to be trusted.
 */
import { MYSQL, createMysqlDatabase, createMysqlFixture, dropMysqlDatabase, mysqlExec } from '../support';
import { corruptionMatrix } from './corruption-matrix';

corruptionMatrix({
  label: 'MariaDB', engine: 'mariadb', server: MYSQL, passwordVariable: 'MYSQL_PWD',
  createSource: async (db) => {
    createMysqlFixture(db, 300);
    // ~3 MB of incompressible rows (a correlated subquery, so that each row gets bytes of its own): some fifty age chunks.
    mysqlExec(db, `CREATE TABLE blobs (id INT PRIMARY KEY, data MEDIUMBLOB NOT NULL);
      INSERT INTO blobs SELECT o.seq, (SELECT GROUP_CONCAT(RANDOM_BYTES(1024) SEPARATOR '') FROM seq_1_to_64 i WHERE i.seq <= 64 + 0 * o.seq)
      FROM seq_1_to_48 o;`);
  },
  changeSource: async (db) => { mysqlExec(db, "UPDATE customers SET note = 'changed' WHERE id % 10 = 0; DELETE FROM blobs WHERE id = 1;"); },
  dropSource: async (db) => dropMysqlDatabase(db),
  createEmpty: async (db) => createMysqlDatabase(db),
  drop: async (db) => dropMysqlDatabase(db),
  tableCount: async (db) => Number(mysqlExec(undefined, `SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = '${db}'`)[0][0]),
  streamedRollsBack: false,
});
