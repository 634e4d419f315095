/**
 * The binlog streamer's checks of a server, given the answers a server gives: what no server here can be (MySQL 8) and
 * what a malicious one could send (a binlog name that reaches outside the spool). The real-server refusals are in
 * binlog-stream-streams.test.ts.
 */
import { BinlogServerRefused, ServerQuery, checkBinlogServer } from '../../container/src/binlog/server-checks';

function server(answers: { version?: string; files?: string[][] }): ServerQuery {
  return async (sql: string) => {
    if (sql.startsWith('SELECT VERSION()')) return [[answers.version ?? '10.11.19-MariaDB-0+deb12u1', '1', '1', 'ROW', 'FULL', String(16 * 1048576)]];
    if (sql === 'SHOW GRANTS FOR CURRENT_USER') return [['GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO `streamer`@`%`']];
    if (sql === 'CALL mysql.rds_show_configuration') throw new Error('ERROR 1305 (42000): PROCEDURE mysql.rds_show_configuration does not exist');
    if (sql === 'SHOW BINARY LOGS') return answers.files ?? [['binlog.000001', '1024'], ['binlog.000002', '4096']];
    throw new Error(`unexpected query ${sql}`);
  };
}

test('a MariaDB server with ROW binlogs and the grants gives its files, oldest first', async () => {
  const facts = await checkBinlogServer(server({}), 1_500_000_000);
  expect(facts).toEqual({ version: '10.11.19-MariaDB-0+deb12u1', serverId: 1, files: [{ name: 'binlog.000001', size: 1024 }, { name: 'binlog.000002', size: 4096 }] });
});

test('a MySQL 8 server is refused with the reason', async () => {
  await expect(checkBinlogServer(server({ version: '8.0.36' }), 1_500_000_000)).rejects.toThrow(
    new BinlogServerRefused('the server is not MariaDB (version 8.0.36): binlog streaming is for MariaDB only, since the agent image carries MariaDB\'s client ' +
      'tools, whose binlog coordinates and GTIDs differ from MySQL 8\'s; MySQL 8 sources stay dump-only'));
});

test.each([['../../home/node/.bashrc.000001'], ['binlog.000001/x'], ['binlog'], ['bin\nlog.000001']])(
  'a binlog named %j is refused before mariadb-binlog could write a file of that name', async (name) => {
    const refusal = checkBinlogServer(server({ files: [['binlog.000001', '10'], [name, '10']] }), 1_500_000_000);
    await expect(refusal).rejects.toBeInstanceOf(BinlogServerRefused);
    await expect(refusal).rejects.toThrow(`the server lists a binary log named ${JSON.stringify(name)}, which is not a binlog file name`);
  });
