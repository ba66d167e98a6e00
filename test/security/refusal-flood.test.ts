/**
 * Issue 9 item 4, "Refusals cannot flood the audit log" (DESIGN §9, SEC-01): 2,000 unauthenticated
 * requests with 2 KB Origins and paths used to add 2,000 permanent rows of about 2 KB each.
 * Now unauthenticated refusals at /mcp, the API routes and /admin are budgeted per client address
 * (RATE_LIMIT_REJECTED, 60/1m: 429 beyond), tallied into one audit row per address, reason and
 * minute, and every stored request-derived string is at most 256 characters. A request with a
 * valid token or admin session from the flooding address is served as usual.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openTestSql } from '../helpers/engine.js';
import { rmSync } from 'node:fs';
import { rows } from '../helpers/app.js';
import { Browser, authorizeClient, startStack, type Stack } from '../helpers/stack.js';
import { signIn } from '../helpers/admin.js';
import { INITIALIZE, mcpPost } from '../helpers/mcp-http.js';

const FLOOD = 2000;
const BUDGET = 60; // the default RATE_LIMIT_REJECTED
const LONG_ORIGIN = `https://${'o'.repeat(2000)}.example`;
const LONG_SEGMENT = 'p'.repeat(2000);
const ip = { gateway: '203.0.113.7', other: '198.51.100.9', admin: '192.0.2.44' };

let stack: Stack;
let token: string;
let adminCookie: string;
/** the runtime's clock for the tally's minutes, moved by hand */
let now = Math.floor(Date.now() / 60_000) * 60_000 + 5_000;

beforeAll(async () => {
  stack = await startStack({ now: () => now, env: { TRUST_PROXY: 'loopback', ADMIN_SUBJECTS: 'root', GATEWAY_ROUTES: '/api/things=http://127.0.0.1:9/things' } });
  token = (await authorizeClient(stack, new Browser('alice'))).tokens.body.access_token;
  const admin = new Browser('admin');
  expect((await signIn(stack, admin, 'admin', 'root')).status).toBe(200);
  adminCookie = admin.cookiesFor(new URL(`${stack.app.url}/admin`), true, false);
});
let closed = false;
afterAll(async () => {
  if (!closed) await stack?.close();
  rmSync(stack.app.dir, { recursive: true, force: true });
});

/** Run `count` requests, `width` at a time; returns each status in order of issue. */
async function pooled(count: number, width: number, one: (i: number) => Promise<Response>): Promise<Response[]> {
  const out: Response[] = new Array(count);
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < count) {
        const i = next++;
        const res = await one(i);
        await res.arrayBuffer();
        out[i] = res;
      }
    }),
  );
  return out;
}

const gatewayFlood = (i: number, from = ip.gateway) =>
  i % 2 === 0
    ? fetch(`${stack.app.url}/mcp`, { method: 'POST', headers: { 'x-forwarded-for': from, origin: LONG_ORIGIN, 'content-type': 'application/json' }, body: '{}' })
    : fetch(`${stack.app.url}/api/things/${LONG_SEGMENT}/${i}`, { headers: { 'x-forwarded-for': from } });

type Row = { seq: number; event: string; reason: string | null; subject: string | null; client_id: string | null; ip: string | null; request_id: string | null; details: string | null };
const since = async (seq: number): Promise<Row[]> => {
  await stack.app.runtime.audit.flush();
  return await rows(stack.app, 'SELECT seq, event, reason, subject, client_id, ip, request_id, details FROM audit_log WHERE seq > ? ORDER BY seq', seq);
};
const tip = async () => {
  await stack.app.runtime.audit.flush();
  return ((await stack.app.runtime.stores.auditLog.tip())?.seq ?? 0) as number;
};

function stringsIn(value: unknown): string[] {
  if (typeof value === 'string') return [value];
  if (Array.isArray(value)) return value.flatMap(stringsIn);
  if (value && typeof value === 'object') return Object.entries(value).flatMap(([k, v]) => [k, ...stringsIn(v)]);
  return [];
}

