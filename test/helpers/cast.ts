/**
 * The cast around a P *process* (test/crash, test/soak): the fake upstream U (an oidc-provider that
 * remembers consent per browser, test/helpers/fake-upstream.ts) and the MCP server R behind the
 * gateway (the demo MCP server), both in the test process so they outlive every kill of P, on
 * loopback; P's port is reserved first, because U must know P's callback URL.
 */
import { databaseEnv } from './engine.js';
import { createServer, type Server } from 'node:http';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { startFakeOidcUpstream, type FakeUpstream } from './fake-upstream.js';
import { createDemoMcpApp } from '../../src/demo/mcp-server.js';
import { freePort, TEST_SECRET_KEY } from './app.js';
import { serverEnv } from './server-process.js';

export interface Cast {
  port: number;
  dir: string;
  upstream: FakeUpstream;
  mcpUrl: string;
  /** P's environment, the same for every start (server and CLI) */
  env: Record<string, string>;
  close(): Promise<void>;
}

export interface CastOptions {
  prefix: string;
  adminSubjects?: string;
  extraEnv?: Record<string, string>;
  /** U's access-token lifetime per subject (P refreshes U's token a minute before it ends) */
  upstreamTokenTtlFor?: (sub: string) => number | undefined;
}

export async function startCast(options: CastOptions): Promise<Cast> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), options.prefix));
  const upstream = await startFakeOidcUpstream({ callbackUrl: `http://127.0.0.1:${port}/upstream/callback`, accessTokenTtlFor: options.upstreamTokenTtlFor });
  // R without a request log: a soak sends it hundreds of thousands of requests.
  const app = createDemoMcpApp({ countdownDelayMs: 5 });
  const r: Server = createServer(app);
  await new Promise<void>((resolve) => r.listen(0, '127.0.0.1', resolve));
  const mcpUrl = `http://127.0.0.1:${(r.address() as AddressInfo).port}/mcp`;
  const env = serverEnv({ port, dir, secretKey: TEST_SECRET_KEY, upstream, mcpUrl, adminSubjects: options.adminSubjects, extra: options.extraEnv });
  // TEST_ENGINE=postgres: a fresh database on the test cluster for this data directory (test/helpers/engine.ts).
  Object.assign(env, await databaseEnv(dir));
  return {
    port,
    dir,
    upstream,
    mcpUrl,
    env,
    async close() {
      await app.closeSessions();
      await new Promise<void>((resolve) => {
        r.close(() => resolve());
        r.closeAllConnections();
      });
      await upstream.close();
    },
  };
}
