/**
 * The admin audit view over a large log: cursor pagination is exact (every row once, in
 * order, both directions) with and without filters at 100k rows; time ranges; export as NDJSON
 * and CSV; verification on demand (off the main thread) detects tampering. Query times at 1M
 * rows are measured by `test/bench/audit-pages.ts`, not here.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect } from 'node:net';
import { Browser, startStack, type Stack } from '../helpers/stack.js';
import { csrfOf, signIn } from '../helpers/admin.js';
import { auditFilterFromQuery, csvLine } from '../../src/admin/audit-query.js';
import type { NewAuditRow } from '../../src/store/audit-log.js';
import { dropTrigger } from '../helpers/engine.js';

let stack: Stack;
let admin: Browser;
const ROWS = 100_000;
const T0 = Date.parse('2026-11-01T00:00:00Z');
const EVENTS = ['token.issued', 'gateway.forwarded', 'gateway.rejected', 'consent.shown'] as const;

beforeAll(async () => {
  stack = await startStack({ env: { ADMIN_SUBJECTS: 'root' } });
  const store = stack.app.runtime.stores.auditLog;
  const batch: NewAuditRow[] = [];
  for (let i = 0; i < ROWS; i++) {
    const event = EVENTS[i % EVENTS.length] as string;
    batch.push({ ts: new Date(T0 + i * 1000).toISOString(), event, outcome: event === 'gateway.rejected' ? 'deny' : 'allow', reason: null, subject: `user-${i % 7}`, client_id: `client-${i % 13}`, ip: '127.0.0.1', request_id: `req-${i}`, details: null });
    if (batch.length === 10_000) await store.append(batch.splice(0));
  }
  admin = new Browser('admin');
  await signIn(stack, admin, 'admin', 'root');
}, 120_000);
afterAll(() => stack.close());

function seqsOf(html: string): number[] {
  return [...html.matchAll(/<tr>\s*<td>(\d+)<\/td><td[ >]/g)].map((m) => Number(m[1]));
}

async function walk(query: string, direction: 'older' | 'newer' = 'older', start = `${stack.app.url}/admin/audit?${query}`) {
  const seen: number[] = [];
  let url: string | undefined = start;
  for (let pages = 0; url && pages < 5000; pages++) {
    const page = await admin.navigate(url);
    seen.push(...seqsOf(page.html));
    url = new RegExp(`href="([^"]+)" id="${direction}"`).exec(page.html)?.[1]?.replace(/&amp;/g, '&');
    if (url) url = new URL(url, stack.app.url).href;
  }
  return seen;
}

describe('admin audit view at 100k rows', () => {
  it('pages through one filter exactly, newest first, and back', async () => {
    const query = 'event=gateway.rejected&subject=user-3';
    const older = await walk(query);
    const expected: number[] = [];
    const before = await stack.app.runtime.stores.auditLog.count({ to: new Date(T0).toISOString() });
    for (let i = ROWS - 1; i >= 0; i--) if (EVENTS[i % 4] === 'gateway.rejected' && i % 7 === 3) expected.push(i + 1 + before);
    expect(older.length).toBe(expected.length);
    expect(older).toEqual([...older].sort((a, b) => b - a));
    expect(new Set(older).size).toBe(older.length);
    const oldest = older.at(-1) as number;
    const newer = await walk(query, 'newer', `${stack.app.url}/admin/audit?${query}&after=${oldest - 1}`);
    expect(new Set(newer)).toEqual(new Set(older));
  }, 120_000);

  it('filters a time range exactly', async () => {
    const from = '2026-11-01T10:00:00';
    const to = '2026-11-01T10:05:00';
    const seqs = await walk(`from=${from}&to=${to}&outcome=allow`);
    expect(seqs.length).toBe(225); // 300 seconds, 3 of 4 events are allow
    const rows = await stack.app.runtime.stores.auditLog.page(auditFilterFromQuery({ from, to, outcome: 'allow' }).filter, 500);
    expect(rows.every((r) => r.ts >= '2026-11-01T10:00:00.000Z' && r.ts < '2026-11-01T10:05:00.000Z' && r.outcome === 'allow')).toBe(true);
  }, 60_000);

  it('exports the filtered view as NDJSON and CSV', async () => {
    const ndjson = await fetch(`${stack.app.url}/admin/audit/export?format=ndjson&request=req-42`, { headers: { cookie: `__Host-mcp-admin=${admin.cookie('127.0.0.1', '__Host-mcp-admin')}` } });
    expect(ndjson.headers.get('content-type')).toMatch(/^application\/x-ndjson/);
    const lines = (await ndjson.text()).trim().split('\n').map((l) => JSON.parse(l));
    expect(lines).toEqual([expect.objectContaining({ request_id: 'req-42', event: 'gateway.rejected', outcome: 'deny' })]);
    const csv = await fetch(`${stack.app.url}/admin/audit/export?format=csv&client=client-5&from=2026-11-01T00:00:00&to=2026-11-01T00:01:00`, { headers: { cookie: `__Host-mcp-admin=${admin.cookie('127.0.0.1', '__Host-mcp-admin')}` } });
    const text = (await csv.text()).trim().split('\n');
    expect(text[0]).toBe('seq,ts,event,outcome,reason,subject,client_id,ip,request_id,details,prev_hash,hash,key_id');
    expect(text.length - 1).toBe(5); // seconds 5, 18, 31, 44, 57
    expect(csvLine(['=cmd()', 'a,b', 'say "hi"', null])).toBe(`'=cmd(),"a,b","say ""hi""",`);
  });

  it('streams the export with backpressure: a client that does not read holds the rows back, and one that leaves stops the export', async () => {
    const store = stack.app.runtime.stores.auditLog;
    const iterate = store.iterate.bind(store);
    let read = 0;
    let closed = false;
    store.iterate = async function* (...args: Parameters<typeof iterate>) {
      try {
        for await (const row of iterate(...args)) {
          read++;
          yield row;
        }
      } finally {
        closed = true;
      }
    };
    try {
      const { port } = new URL(stack.app.url);
      const socket = connect(Number(port), '127.0.0.1');
      socket.pause(); // never reads: the socket's buffers fill up
      socket.write(`GET /admin/audit/export?format=ndjson HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: __Host-mcp-admin=${admin.cookie('127.0.0.1', '__Host-mcp-admin')}\r\n\r\n`);
      const settled = async () => {
        let last = -1;
        while (last !== read) {
          last = read;
          await new Promise((r) => setTimeout(r, 300));
        }
      };
      await settled();
      // ~330 bytes a row: 100k rows are ~33 MB; the kernel's and Node's buffers hold far fewer.
      expect(read).toBeGreaterThan(0);
      expect(read).toBeLessThan(ROWS / 2);
      expect(closed).toBe(false);
      socket.destroy();
      await settled();
      expect(read).toBeLessThan(ROWS / 2);
      expect(closed).toBe(true); // the export stopped reading the log (not left waiting for a 'drain' that never comes)
    } finally {
      store.iterate = iterate;
    }
  });

  it('refuses a time outside the years 0000–9999 with a 400 page, not a 500, and exports nothing (DESIGN §9)', async () => {
    // Dates at the edge of JavaScript's range parsed, then the ±5 s reorder margin (src/store/audit-range.ts) threw a RangeError.
    const { auditLog } = stack.app.runtime.stores;
    await stack.app.runtime.audit.flush();
    const exported = await auditLog.count({ event: 'admin.audit_exported' });
    for (const query of ['from=%2B275760-09-13T00:00:00Z', 'to=-271821-04-20T00:00:00Z', 'from=%2B010000-01-01T00:00:00Z', 'to=-000001-12-31T00:00:00Z']) {
      for (const path of ['/admin/audit', '/admin/audit/export']) {
        const page = await admin.navigate(`${stack.app.url}${path}?${query}`);
        expect(page.status, `${path}?${query}`).toBe(400);
        expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
        expect(page.html).toContain('between the years 0000 and 9999');
      }
    }
    await stack.app.runtime.audit.flush();
    expect(await auditLog.count({ event: 'admin.audit_exported' })).toBe(exported);
    // The edges themselves are accepted.
    expect((await admin.navigate(`${stack.app.url}/admin/audit?from=0000-01-01T00:00:00Z&to=9999-12-31T23:59:59.999Z`)).status).toBe(200);
  });

  it('verifies the chain on demand and names a tampered row', async () => {
    let page = await admin.navigate(`${stack.app.url}/admin/audit`);
    page = await admin.navigate(`${stack.app.url}/admin/audit/verify`, { method: 'POST', body: new URLSearchParams({ csrf: csrfOf(page) }), initiator: stack.app.url });
    expect(page.html).toMatch(/Chain intact\.<\/strong> Verified up to row \d+/);
    const { sql } = stack.app.runtime;
    await dropTrigger(sql, 'audit_log_no_update', 'audit_log');
    await sql.run("UPDATE audit_log SET subject = 'someone-else' WHERE seq = 500");
    page = await admin.navigate(`${stack.app.url}/admin/audit/verify`, { method: 'POST', body: new URLSearchParams({ csrf: csrfOf(page) }), initiator: stack.app.url });
    expect(page.html).toContain('Chain broken at row 500.');
    const overview = await admin.navigate(`${stack.app.url}/admin`);
    expect(overview.html).toContain('Broken at row 500');
  }, 60_000);
});
