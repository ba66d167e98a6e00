/**
 * SECURITY.md "Abuse limits": on PostgreSQL the per-IP budgets of /register, /authorize and
 * /token count in `rate_limits` (src/store/rate-limits.ts), and "a database error fails the
 * request rather than waive the budget" (express-rate-limit's passOnStoreError: false). No test
 * made the count fail (audit of the documentation's claims); the PostgreSQL budget test only
 * counts. Here the app is built (src/runtime/app.ts `buildApp`, as the runtime builds it) with
 * the budgets in SqlRateLimitStore over a database whose every statement fails, on SQLite:
 * - the database unavailable (a refused connection, as while PostgreSQL restarts): 503 with
 *   Retry-After, `temporarily_unavailable` — like every other request that needs the database then;
 * - any other database error: 500;
 * and in both cases the request never reaches its endpoint: no client registered, no token
 * issued, no authorization started. The same requests with a store that counts pass (201, …),
 * so it is the store's failure that stops them.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import type { ClientRateLimitInfo, Store } from 'express-rate-limit';
import { listenLoopback, mcpClientMetadata, registerClient, rows, startTestApp, type TestApp } from '../helpers/app.js';
import { buildApp } from '../../src/runtime/app.js';
import { expressServerClasses } from '../../src/http/express-classes.js';
import { SqlRateLimitStore } from '../../src/store/rate-limits.js';
import type { Sql } from '../../src/db/sql.js';

let app: TestApp;
const servers: Server[] = [];
beforeAll(async () => {
  app = await startTestApp();
});
afterAll(async () => {
  for (const server of servers) {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
  await app?.close();
});

/** The app as the runtime builds it, with the budgets in `store`, listening on another loopback port; returns its origin. */
async function appWithBudgetStore(store: (name: string) => Store): Promise<string> {
  const express = buildApp({ ...app.runtime, rateLimitStore: store });
  const server = createServer(expressServerClasses(express), express);
  servers.push(server);
  return `http://127.0.0.1:${await listenLoopback(server)}`;
}

/** A database whose every statement fails with `err`; counts the statements tried. */
function failingSql(err: Error): Sql & { tried: number } {
  const sql = {
    engine: 'postgres',
    tried: 0,
    one: () => {
      sql.tried++;
      return Promise.reject(err);
    },
    run: () => {
      sql.tried++;
      return Promise.reject(err);
    },
  };
  return sql as unknown as Sql & { tried: number };
}

/** An express-rate-limit store that counts (in memory). */
class CountingStore implements Store {
  readonly localKeys = true;
  hits = new Map<string, number>();
  async increment(key: string): Promise<ClientRateLimitInfo> {
    const totalHits = (this.hits.get(key) ?? 0) + 1;
    this.hits.set(key, totalHits);
    return { totalHits, resetTime: new Date(Date.now() + 60_000) };
  }
  async decrement(key: string): Promise<void> {
    this.hits.set(key, (this.hits.get(key) ?? 1) - 1);
  }
  async resetKey(key: string): Promise<void> {
    this.hits.delete(key);
  }
}

const clientCount = async () => Number((await rows(app, 'SELECT count(*) AS n FROM clients_meta'))[0].n);

async function register(origin: string) {
  const res = await fetch(`${origin}/register`, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json' }, body: JSON.stringify(mcpClientMetadata()) });
  return { status: res.status, retryAfter: res.headers.get('retry-after'), body: (await res.json().catch(() => undefined)) as Record<string, unknown> | undefined };
}

async function token(origin: string, clientId: string) {
  const res = await fetch(`${origin}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
    body: new URLSearchParams({ grant_type: 'authorization_code', code: 'not-a-code', code_verifier: 'v'.repeat(43), client_id: clientId, redirect_uri: 'http://127.0.0.1:33418/callback' }),
  });
  return { status: res.status, retryAfter: res.headers.get('retry-after'), body: (await res.json().catch(() => undefined)) as Record<string, unknown> | undefined };
}

async function authorize(origin: string, clientId: string) {
  const url = `${origin}/authorize?${new URLSearchParams({ client_id: clientId, response_type: 'code', redirect_uri: 'http://127.0.0.1:33418/callback', code_challenge: 'E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM', code_challenge_method: 'S256', state: 's' })}`;
  const res = await fetch(url, { redirect: 'manual', headers: { accept: 'application/json' } });
  await res.arrayBuffer();
  return { status: res.status, retryAfter: res.headers.get('retry-after'), location: res.headers.get('location') };
}

describe('a rate-limit store whose database fails fails the request, never waives the budget', () => {
  it('with a store that counts, the same requests reach their endpoints (the control)', async () => {
    const stores: CountingStore[] = [];
    const origin = await appWithBudgetStore(() => {
      const store = new CountingStore(); // one per budget, as express-rate-limit requires
      stores.push(store);
      return store;
    });
    const before = await clientCount();
    const registered = await register(origin);
    expect(registered.status).toBe(201);
    expect(await clientCount()).toBe(before + 1);
    const clientId = registered.body?.client_id as string;
    expect((await token(origin, clientId)).body).toMatchObject({ error: 'invalid_grant' }); // reached the provider
    const started = await authorize(origin, clientId);
    expect(started.status).toBe(303);
    expect(started.location).toMatch(/\/interaction\//); // the consent page
    expect(stores.filter((store) => store.hits.size > 0).length).toBeGreaterThanOrEqual(3); // register, token, authorize
  });

  it('the database unavailable (connection refused): 503 temporarily_unavailable with Retry-After; nothing registered, issued or started', async () => {
    const clientId = (await registerClient(app)).client_id as string;
    const sql = failingSql(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' }));
    const origin = await appWithBudgetStore((name) => new SqlRateLimitStore(sql, name));
    const before = await clientCount();
    const registered = await register(origin);
    expect(registered.status).toBe(503);
    expect(registered.retryAfter).not.toBeNull();
    expect(registered.body).toMatchObject({ error: 'temporarily_unavailable' });
    expect(await clientCount()).toBe(before);

    const refused = await token(origin, clientId);
    expect(refused.status).toBe(503);
    expect(refused.body).toMatchObject({ error: 'temporarily_unavailable' }); // not the provider's invalid_grant: it never saw the request

    const started = await authorize(origin, clientId);
    expect(started.status).toBe(503);
    expect(started.location).toBeNull();
    expect(sql.tried).toBeGreaterThanOrEqual(3);
  });

  it('any other database error: 500; nothing registered, issued or started', async () => {
    const clientId = (await registerClient(app)).client_id as string;
    const sql = failingSql(Object.assign(new Error('relation "rate_limits" does not exist'), { code: '42P01' }));
    const origin = await appWithBudgetStore((name) => new SqlRateLimitStore(sql, name));
    const before = await clientCount();
    const registered = await register(origin);
    expect(registered.status).toBe(500);
    expect(await clientCount()).toBe(before);
    const refused = await token(origin, clientId);
    expect(refused.status).toBe(500);
    expect(refused.body?.error).not.toBe('invalid_grant');
    const started = await authorize(origin, clientId);
    expect(started.status).toBe(500);
    expect(started.location).toBeNull();
    expect(sql.tried).toBeGreaterThanOrEqual(3);
  });
});
