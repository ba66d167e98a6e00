/**
 * `mcp-consent-proxy serve`: start, print where to connect, and shut down gracefully on
 * SIGTERM/SIGINT (stop accepting, finish in-flight requests, flush the audit log, close the
 * database).
 */
import { ConfigError, loadConfig, type Config } from '../../config/load.js';
import { bridgeProviderConsole, createLogger } from '../../log/logger.js';
import type { Io } from '../command.js';
import { createRuntime, listen, type RunningServer, type Runtime } from '../../runtime/server.js';
import { tuneHeap } from '../../runtime/heap.js';
import { failureLevel } from '../../errors/database-unavailable.js';

/** Backoff between attempts to reach the upstream at start: 1 s, 2 s, 4 s … at most 30 s. */
export const UPSTREAM_RETRY_MAX_MS = 30_000;

/**
 * At start, load the upstream's metadata; while it fails, say so in one clear line and retry
 * with backoff (`/readyz` stays false meanwhile). Returns a function that stops retrying.
 * Exported for its test (test/unit/upstream-start-backoff.test.ts).
 */
export function watchUpstream(runtime: Pick<Runtime, 'upstream'>, io: Pick<Io, 'err'>): () => void {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  const upstream = runtime.upstream();
  const attempt = async (delay: number) => {
    if (stopped) return;
    try {
      await upstream.ready();
      if (delay > 1000) io.err(`  upstream ${upstream.name} is reachable now`);
    } catch (err) {
      if (stopped) return;
      io.err(`  upstream ${upstream.name} is not reachable (${(err as Error).message}); retrying in ${Math.round(delay / 1000)} s — /readyz answers 503 until it is`);
      timer = setTimeout(() => void attempt(Math.min(delay * 2, UPSTREAM_RETRY_MAX_MS)), delay);
      timer.unref();
    }
  };
  void attempt(1000);
  return () => {
    stopped = true;
    if (timer) clearTimeout(timer);
  };
}

/** What `serve` prints once listening: where to connect, and DEMO loudly in demo mode. */
export function startupBanner(config: Readonly<Config>, listening: string): string {
  const mcp = config.urls.mcpResource;
  const lines = ['', `  MCP Consent Proxy listening on ${listening}`, `  Issuer:        ${config.urls.issuer}`, `  MCP endpoint:  ${mcp}`];
  if (config.upstream) {
    lines.push(`  Upstream:      ${config.upstream.name} (${config.upstream.issuer.href})`, `  Callback URL to register at the upstream: ${config.urls.upstreamCallback}`);
  }
  if (config.demo) {
    lines.push(
      '',
      '  ======================== DEMO MODE ========================',
      '  No upstream is configured (or DEMO=true), so this DEMO runs an embedded identity',
      '  provider: any user name signs in, no password, and "admin" opens /admin.',
      config.mcpUpstreamUrl ? `  /mcp forwards to MCP_UPSTREAM_URL (${config.mcpUpstreamUrl.href}) with DEMO tokens.` : '  /mcp reaches a DEMO MCP server (tools: whoami, echo, countdown).',
      '  Not for real accounts. See README "Deploy" to front GitHub.',
      '  ============================================================',
    );
  }
  lines.push(
    '',
    '  Connect an MCP client — e.g. in Claude Desktop / Cursor, add to the MCP config:',
    `    { "mcpServers": { "consent-proxy": { "command": "npx", "args": ["-y", "mcp-remote", "${mcp}"] } } }`,
    '',
    '  Or call a tool from a terminal with the MCP Inspector (opens your browser for consent):',
    `    npx -y @modelcontextprotocol/inspector --cli ${mcp} --method tools/call --tool-name whoami`,
    '',
  );
  return lines.join('\n');
}

/** In-flight requests get this long to finish after SIGTERM. */
export const SHUTDOWN_GRACE_MS = 10_000;

/** Listen, or say in one sentence why the port cannot be used (undefined: exit 1). */
async function listenOrExplain(runtime: Runtime, io: Io): Promise<RunningServer | undefined> {
  const { config } = runtime;
  try {
    return await listen(runtime);
  } catch (err) {
    await runtime.dispose();
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') io.err(`port ${config.port} on ${config.host} is already in use; stop the other process or set PORT to a free port`);
    else if (code === 'EACCES') io.err(`not allowed to listen on ${config.host}:${config.port}; choose a port above 1023 or another HOST`);
    else throw err;
    return undefined;
  }
}

/**
 * The drain (SIGTERM/SIGINT): stop accepting, end server-sent streams, let in-flight requests
 * finish — those still open after SHUTDOWN_GRACE_MS are cut — flush, close. Exported for its test
 * (test/e2e/drain-on-sigterm.test.ts).
 */
export async function shutdown(runtime: Runtime, running: RunningServer, signal: string, stopWatching: () => void = () => undefined): Promise<void> {
  const { log } = runtime;
  log.info({ signal }, 'shutting down');
  const force = setTimeout(() => running.server.closeAllConnections(), SHUTDOWN_GRACE_MS);
  force.unref();
  stopWatching();
  // Long-lived server-sent streams would hold the shutdown for the whole grace period;
  // end them (clients reconnect) and let ordinary requests finish.
  runtime.gateway.openResponses.endStreams();
  await running.close();
  clearTimeout(force);
  runtime.refusals.tally.flush(); // the current minute's refusal counts, before the last row
  // A database that refuses the row (away, a lock held past lock_timeout) must not skip the
  // rest of the shutdown: held upstream tokens, U's revocations, the queued audit records.
  await runtime.audit.record({ event: 'system.stopped', reason: signal }).catch((err: unknown) => log[failureLevel(err)]({ err }, 'the system.stopped audit row could not be written'));
  await runtime.dispose();
  log.info('stopped');
}

/** On SIGTERM/SIGINT: `shutdown`, once; resolves with the exit code. */
function untilStopped(runtime: Runtime, running: RunningServer, stopWatching: () => void): Promise<number> {
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = async (signal: string) => {
      if (stopping) return;
      stopping = true;
      await shutdown(runtime, running, signal, stopWatching);
      resolve(0);
    };
    process.once('SIGTERM', () => void stop('SIGTERM'));
    process.once('SIGINT', () => void stop('SIGINT'));
  });
}

export async function serve(io: Io): Promise<number> {
  let config;
  try {
    config = loadConfig(io.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      io.err(err.message);
      return 1;
    }
    throw err;
  }
  const log = createLogger(config.logLevel);
  bridgeProviderConsole(log);
  const heap = tuneHeap({ nodeOptions: io.env.NODE_OPTIONS }); // a long-running server's heap growth (src/runtime/heap.ts)
  if (heap) log.debug({ v8: heap }, 'V8 heap growth set');
  const runtime = await createRuntime(config, { log });
  const running = await listenOrExplain(runtime, io);
  if (!running) return 1;
  // Serving already: a database that refuses this row just now (a lock held past lock_timeout) is
  // logged, not a reason to stop and be restarted over and over.
  await runtime.audit
    .record({ event: 'system.started', details: { issuer: config.urls.issuer, demo: config.demo } })
    .catch((err: unknown) => log[failureLevel(err)]({ err }, 'the system.started audit row could not be written'));
  const stopWatching = watchUpstream(runtime, io);
  log.info({ listening: running.url, issuer: config.urls.issuer, mcp: config.urls.mcpResource }, 'mcp-consent-proxy ready');
  io.out(startupBanner(config, running.url));
  return untilStopped(runtime, running, stopWatching);
}
