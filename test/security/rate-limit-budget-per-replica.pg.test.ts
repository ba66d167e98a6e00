/**
 * Issue 11 (DESIGN §8, SEC-01, REG-11), "each replica counted its own rate-limit budget": the
 * per-client-IP budgets of /register, /authorize and /token lived in each process's memory, so N
 * replicas behind a balancer gave one address N times its budget. On PostgreSQL they now count in
 * the rate_limits table every replica shares (src/store/rate-limits.ts). Two replicas — two
 * runtimes on one PostgreSQL database, each with its own memory — share one budget: requests
 * spread over both use it up, and the next one is 429 on either, with no client registered.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mcpClientMetadata, rows, startTestApp, type TestApp } from '../helpers/app.js';
import { pgDatabasePerFile } from '../helpers/pg.js';

const BUDGET = 4;
const db = pgDatabasePerFile('rate_limit_replicas');
let a: TestApp;
let b: TestApp;

beforeAll(async () => {
  const env = { DATABASE_URL: db.url, TRUST_PROXY: 'loopback', RATE_LIMIT_REGISTER: `${BUDGET}/1m` };
  a = await startTestApp({ env });
  b = await startTestApp({ env: { ...env, PUBLIC_URL: a.url } });
});
afterAll(async () => {
  await b?.close();
  await a?.close();
});

const register = async (app: TestApp, from: string) => {
  const res = await fetch(`${app.url}/register`, {
    method: 'POST',
    headers: { 'x-forwarded-for': from, 'content-type': 'application/json' },
    body: JSON.stringify(mcpClientMetadata()),
  });
  await res.arrayBuffer();
  return res.status;
};
const clients = async () => (await rows(a, 'SELECT count(*) AS n FROM clients_meta'))[0].n as number;

describe('each replica counted its own rate-limit budget', () => {
  it('requests from one address spread over two replicas share one budget: the next one is 429 on either replica, and registers nothing', async () => {
    const from = '198.51.100.20';
    const statuses: number[] = [];
    for (let i = 0; i < BUDGET; i++) statuses.push(await register(i % 2 === 0 ? a : b, from));
    expect(statuses).toEqual(Array(BUDGET).fill(201));
    const before = await clients();
    expect(await register(a, from)).toBe(429);
    expect(await register(b, from)).toBe(429);
    expect(await clients()).toBe(before);
    // Another address has its own budget, on both replicas.
    expect(await register(b, '198.51.100.21')).toBe(201);
    expect(await register(a, '198.51.100.21')).toBe(201);
  });

  it('the table holds no client address: keys are hashes', async () => {
    const keys = (await rows(a, 'SELECT key FROM rate_limits')) as { key: string }[];
    expect(keys.length).toBeGreaterThan(0);
    for (const { key } of keys) expect(key).toMatch(/^[0-9a-f]{64}$/);
  });
});
