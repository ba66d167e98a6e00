/**
 * Runs before every test file: tests talk to loopback only. Any fetch to another host fails
 * loudly instead of leaving the machine.
 */
const realFetch = globalThis.fetch;
const LOOPBACK = /^(127\.\d+\.\d+\.\d+|localhost|\[::1\])$/;

globalThis.fetch = (async (input: string | URL | Request, init?: RequestInit) => {
  const url = new URL(typeof input === 'string' || input instanceof URL ? input : input.url);
  if ((url.protocol === 'http:' || url.protocol === 'https:') && !LOOPBACK.test(url.hostname)) {
    throw new Error(`test tried to reach ${url.host}: tests may only talk to loopback`);
  }
  return realFetch(input, init);
}) as typeof fetch;

process.env.NODE_ENV = 'test';

// oidc-provider's one-time console notices (runtime version, pre-parsed /register body) are
// expected in tests; the server routes them into its logger (src/log/logger.ts).
for (const method of ['warn', 'info'] as const) {
  const original = console[method].bind(console);
  console[method] = (...args: unknown[]) => {
    if (typeof args[0] === 'string' && args[0].includes('oidc-provider')) return;
    original(...args);
  };
}
