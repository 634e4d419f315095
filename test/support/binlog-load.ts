/**
 * Writes for measuring binlog streaming against a real MariaDB: a ticker whose acknowledged commits tell how much a
 * store or a restore lost, and sysbench's write-only OLTP load for volume. The password reaches both clients in
 * MYSQL_PWD, never in their arguments.
 */
import { ChildProcess, spawn } from 'node:child_process';
import { MariadbAddress, mariadbExec } from './mariadb-binlog-server';
import { secondsLost } from './wal-load';

/**
 * Commits one row into `{database}.ticks` (id, at DATETIME(6) = the statement's NOW(6)) every `everyMs`, through one
 * long-lived mariadb client, and remembers when each commit was acknowledged. When the server goes away the client
 * exits, and the ticker starts another every 200 ms until the server answers again (a restart is ridden out).
 */
export class BinlogTicker {
  /** Tick id → when its commit was acknowledged (ms since the epoch). */
  readonly acked = new Map<number, number>();
  /** Client runs that ended (the server restarted or was killed). */
  disconnects = 0;
  private stopped = false;
  private child?: ChildProcess;
  private timer?: NodeJS.Timeout;
  private readonly done: Promise<void>;

  constructor(private readonly server: MariadbAddress, private readonly database: string, private readonly everyMs = 100) {
    mariadbExec(server, database, 'CREATE TABLE IF NOT EXISTS ticks (id BIGINT AUTO_INCREMENT PRIMARY KEY, at DATETIME(6) NOT NULL)');
    this.done = this.loop();
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      await this.runClient();
      if (!this.stopped) {
        this.disconnects++;
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  }

  private runClient(): Promise<void> {
    return new Promise((resolve) => {
      const s = this.server;
      const child = spawn('mariadb', ['--no-defaults', '--protocol=tcp', '-h', s.host, '-P', String(s.port), '-u', s.user, '--batch', '--skip-column-names',
        '--unbuffered', this.database], { env: { ...process.env, MYSQL_PWD: s.password }, stdio: ['pipe', 'pipe', 'ignore'] });
      this.child = child;
      let pending = '';
      child.stdout!.on('data', (b: Buffer) => {
        const lines = (pending + b.toString()).split('\n');
        pending = lines.pop()!;
        for (const line of lines) if (/^\d+$/.test(line.trim())) this.acked.set(Number(line.trim()), Date.now());
      });
      child.stdin!.on('error', () => undefined);
      const tick = () => {
        if (this.stopped || child.exitCode !== null) return;
        child.stdin!.write('INSERT INTO ticks (at) VALUES (NOW(6)); SELECT LAST_INSERT_ID();\n');
        this.timer = setTimeout(tick, this.everyMs);
      };
      child.on('spawn', tick);
      child.on('close', () => {
        clearTimeout(this.timer);
        this.child = undefined;
        resolve();
      });
    });
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.child?.stdin!.end();
    await this.done;
  }

  get lastAcked(): number {
    return Math.max(...this.acked.keys());
  }

  /** Seconds of acknowledged ticks lost by a store or restore that holds ticks up to `newest` (wal-load's secondsLost). */
  secondsLost(newest: number): number {
    return secondsLost(this.acked, newest);
  }
}

export interface SysbenchRun {
  readonly child: ChildProcess;
  /** Transactions per second, from sysbench's 1-second reports so far. */
  readonly tps: number[];
  /** Resolves when sysbench ends, with its output. */
  readonly finished: Promise<string>;
}

function sysbenchArgs(server: MariadbAddress, database: string, tables: number, tableSize: number): string[] {
  return ['oltp_write_only', '--db-driver=mysql', `--mysql-host=${server.host}`, `--mysql-port=${server.port}`, `--mysql-user=${server.user}`,
    `--mysql-db=${database}`, `--tables=${tables}`, `--table-size=${tableSize}`];
}

function runSysbench(args: readonly string[], server: MariadbAddress): { child: ChildProcess; finished: Promise<string>; onLine: (f: (l: string) => void) => void } {
  const child = spawn('sysbench', args, { env: { ...process.env, MYSQL_PWD: server.password }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const listeners: ((line: string) => void)[] = [];
  let pending = '';
  const take = (b: Buffer) => {
    output += b.toString();
    const lines = (pending + b.toString()).split('\n');
    pending = lines.pop()!;
    for (const line of lines) for (const f of listeners) f(line);
  };
  child.stdout!.on('data', take);
  child.stderr!.on('data', take);
  const finished = new Promise<string>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => (code === 0 || signal === 'SIGTERM' || signal === 'SIGINT'
      ? resolve(output) : reject(new Error(`sysbench ${args[args.length - 1]} failed (${code ?? signal}): ${output.slice(-2000)}`))));
  });
  return { child, finished, onLine: (f) => listeners.push(f) };
}

/** Creates sysbench's tables in `database` (which must exist). */
export async function sysbenchPrepare(server: MariadbAddress, database: string, tables = 2, tableSize = 10_000): Promise<void> {
  await runSysbench([...sysbenchArgs(server, database, tables, tableSize), 'prepare'], server).finished;
}

/** Runs sysbench's write-only OLTP load for `seconds` (0: until killed) with `threads`, at full speed unless `rate` (transactions/s). */
export function sysbenchRun(server: MariadbAddress, database: string, options: { seconds: number; threads?: number; rate?: number; tables?: number; tableSize?: number }): SysbenchRun {
  const run = runSysbench([...sysbenchArgs(server, database, options.tables ?? 2, options.tableSize ?? 10_000), `--time=${options.seconds}`,
    `--threads=${options.threads ?? 2}`, `--rate=${options.rate ?? 0}`, '--report-interval=1', '--db-ps-mode=disable', '--mysql-ignore-errors=all', 'run'], server);
  const tps: number[] = [];
  run.onLine((line) => {
    const m = / tps: ([\d.]+)/.exec(line);
    if (m) tps.push(Number(m[1]));
  });
  return { child: run.child, tps, finished: run.finished };
}

/**
 * sysbench's load kept going across server restarts: sysbench ends (and may crash) when its server goes away, so a
 * new run starts a second later, until stop().
 */
export class SysbenchLoad {
  /** Runs started; more than one means the load rode out a restart. */
  runs = 0;
  readonly tps: number[] = [];
  private current?: SysbenchRun;
  private stopped = false;
  private readonly done: Promise<void>;

  constructor(private readonly server: MariadbAddress, private readonly database: string, private readonly options: { threads?: number; rate?: number } = {}) {
    this.done = this.loop();
  }

  private async loop(): Promise<void> {
    while (!this.stopped) {
      this.runs++;
      this.current = sysbenchRun(this.server, this.database, { seconds: 0, ...this.options });
      const tps = this.current.tps;
      await this.current.finished.catch(() => undefined);
      this.tps.push(...tps);
      if (!this.stopped) await new Promise((r) => setTimeout(r, 1000));
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.current?.child.kill('SIGTERM');
    await this.done;
  }
}
