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
  return realFetch(input as RequestInfo, init);
}) as typeof fetch;

process.env.NODE_ENV = 'test';
