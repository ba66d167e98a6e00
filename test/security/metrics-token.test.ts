/**
 * Issue 9 item 5, "/metrics": METRICS_TOKEN was compared with `!==` (its time depends on how much
 * of a guess is right), and an open /metrics on a public URL went unmentioned. Now the token is
 * compared in constant time (timingSafeEqual over SHA-256 digests of equal length), and the start
 * logs a warning when /metrics is open (no METRICS_TOKEN) and PUBLIC_URL is not loopback.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';

const compared = vi.hoisted(() => ({ calls: [] as Array<[number, number]> }));
vi.mock('node:crypto', async (importOriginal) => {
  const real = await importOriginal<typeof import('node:crypto')>();
  const timingSafeEqual = (a: NodeJS.ArrayBufferView, b: NodeJS.ArrayBufferView) => {
    compared.calls.push([a.byteLength, b.byteLength]);
    return real.timingSafeEqual(a, b);
  };
  return { ...real, default: { ...real, timingSafeEqual }, timingSafeEqual };
});

const { startTestApp } = await import('../helpers/app.js');
type App = Awaited<ReturnType<typeof startTestApp>>;

const TOKEN = 'metrics-token-0123456789abcdef';

describe('/metrics: METRICS_TOKEN compared in constant time', () => {
  let app: App;
  beforeAll(async () => {
    app = await startTestApp({ env: { METRICS_TOKEN: TOKEN } });
  });
  afterAll(() => app.close());

  it('serves the right token and refuses every near miss, each through one equal-length comparison', async () => {
    const get = (authorization?: string) => fetch(`${app.url}/metrics`, { headers: authorization ? { authorization } : {} });
    compared.calls.length = 0;
    const ok = await get(`Bearer ${TOKEN}`);
    expect(ok.status).toBe(200);
    expect(await ok.text()).toContain('mcp_proxy_http_requests_total');
    expect(compared.calls).toEqual([[32, 32]]);

    const misses = [undefined, 'Bearer', `Bearer ${TOKEN.slice(0, -1)}x`, `Bearer ${TOKEN.slice(0, -1)}`, `Bearer ${TOKEN}x`, `bearer ${TOKEN}`, `Bearer  ${TOKEN}`, TOKEN];
    for (const authorization of misses) {
      compared.calls.length = 0;
      const res = await get(authorization);
      expect(res.status, String(authorization)).toBe(401);
      expect(res.headers.get('www-authenticate')).toBe('Bearer');
      expect(await res.text()).not.toContain('mcp_proxy_');
      expect(compared.calls, String(authorization)).toEqual([[32, 32]]);
    }
  });
});

describe('/metrics open on a public URL: a warning at start', () => {
  const warnings = (app: App) => app.logLines.map((l) => JSON.parse(l)).filter((l) => l.level === 40 && /METRICS_TOKEN/.test(l.msg));

  it('warns when METRICS_TOKEN is unset and PUBLIC_URL is not loopback', async () => {
    const app = await startTestApp({ env: { PUBLIC_URL: 'https://mcp.example.com' } });
    try {
      expect(warnings(app)).toHaveLength(1);
      expect(warnings(app)[0].msg).toMatch(/\/metrics is open/);
    } finally {
      await app.close();
    }
  });

  it('stays quiet with METRICS_TOKEN set, or on a loopback PUBLIC_URL', async () => {
    for (const env of [{ PUBLIC_URL: 'https://mcp.example.com', METRICS_TOKEN: TOKEN }, {}]) {
      const app = await startTestApp({ env });
      try {
        expect(warnings(app), JSON.stringify(env)).toEqual([]);
      } finally {
        await app.close();
      }
    }
  });
});
