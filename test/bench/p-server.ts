/**
 * (c) P itself for the benchmark: the full stack of the tests (P in front of the in-process fake
 * upstream IdP), but with MCP_UPSTREAM_URL pointing at the benchmark's upstream (a). Seeds real
 * tokens through the real flow (DCR → consent → upstream login → code → token), and makes the
 * upstream token of each grant the one (a) expects (with a refresh token shaped like Google's,
 * `1//0…`, so the GW-13 scrubber looks for both as it would in production). Prints them, then
 * serves until killed.
 *
 * (d) is the same P, reached with a second set of tokens whose grants are forwarded without the
 * GW-13 scrubber: a bench-only ablation made here by wrapping the upstream-token source (the
 * scrubber has no switch in production code). Both sets go through the wrapper; only (d)'s
 * answers are given no patterns to look for, so c − d is the scrubber's cost.
 *
 * With P_DATABASE_URL this P runs on that PostgreSQL database ((e) in run.ts), else on SQLite.
 */
import { rmSync } from 'node:fs';
import { Browser, authorizeClient, startStack } from '../helpers/stack.js';
import { TEST_SECRET_KEY } from '../helpers/app.js';
import { NO_SECRETS } from '../../src/gateway/redact.js';
import { serveCpuStats } from './cpu-stats.js';
import { tuneHeap } from '../../src/runtime/heap.js';

tuneHeap({ nodeOptions: process.env.NODE_OPTIONS }); // as `serve` does (src/cli/commands/serve.ts), so P's RSS is the product's

const count = Number(process.env.BENCH_TOKENS ?? 20);
const stack = await startStack({
  env: {
    MCP_UPSTREAM_URL: process.env.TARGET,
    RATE_LIMIT_REGISTER: '100000000/1m',
    RATE_LIMIT_TOKEN: '100000000/1m',
    RATE_LIMIT_AUTHORIZE: '100000000/1m', // two sets of tokens are seeded through /authorize
    LOG_LEVEL: 'warn',
    ...(process.env.P_DATABASE_URL ? { DATABASE_URL: process.env.P_DATABASE_URL } : {}),
  },
});
const { runtime } = stack.app;
type Seeded = { access: string; refresh: string; clientId: string };
async function seed(prefix: string): Promise<Seeded[]> {
  const seeded: Seeded[] = [];
  for (let i = 0; i < count; i++) {
    const { tokens: t, clientId } = await authorizeClient(stack, new Browser(`${prefix}-${i}`), { login: `${prefix}-user-${i}` });
    seeded.push({ access: t.body.access_token, refresh: t.body.refresh_token, clientId });
  }
  return seeded;
}
const tokens = await seed('bench');
const ablatedTokens = await seed('ablated');
const ablatedGrants = new Set<string>();
for (const t of ablatedTokens) ablatedGrants.add((await runtime.stores.consents.unrevokedForClient(t.clientId))[0]?.grant_id as string);
for (const consent of await runtime.sql.all<{ grant_id: string; subject: string }>('SELECT grant_id, subject FROM consents')) {
  await runtime.stores.upstreamTokens.save(consent.grant_id, consent.subject, {
    accessToken: 'upstream-bench-token',
    refreshToken: '1//0gBenchRefreshTokenLzYc3QnW8Jx-L9IrAbCdEfGhIjKlMnOpQrStUvWxYz0123456789_AbCdEfGhIjKlMnOpQrStUvWxYz01234567',
    expiresAt: Date.now() + 24 * 3600_000,
  });
}
const source = runtime.gateway.upstreamTokens;
const get = source.get;
source.get = (grantId, who, forceRefresh, generation) => {
  const result = get(grantId, who, forceRefresh, generation);
  return ablatedGrants.has(grantId) && !(result instanceof Promise) && result.ok ? { ...result, secrets: NO_SECRETS } : result;
};
// Keep the benchmark's log quiet: the test logger writes to memory.
stack.app.logLines.length = 0;
setInterval(() => {
  stack.app.logLines.length = 0;
}, 1000).unref();
const cpuPort = await serveCpuStats();
// On PostgreSQL: what a second replica of this P needs (run.ts starts a real `serve` with it): the
// same database, SECRET_KEY (a throwaway test key) and PUBLIC_URL, the same upstream and R.
const replicaEnv = process.env.P_DATABASE_URL
  ? {
      DATABASE_URL: process.env.P_DATABASE_URL,
      SECRET_KEY: TEST_SECRET_KEY,
      PUBLIC_URL: stack.app.url,
      UPSTREAM_PRESET: 'oidc',
      UPSTREAM_ISSUER: stack.upstream.issuer,
      UPSTREAM_CLIENT_ID: stack.upstream.clientId,
      UPSTREAM_CLIENT_SECRET: stack.upstream.clientSecret,
      UPSTREAM_SCOPES: 'openid email',
      UPSTREAM_NAME: 'Fake Upstream',
      MCP_UPSTREAM_URL: process.env.TARGET as string,
    }
  : undefined;
process.stdout.write(`${JSON.stringify({ ready: true, url: stack.app.url, tokens, ablatedTokens, cpuPort, replicaEnv })}\n`);
process.on('SIGTERM', async () => {
  await stack.close();
  rmSync(stack.app.dir, { recursive: true, force: true }); // the stack keeps its data directory for tests that read it after closing
  process.exit(0);
});
