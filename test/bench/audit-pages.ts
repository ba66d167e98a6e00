/**
 * `npm run bench:audit`: the admin audit view's queries on a large log (default 1,000,000 rows,
 * BENCH_AUDIT_ROWS to change): builds a hash-chained log in a temporary database, then times each
 * page query the admin pages run (median of 15 runs) and the overview's counts.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openSqliteSql } from '../../src/db/sqlite-sql.js';
import { migrate } from '../../src/db/migrate.js';
import { createAuditLogStore, type NewAuditRow, type AuditFilter } from '../../src/store/audit-log.js';
import { PAGE_SIZE as AUDIT_PAGE_SIZE } from '../../src/admin/context.js';
import { KeyRing } from '../../src/crypto/keys.js';

const ROWS = Number(process.env.BENCH_AUDIT_ROWS ?? 1_000_000);
const dir = mkdtempSync(join(tmpdir(), 'audit-bench-'));
const db = openSqliteSql(join(dir, 'audit.db'));
migrate(db.db);
const store = createAuditLogStore(db, { key: new KeyRing(Buffer.alloc(32, 7)).auditKey });
const EVENTS = ['gateway.forwarded', 'gateway.forwarded', 'gateway.forwarded', 'token.issued', 'consent.shown', 'gateway.rejected', 'registration.accepted', 'consent.approved'];
const T0 = Date.now() - ROWS * 200; // one row every 200 ms, ending now
let t = process.hrtime.bigint();
const batch: NewAuditRow[] = [];
for (let i = 0; i < ROWS; i++) {
  const event = EVENTS[i % EVENTS.length] as string;
  batch.push({ ts: new Date(T0 + i * 200).toISOString(), event, outcome: event === 'gateway.rejected' ? 'deny' : 'allow', reason: event === 'gateway.rejected' ? 'invalid_token' : null, subject: `user-${i % 5000}`, client_id: `client-${i % 800}`, ip: '10.0.0.1', request_id: `req-${i}`, details: '{"method":"POST","resource":"https://mcp.example.com/mcp","status":200}' });
  if (batch.length === 10_000) await store.append(batch.splice(0));
}
if (batch.length) await store.append(batch.splice(0));
const buildSeconds = Number(process.hrtime.bigint() - t) / 1e9;
console.log(`built ${ROWS} rows in ${buildSeconds.toFixed(1)} s (${Math.round(ROWS / buildSeconds)} rows/s)`);

async function time(label: string, run: () => Promise<unknown>, repeat = 15): Promise<void> {
  const samples: number[] = [];
  for (let i = 0; i < repeat; i++) {
    const start = process.hrtime.bigint();
    await run();
    samples.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  samples.sort((a, b) => a - b);
  console.log(`| ${label} | ${(samples[Math.floor(samples.length / 2)] as number).toFixed(2)} | ${(samples.at(-1) as number).toFixed(2)} |`);
}

const mid = Math.floor(ROWS / 2);
const iso = (ms: number) => new Date(ms).toISOString();
const pages: [string, AuditFilter][] = [
  ['newest page, no filter', {}],
  ['deep page (cursor at the middle)', { beforeSeq: mid }],
  ['page back towards newer (after cursor)', { afterSeq: mid }],
  ['event = token.issued', { event: 'token.issued' }],
  ['outcome = deny, deep cursor', { outcome: 'deny', beforeSeq: mid }],
  ['subject = user-42', { subject: 'user-42' }],
  ['client = client-7, deep cursor', { clientId: 'client-7', beforeSeq: mid }],
  ['request id lookup', { requestId: `req-${mid}` }],
  ['one hour in the middle', { from: iso(T0 + mid * 200), to: iso(T0 + mid * 200 + 3_600_000) }],
  ['one hour in the middle + event', { from: iso(T0 + mid * 200), to: iso(T0 + mid * 200 + 3_600_000), event: 'gateway.rejected' }],
  ['a minute, 14:02 style', { from: iso(T0 + mid * 200), to: iso(T0 + mid * 200 + 60_000) }],
];
console.log('\n| query (page of 50) | median ms | max ms |\n|---|---|---|');
for (const [label, filter] of pages) await time(label, () => store.page(filter, AUDIT_PAGE_SIZE));
const since = iso(Date.now() - 86_400_000);
console.log('\n| overview count | median ms | max ms |\n|---|---|---|');
await time('tokens issued, last 24 h', () => store.count({ event: 'token.issued', from: since }), 5);
await time('denials, last 24 h', () => store.count({ outcome: 'deny', from: since }), 5);
await time('recent security events (12)', () => store.listOutcomes(['deny', 'error'], 12));
await db.close();
rmSync(dir, { recursive: true, force: true });
