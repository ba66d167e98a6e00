/**
 * `npm run bench:audit-mac`: what the keyed audit chain (DESIGN §9) costs, in medians of 15 runs,
 * as CPU time of this process (process.cpuUsage: user + system), so that waiting for a core shared
 * with other work does not count:
 * - per row: the link alone, plain SHA-256 (legacy rows) vs HMAC-SHA-256 (keyed rows), over a
 *   typical gateway row;
 * - per row: a 500-row group commit into a file database (MAC, insert with the append-only
 *   triggers, six indexes);
 * - per commit: one checkpoint file write (temp file + rename) done synchronously, and the
 *   event-loop time of one single-row `record()` with and without the checkpoint file (which is
 *   written off the event loop, coalesced).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { pino } from 'pino';
import { openSqliteSql } from '../../src/db/sqlite-sql.js';
import { migrate } from '../../src/db/migrate.js';
import { createAuditLogStore, type NewAuditRow } from '../../src/store/audit-log.js';
import { rowHash, rowMac } from '../../src/store/audit-chain.js';
import { createCheckpointWriter } from '../../src/audit/checkpoint.js';
import { Audit } from '../../src/audit/audit.js';
import { KeyRing } from '../../src/crypto/keys.js';

const ring = new KeyRing(randomBytes(32));
const key = ring.auditKey;
const row = (i: number): NewAuditRow => ({
  ts: new Date(Date.UTC(2026, 0, 1) + i * 200).toISOString(),
  event: 'gateway.forwarded',
  outcome: 'allow',
  reason: null,
  subject: `user-${i % 5000}`,
  client_id: `client-${i % 800}`,
  ip: '10.0.0.1',
  request_id: `0193a5f2-7c4e-7b3a-9f1e-${String(i).padStart(12, '0')}`,
  details: '{"method":"POST","ms":12.3,"resource":"https://mcp.example.com/mcp","status":200}',
});

function median(label: string, perRun: () => number, unit: string): number {
  const samples: number[] = [];
  for (let i = 0; i < 15; i++) samples.push(perRun());
  samples.sort((a, b) => a - b);
  const m = samples[7] as number;
  console.log(`| ${label} | ${m.toFixed(2)} ${unit} |`);
  return m;
}

async function medianAsync(label: string, perRun: () => Promise<number>, unit: string): Promise<number> {
  const samples: number[] = [];
  for (let i = 0; i < 15; i++) samples.push(await perRun());
  samples.sort((a, b) => a - b);
  const m = samples[7] as number;
  console.log(`| ${label} | ${m.toFixed(2)} ${unit} |`);
  return m;
}

const N = 100_000;
const rows = Array.from({ length: 1000 }, (_, i) => ({ ...row(i), seq: i + 1 }));
const prev = 'a'.repeat(64);
/** CPU µs spent in `work` (user + system). */
function cpu(work: () => void): number {
  const start = process.cpuUsage();
  work();
  const used = process.cpuUsage(start);
  return used.user + used.system;
}
/** CPU µs spent in asynchronous `work` (on SQLite it does no I/O: only its own microtasks run meanwhile). */
async function cpuAsync(work: () => Promise<unknown>): Promise<number> {
  const start = process.cpuUsage();
  await work();
  const used = process.cpuUsage(start);
  return used.user + used.system;
}
function perRowNs(link: (r: (typeof rows)[number]) => string): number {
  return cpu(() => {
    for (let i = 0; i < N; i++) link(rows[i % rows.length] as (typeof rows)[number]);
  }) / N;
}

console.log('| measure | median |\n|---|---|');
// The two links alternate run by run, so a busy neighbour slows both alike.
const shaRuns: number[] = [];
const macRuns: number[] = [];
for (let i = 0; i < 15; i++) {
  shaRuns.push(perRowNs((r) => rowHash(prev, r)));
  macRuns.push(perRowNs((r) => rowMac(key, prev, r)));
}
const mid = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
const sha = mid(shaRuns);
const mac = mid(macRuns);
console.log(`| link per row, plain SHA-256 (legacy) | ${sha.toFixed(2)} µs |`);
console.log(`| link per row, HMAC-SHA-256 (keyed) | ${mac.toFixed(2)} µs |`);

const dir = mkdtempSync(join(tmpdir(), 'audit-mac-bench-'));
try {
  const db = openSqliteSql(join(dir, 'audit.db'));
  migrate(db.db);
  const store = createAuditLogStore(db, { key });
  let n = 0;
  await medianAsync('group commit of 500 rows, per row (MAC + insert + triggers)', async () => {
    const batch = Array.from({ length: 500 }, () => row(n++));
    return (await cpuAsync(() => store.append(batch))) / 500;
  }, 'µs');
  // For comparison only: the same without migration 0009's insert triggers (one rowid seek each).
  const bare = openSqliteSql(join(dir, 'bare.db'));
  migrate(bare.db);
  bare.db.exec('DROP TRIGGER audit_log_insert_at_head; DROP TRIGGER audit_log_insert_keyed');
  const bareStore = createAuditLogStore(bare, { key });
  let m = 0;
  await medianAsync('… the same without the insert triggers (comparison)', async () => {
    const batch = Array.from({ length: 500 }, () => row(m++));
    return (await cpuAsync(() => bareStore.append(batch))) / 500;
  }, 'µs');
  await bare.close();

  const log = pino({ level: 'silent' });
  const writer = createCheckpointWriter(join(dir, 'audit-checkpoint.json'), key, log);
  const tip = (await store.tip()) as { seq: number; hash: string; key_id: string };
  let fake = tip.seq;
  await medianAsync('checkpoint file write, awaited (temp file + rename)', async () => {
    return (
      (await cpuAsync(async () => {
        for (let i = 0; i < 100; i++) {
          writer.update({ ...tip, seq: (fake += 1) });
          await writer.flush();
        }
      })) / 100
    );
  }, 'µs');
  await writer.settled();

  const plain = new Audit(store, log);
  const asyncWriter = createCheckpointWriter(join(dir, 'audit-checkpoint-2.json'), key, log);
  const checkpointed = new Audit(store, log, { checkpoint: asyncWriter });
  const record = (audit: Audit) => async () => {
    let busy = 0;
    for (let i = 0; i < 100; i++) {
      busy += await cpuAsync(() => audit.record({ event: 'token.issued', subject: 'alice', clientId: 'c-1' }));
      await new Promise((r) => setImmediate(r)); // one decision per event-loop turn, as requests come
    }
    return busy / 100;
  };
  await medianAsync('record() of one decision, event-loop time, no checkpoint file', record(plain), 'µs');
  await medianAsync('record() of one decision, event-loop time, with the checkpoint file', record(checkpointed), 'µs');
  await asyncWriter.settled();
  await db.close();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
console.log(`\nHMAC over SHA-256: +${(mac - sha).toFixed(2)} µs per row (${(mac / sha).toFixed(1)}×)`);
