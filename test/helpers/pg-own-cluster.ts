/**
 * A PostgreSQL cluster of the test's own, which it may stop and start (the failing-dependency
 * suite, test/faults/postgres-restart.pg.test.ts) — never the shared cluster of TEST_DATABASE_URL
 * that the other test files use. Made as .ci/pg-cluster.sh makes one: initdb with trust
 * authentication for `postgres` in a new temporary directory, 127.0.0.1 at a free port (kept
 * across restarts: P's DATABASE_URL names it), fsync off — but synchronous_commit on, unlike
 * the shared cluster: a commit PostgreSQL acknowledged must survive its being killed (the OS
 * keeps what it wrote), else a stop -m immediate would lose answered writes; the server binaries are $PG_BIN or
 * the newest /usr/lib/postgresql/<version>/bin, run as the `postgres` user when we are root.
 */
import { execFile } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { freePort } from './app.js';

export interface OwnCluster {
  /** postgres://postgres@127.0.0.1:<port>/postgres */
  url: string;
  port: number;
  dir: string;
  /** pg_ctl stop -m <mode> (waits until the server is gone) */
  stop(mode: 'fast' | 'immediate'): Promise<void>;
  /** pg_ctl start on the same port (waits until it accepts connections) */
  start(): Promise<void>;
  /** stop (if running) and delete the directory */
  destroy(): Promise<void>;
}

function serverBin(): string {
  if (process.env.PG_BIN) return process.env.PG_BIN;
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).filter((v) => existsSync(join(root, v, 'bin', 'pg_ctl'))) : [];
  versions.sort((a, b) => Number(a) - Number(b));
  const newest = versions.at(-1);
  if (!newest) throw new Error('no PostgreSQL server binaries (set PG_BIN, or: apt-get install -y postgresql)');
  return join(root, newest, 'bin');
}

const asRoot = userInfo().uid === 0;

/** Run a server binary as the cluster's owner: `postgres` when we are root (PostgreSQL refuses root). */
function asOwner(bin: string, args: string[], timeoutMs = 60_000): Promise<string> {
  const [file, argv] = asRoot ? ['runuser', ['-u', 'postgres', '--', bin, ...args]] : [bin, args];
  return new Promise((resolve, reject) => {
    execFile(file, argv, { timeout: timeoutMs }, (err, stdout, stderr) => (err ? reject(new Error(`${bin} ${args.join(' ')}: ${err.message}\n${stderr}`)) : resolve(stdout)));
  });
}

export async function startOwnCluster(): Promise<OwnCluster> {
  const bin = serverBin();
  const dir = mkdtempSync(join(tmpdir(), 'mcp-pg-own-'));
  if (asRoot) chownSync(dir, Number(await asOwner('/usr/bin/id', ['-u'])), Number(await asOwner('/usr/bin/id', ['-g'])));
  const data = join(dir, 'data');
  await asOwner(join(bin, 'initdb'), ['-D', data, '-A', 'trust', '-U', 'postgres', '-E', 'UTF8', '--locale=C.UTF-8']);
  const port = await freePort();
  const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off`;
  let running = false;
  const cluster: OwnCluster = {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    dir,
    async start() {
      await asOwner(join(bin, 'pg_ctl'), ['-D', data, '-w', '-t', '30', '-l', join(dir, 'log'), '-o', options, 'start']);
      running = true;
    },
    async stop(mode) {
      await asOwner(join(bin, 'pg_ctl'), ['-D', data, '-w', '-t', '30', '-m', mode, 'stop']);
      running = false;
    },
    async destroy() {
      if (running) await cluster.stop('immediate').catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  await cluster.start();
  return cluster;
}
