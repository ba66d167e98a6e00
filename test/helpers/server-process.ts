/**
 * P as a real server PROCESS, for the crash and soak suites (test/crash, test/soak): spawned with
 * `mcp-consent-proxy serve` from the sources (test/helpers/cli-bin.ts) — or through an entry of the test's own
 * choice (the soak's stats channel, test/helpers/serve-with-stats.ts) — on a fixed port, data
 * directory and SECRET_KEY, so it can be killed (SIGKILL) and started again on the same state.
 *
 * Engine: SQLite at `<dir>/proxy.db` by default; with TEST_ENGINE=postgres the cast gives each data
 * directory a fresh database on the test cluster (test/helpers/engine.ts). When the test process
 * has DATABASE_URL set (`postgres://…`), that database is passed to the server and the CLI instead
 * (it is then the caller's to provide, and empty).
 */
import { onPostgres } from './engine.js';
import { CLI_ARGS } from './cli-bin.js';
import { fakeUpstreamEnv } from './fake-upstream.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export interface ServerEnvOptions {
  port: number;
  dir: string;
  secretKey: string;
  upstream: { issuer: string; clientId: string; clientSecret: string };
  mcpUrl: string;
  adminSubjects?: string;
  extra?: Record<string, string>;
}

/** The engine the suites run on: `postgres` with TEST_ENGINE=postgres (a fresh database per data directory, test/helpers/cast.ts) or DATABASE_URL set, else `sqlite`. */
export const ENGINE: 'sqlite' | 'postgres' = process.env.DATABASE_URL || onPostgres ? 'postgres' : 'sqlite';

/** The environment of P (server and CLI alike): the same for every start, so a restart resumes the same state. */
export function serverEnv(o: ServerEnvOptions): Record<string, string> {
  const unlimited = '100000000/1m';
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: process.env.HOME ?? o.dir,
    PORT: String(o.port),
    HOST: '127.0.0.1',
    PUBLIC_URL: `http://127.0.0.1:${o.port}`,
    // The data directory (checkpoint file) is DATABASE_PATH's, for both engines.
    DATABASE_PATH: join(o.dir, 'proxy.db'),
    SECRET_KEY: o.secretKey,
    ...fakeUpstreamEnv(o.upstream),
    MCP_UPSTREAM_URL: o.mcpUrl,
    // Load from one loopback address: the per-IP budgets would measure themselves, not P.
    RATE_LIMIT_REGISTER: unlimited,
    RATE_LIMIT_TOKEN: unlimited,
    RATE_LIMIT_AUTHORIZE: unlimited,
    RATE_LIMIT_REJECTED: unlimited,
    LOG_LEVEL: 'warn',
    ...(o.adminSubjects ? { ADMIN_SUBJECTS: o.adminSubjects } : {}),
    ...o.extra,
  };
  if (process.env.DATABASE_URL) env.DATABASE_URL = process.env.DATABASE_URL;
  return env;
}

export interface ServerProcess {
  child: ChildProcess;
  url: string;
  /** ms from spawn until /readyz answered 200 */
  readyMs: number;
  output(): string;
  exit: Promise<number | null>;
  /** SIGKILL; resolves when the process is gone */
  kill(): Promise<void>;
  /** SIGTERM (graceful shutdown); resolves with the exit code */
  stop(): Promise<number | null>;
}

export interface StartOptions {
  /** node arguments before the entry (e.g. --expose-gc) */
  nodeArgs?: string[];
  /** the script to run instead of `serve` (with its own arguments) */
  entry?: string[];
  /** give up after this long (ms) */
  timeoutMs?: number;
}

/** Spawn P and wait until /readyz answers 200 (database and upstream ready). */
export async function startServerProcess(env: Record<string, string>, options: StartOptions = {}): Promise<ServerProcess> {
  const url = env.PUBLIC_URL as string;
  const started = performance.now();
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), ...(options.entry ?? [...CLI_ARGS, 'serve'])], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout?.on('data', (d) => (output = (output + String(d)).slice(-20_000)));
  child.stderr?.on('data', (d) => (output = (output + String(d)).slice(-20_000)));
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let exited = false;
  void exit.then(() => (exited = true));
  const deadline = started + (options.timeoutMs ?? 30_000);
  let readyMs: number | undefined;
  while (readyMs === undefined) {
    if (exited) throw new Error(`P exited before it was ready:\n${output}`);
    if (performance.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`P was not ready within ${options.timeoutMs ?? 30_000} ms:\n${output}`);
    }
    try {
      const res = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(1000) });
      await res.arrayBuffer();
      if (res.status === 200) readyMs = performance.now() - started;
    } catch {
      // not listening yet
    }
    if (readyMs === undefined) await new Promise((r) => setTimeout(r, 10));
  }
  return {
    child,
    url,
    readyMs,
    output: () => output,
    exit,
    async kill() {
      if (!exited) child.kill('SIGKILL');
      await exit;
    },
    async stop() {
      if (!exited) child.kill('SIGTERM');
      return exit;
    },
  };
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Run `mcp-consent-proxy <args>` with P's environment (e.g. `audit verify --json`). */
export function runCli(env: Record<string, string>, args: string[], timeoutMs = 60_000): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...CLI_ARGS, ...args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d) => (stdout += d));
    child.stderr?.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`mcp-consent-proxy ${args.join(' ')} did not finish within ${timeoutMs} ms`));
    }, timeoutMs);
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}
