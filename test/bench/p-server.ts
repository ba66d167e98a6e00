/**
 * (c) P itself for the benchmark: the full stack of the tests (P in front of the in-process fake
 * upstream IdP), but with MCP_UPSTREAM_URL pointing at the benchmark's upstream (a). Seeds real
 * tokens through the real flow (DCR → consent → upstream login → code → token), and makes the
 * upstream token of each grant the one (a) expects. Prints them, then serves until killed.
 */
import { Browser, authorizeClient, startStack } from '../helpers/stack.js';
import { serveCpuStats } from './cpu-stats.js';

const count = Number(process.env.BENCH_TOKENS ?? 20);
const stack = await startStack({
  env: {
    MCP_UPSTREAM_URL: process.env.TARGET,
    RATE_LIMIT_REGISTER: '100000000/1m',
    RATE_LIMIT_TOKEN: '100000000/1m',
    LOG_LEVEL: 'warn',
  },
});
const tokens: { access: string; refresh: string; clientId: string }[] = [];
for (let i = 0; i < count; i++) {
  const { tokens: t, clientId } = await authorizeClient(stack, new Browser(`bench-${i}`), { login: `bench-user-${i}` });
  tokens.push({ access: t.body.access_token, refresh: t.body.refresh_token, clientId });
}
const { runtime } = stack.app;
for (const consent of runtime.db.prepare('SELECT grant_id, subject FROM consents').all() as { grant_id: string; subject: string }[]) {
  runtime.stores.upstreamTokens.save(consent.grant_id, consent.subject, { accessToken: 'upstream-bench-token', expiresAt: Date.now() + 24 * 3600_000 });
}
// Keep the benchmark's log quiet: the test logger writes to memory.
stack.app.logLines.length = 0;
setInterval(() => {
  stack.app.logLines.length = 0;
}, 1000).unref();
const cpuPort = await serveCpuStats();
process.stdout.write(`${JSON.stringify({ ready: true, url: stack.app.url, tokens, cpuPort })}\n`);
process.on('SIGTERM', async () => {
  await stack.close();
  process.exit(0);
});
