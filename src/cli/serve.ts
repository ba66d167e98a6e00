/**
 * `mcp-consent-proxy serve`: start, print where to connect, and shut down gracefully on
 * SIGTERM/SIGINT (stop accepting, finish in-flight requests, flush the audit log, close the
 * database).
 */
import { ConfigError, loadConfig } from '../config/load.js';
import { bridgeProviderConsole, createLogger } from '../log/logger.js';
import type { Io } from './index.js';

/** In-flight requests get this long to finish after SIGTERM. */
export const SHUTDOWN_GRACE_MS = 10_000;

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
  const { createRuntime, listen } = await import('../server.js');
  const runtime = await createRuntime(config, { log });

  let running;
  try {
    running = await listen(runtime);
  } catch (err) {
    runtime.dispose();
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') {
      io.err(`port ${config.port} on ${config.host} is already in use; stop the other process or set PORT to a free port`);
      return 1;
    }
    if (code === 'EACCES') {
      io.err(`not allowed to listen on ${config.host}:${config.port}; choose a port above 1023 or another HOST`);
      return 1;
    }
    throw err;
  }

  runtime.audit.record({ event: 'system.started', details: { issuer: config.urls.issuer, demo: config.demo } });
  log.info({ listening: running.url, issuer: config.urls.issuer, mcp: config.urls.mcpResource }, 'mcp-consent-proxy ready');
  io.out(
    [
      '',
      `  MCP Consent Proxy listening on ${running.url}`,
      `  Issuer:        ${config.urls.issuer}`,
      `  MCP endpoint:  ${config.urls.mcpResource}`,
      config.upstream ? `  Upstream:      ${config.upstream.name} (${config.upstream.issuer.href}), callback ${config.urls.upstreamCallback}` : '',
      '',
    ]
      .filter((l) => l !== '')
      .join('\n'),
  );

  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = async (signal: string) => {
      if (stopping) return;
      stopping = true;
      log.info({ signal }, 'shutting down');
      const force = setTimeout(() => running.server.closeAllConnections(), SHUTDOWN_GRACE_MS);
      force.unref();
      await running.close();
      clearTimeout(force);
      runtime.audit.record({ event: 'system.stopped', reason: signal });
      runtime.dispose();
      log.info('stopped');
      resolve(0);
    };
    process.once('SIGTERM', () => void stop('SIGTERM'));
    process.once('SIGINT', () => void stop('SIGINT'));
  });
}
