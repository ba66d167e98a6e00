/**
 * Starts P in-process for a test: a fresh database for a temporary data directory (a SQLite file
 * in it, or a PostgreSQL database with TEST_ENGINE=postgres: test/helpers/engine.ts), a fixed
 * SECRET_KEY, logs captured in memory (so tests can assert what was, and was not, logged), and
 * a real listening socket on 127.0.0.1 so PUBLIC_URL is exactly what clients dial (interop F12).
 */
import { createServer, type Server } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import type { AddressInfo } from 'node:net';
import { loadConfig, type Config } from '../../src/config/load.js';
import { createRuntime, createRuntimeServer, type Runtime, type RuntimeOptions } from '../../src/runtime/server.js';
import { createLogger } from '../../src/log/logger.js';
import { databaseEnv } from './engine.js';

export interface TestApp {
  runtime: Runtime;
  config: Readonly<Config>;
  /** PUBLIC_URL, e.g. http://127.0.0.1:41234 */
  url: string;
  server: Server;
  dir: string;
  /** every log line written so far, raw JSON */
  logLines: string[];
  close(): Promise<void>;
}

export interface TestAppOptions {
  env?: Record<string, string | undefined>;
  /** base path appended to the origin for PUBLIC_URL */
  basePath?: string;
  /** reuse this directory (restart tests) */
  dir?: string;
  /** listen on this port (default: any free one) */
  port?: number;
  /** the runtime's clock for time-bucketed records (RuntimeOptions.now) */
  now?: () => number;
  /** the CIMD fetcher's test seam (RuntimeOptions.cimdFetch): a fake resolver, a test route */
  cimdFetch?: RuntimeOptions['cimdFetch'];
}

export const TEST_SECRET_KEY = randomBytes(32).toString('base64');
const SECRET = TEST_SECRET_KEY;

export async function listenLoopback(server: Server, port = 0): Promise<number> {
  // A port taken meanwhile (EADDRINUSE) fails at once instead of leaving the caller waiting for its hook timeout.
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  return (server.address() as AddressInfo).port;
}

/**
 * Ports `freePort` hands out: below Linux's ephemeral range (32768–60999, where `listen(0)` and
 * every outgoing connection take theirs), in a block of 1,000 per vitest worker (VITEST_POOL_ID,
 * 1 … workers; 0 outside vitest: the bench, the soak; only 11 workers fit below 32768, so on a
 * machine with more the 12th and later share block 0, bind-checked). A port from `listen(0)` that was closed
 * again to be handed to a child process could meanwhile be taken by another worker's `listen(0)`
 * or connection — two workers made that likelier, and is the likeliest reason why CI once saw a
 * spawned server not print "listening" (2026-12-07; the report kept only the failure's first line).
 * Within a block, only the one worker's files take ports, one file after another.
 */
const PORT_BLOCK = { base: 20_000, size: 1_000 };
let nextInBlock = Math.floor(Math.random() * PORT_BLOCK.size);

/** A loopback port that was free a moment ago (for processes that must be told their port). */
export async function freePort(): Promise<number> {
  const worker = Number(process.env.VITEST_POOL_ID ?? 0);
  const first = PORT_BLOCK.base + (Number.isInteger(worker) && worker >= 0 && worker < 12 ? worker : 0) * PORT_BLOCK.size;
  for (let tries = 0; tries < PORT_BLOCK.size; tries++) {
    const port = first + (nextInBlock++ % PORT_BLOCK.size);
    const server = createServer();
    const bound = await listenLoopback(server, port).then(
      () => true,
      () => false, // taken (a child of an earlier file still exiting, PostgreSQL): the next one
    );
    if (!bound) continue;
    await new Promise((resolve) => server.close(resolve));
    return port;
  }
  throw new Error(`no free loopback port in ${first}–${first + PORT_BLOCK.size - 1}`);
}

export async function startTestApp(options: TestAppOptions = {}): Promise<TestApp> {
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'mcp-proxy-test-'));
  // The port first (PUBLIC_URL names it), the server once the runtime is built, by the function
  // `listen` uses (src/runtime/server.ts): the runtime's request and response classes
  // (src/http/express-classes.ts) and REQUEST_TIMEOUT's deadlines.
  const port = options.port ?? (await freePort());
  const url = `http://127.0.0.1:${port}${options.basePath ?? ''}`;
  const config = loadConfig({
    PUBLIC_URL: url,
    PORT: String(port),
    ...(await databaseEnv(dir)),
    SECRET_KEY: SECRET,
    UPSTREAM_ISSUER: 'http://127.0.0.1:1/unused',
    UPSTREAM_CLIENT_ID: 'proxy-client',
    UPSTREAM_CLIENT_SECRET: 'proxy-secret',
    MCP_UPSTREAM_URL: 'http://127.0.0.1:1/mcp',
    LOG_LEVEL: 'debug',
    ...options.env,
  });
  const logLines: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      logLines.push(...String(chunk).split('\n').filter(Boolean));
      done();
    },
  });
  const log = createLogger(config.logLevel, sink); // production's logger: its redaction and its err serializer
  const runtime = await createRuntime(config, { log, maintenance: false, now: options.now, cimdFetch: options.cimdFetch });
  const server = createRuntimeServer(runtime);
  await listenLoopback(server, port).catch(async (err: unknown) => {
    await runtime.dispose();
    throw err;
  });
  return {
    runtime,
    config,
    url,
    server,
    dir,
    logLines,
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await runtime.dispose();
      if (!options.dir) rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A client registration body as real MCP clients send it (interop §3). */
export function mcpClientMetadata(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    client_name: 'Test MCP client',
    redirect_uris: ['http://127.0.0.1:33418/callback'],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'none',
    ...overrides,
  };
}

export async function registerClient(app: TestApp, overrides: Record<string, unknown> = {}): Promise<Record<string, any>> {
  const res = await fetch(`${app.url}/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(mcpClientMetadata(overrides)),
  });
  const body = await res.json();
  if (res.status !== 201) throw new Error(`registration failed: ${res.status} ${JSON.stringify(body)}`);
  return body as Record<string, any>;
}

/**
 * Rows of a query, for asserting side effects (or their absence): portable SQL (src/db/sql.ts),
 * run on the test app's engine.
 */
export function rows(app: TestApp, sql: string, ...params: unknown[]): Promise<any[]> {
  return app.runtime.sql.all(sql, params);
}

export async function auditEvents(app: TestApp): Promise<{ event: string; reason: string | null; client_id: string | null; subject: string | null; details: string | null }[]> {
  await app.runtime.audit.flush();
  return rows(app, 'SELECT event, reason, client_id, subject, details FROM audit_log ORDER BY seq');
}