/** Every column and every string in details at most 256 characters; an aggregate row small. */
function expectWithinLimits(row: Row, maxDetails = 1200): void {
  for (const column of ['reason', 'subject', 'client_id', 'ip', 'request_id'] as const) expect((row[column] ?? '').length, column).toBeLessThanOrEqual(256);
  for (const s of stringsIn(row.details ? JSON.parse(row.details) : null)) expect(s.length).toBeLessThanOrEqual(256);
  expect((row.details ?? '').length).toBeLessThan(maxDetails);
}

describe('Refusals cannot flood the audit log', () => {
  let start: number;

  it('answers 429 beyond the budget at /mcp and the API routes, serves a valid token from the same address, and keeps the budgets per address', async () => {
    start = await tip();
    const receivedBefore = stack.mcp.received.length;

    const first = await pooled(FLOOD / 2, 16, (i) => gatewayFlood(i));
    // In the middle of the flood, the same address with a valid token: served, never 429.
    const valid = await mcpPost(`${stack.app.url}/mcp`, token, INITIALIZE, { 'x-forwarded-for': ip.gateway });
    expect(valid.status).toBe(200);
    expect(valid.messages[0].result.serverInfo.name).toBe('mcp-consent-proxy-demo');
    // ...and a valid token with a foreign Origin: refused as before (403), not counted, not 429.
    const foreignWithToken = await mcpPost(`${stack.app.url}/mcp`, token, INITIALIZE, { 'x-forwarded-for': ip.gateway, origin: LONG_ORIGIN });
    expect(foreignWithToken.status).toBe(403);
    const second = await pooled(FLOOD / 2, 16, (i) => gatewayFlood(FLOOD / 2 + i));

    const all = [...first, ...second];
    const limited = all.filter((r) => r.status === 429);
    expect(limited).toHaveLength(FLOOD - BUDGET);
    for (const r of limited) {
      expect(Number(r.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
      expect(Number(r.headers.get('retry-after'))).toBeLessThanOrEqual(60);
      expect(r.headers.get('www-authenticate')).toBeNull();
    }
    const answered = all.filter((r) => r.status !== 429).map((r) => r.status);
    expect(answered).toHaveLength(BUDGET);
    for (const status of answered) expect([401, 403]).toContain(status);
    // R saw the one valid request only.
    expect(stack.mcp.received.length).toBe(receivedBefore + 1);

    // Another address has its own budget.
    const other = await gatewayFlood(1, ip.other);
    expect(other.status).toBe(401);
    expect(other.headers.get('www-authenticate')).toContain('resource_metadata=');
  });

  it('writes no row per refusal: the minute ends, and exactly one row per address and reason holds the counts', async () => {
    // Within the minute: only the two requests with a valid token left rows (forwarded, and the
    // foreign Origin refused with its subject named).
    const during = await since(start);
    expect(during.map((r) => r.event).sort()).toEqual(['gateway.forwarded', 'gateway.rejected']);
    expect(during.find((r) => r.event === 'gateway.rejected')).toMatchObject({ reason: 'origin_not_allowed', subject: 'alice', ip: ip.gateway });
    expect(stack.app.runtime.refusals.tally.pending()).toBe(3);

    // The clock passes the minute; the next refusal closes it.
    now += 60_000;
    expect((await gatewayFlood(1, ip.other)).status).toBe(401);
    const after = (await since(start)).filter((r) => r.event === 'gateway.rejected_aggregate');
    expect(after).toHaveLength(3);
    const byKey = Object.fromEntries(after.map((r) => [`${r.ip} ${r.reason}`, { ...r, details: JSON.parse(r.details as string) }]));
    expect(Object.keys(byKey).sort()).toEqual([`${ip.other} no_token`, `${ip.gateway} no_token`, `${ip.gateway} origin_not_allowed`].sort());
    const a1 = byKey[`${ip.gateway} origin_not_allowed`] as Row & { details: any };
    const a2 = byKey[`${ip.gateway} no_token`] as Row & { details: any };
    expect(a1.details.count + a2.details.count).toBe(FLOOD);
    expect(a1.details.limited + a2.details.limited).toBe(FLOOD - BUDGET);
    expect(a1.details.first.origin).toHaveLength(256);
    expect(a1.details.first.origin.endsWith('…')).toBe(true);
    expect(a1.details.minute).toBe(new Date(Math.floor((now - 60_000) / 60_000) * 60_000).toISOString());
    expect(byKey[`${ip.other} no_token`]?.details).toMatchObject({ count: 1, limited: 0 });
    for (const r of await since(start)) expectWithinLimits(r);
    // The whole flood: the two rows of the valid requests and three counts.
    expect(await since(start)).toHaveLength(5);
  });

  it('does the same at /admin, and lets a signed-in admin in from the flooding address', async () => {
    const before = await tip();
    const flood = (i: number) => fetch(`${stack.app.url}/admin/${LONG_SEGMENT}/${i}`, { headers: { 'x-forwarded-for': ip.admin, origin: LONG_ORIGIN } });
    const first = await pooled(FLOOD / 2, 16, flood);
    const admin = await fetch(`${stack.app.url}/admin/clients`, { headers: { 'x-forwarded-for': ip.admin, cookie: adminCookie } });
    expect(admin.status).toBe(200);
    expect(await admin.text()).toContain('Clients');
    const second = await pooled(FLOOD / 2, 16, (i) => flood(FLOOD / 2 + i));
    const all = [...first, ...second];
    expect(all.filter((r) => r.status === 429)).toHaveLength(FLOOD - BUDGET);
    expect(all.filter((r) => r.status === 401)).toHaveLength(BUDGET);
    expect(all.find((r) => r.status === 429)?.headers.get('retry-after')).toMatch(/^\d+$/);

    expect((await since(before)).filter((r) => r.event.startsWith('admin.'))).toEqual([]);
    now += 60_000;
    stack.app.runtime.refusals.tally.rollOver(); // what the end-of-minute timer does
    const written = (await since(before)).filter((r) => r.event === 'admin.rejected_aggregate');
    expect(written).toHaveLength(1);
    const row = written[0] as Row;
    expect(row).toMatchObject({ reason: 'not_signed_in', ip: ip.admin, subject: null });
    expect(JSON.parse(row.details as string)).toMatchObject({ count: FLOOD, limited: FLOOD - BUDGET, first: { method: 'GET' } });
    expectWithinLimits(row);
  });

  it('caps other stored request-derived strings: the user agent of a registration', async () => {
    const res = await fetch(`${stack.app.url}/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'user-agent': `ua-${'u'.repeat(3000)}` },
      body: JSON.stringify({ client_name: 'Long UA', redirect_uris: ['http://127.0.0.1:33418/callback'], token_endpoint_auth_method: 'none' }),
    });
    expect(res.status).toBe(201);
    const { client_id } = (await res.json()) as { client_id: string };
    const [meta] = await rows(stack.app, 'SELECT user_agent FROM clients_meta WHERE client_id = ?', client_id);
    expect(meta.user_agent).toHaveLength(256);
    expect(meta.user_agent.endsWith('…')).toBe(true);
    for (const r of await since(0)) expectWithinLimits(r, Number.POSITIVE_INFINITY);
  });

  it('writes the current minute\'s counts at shutdown', async () => {
    expect((await gatewayFlood(1, ip.other)).status).toBe(401);
    const lastSeq = await tip();
    closed = true;
    await stack.close();
    const db = await openTestSql(stack.app.dir);
    try {
      const rest = await db.all<Row>('SELECT event, reason, ip, details FROM audit_log WHERE seq > ?', [lastSeq]);
      expect(rest).toHaveLength(1);
      expect(rest[0]).toMatchObject({ event: 'gateway.rejected_aggregate', reason: 'no_token', ip: ip.other });
      expect(JSON.parse(rest[0]?.details as string)).toMatchObject({ count: 1, limited: 0 });
    } finally {
      await db.close();
    }
  });
});
