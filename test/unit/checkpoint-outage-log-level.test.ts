/**
 * Found by test/faults/postgres-restart.pg.test.ts in CI: while PostgreSQL restarted, the
 * checkpoint writer's anchor check (one read: does the database still hold the row the file
 * recorded?) failed and was logged at `error` — an outage, over by itself, is a `warn`
 * (src/errors/database-unavailable.ts). A failure that is not an outage stays an `error`; either
 * is logged once per failing streak, and the file is left as it was.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { expect, it } from 'vitest';
import { createCheckpointWriter } from '../../src/audit/checkpoint.js';

const key = { kid: 'test-kid', key: randomBytes(32) };
const head = (seq: number) => ({ seq, hash: seq.toString(16).padStart(64, '0'), key_id: key.kid });

it.each([
  ['PostgreSQL restarting (57P01)', 'warn', Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' })],
  ['a connection lost under the read', 'warn', new Error('Connection terminated unexpectedly')],
  ['anything else', 'error', Object.assign(new Error('no such table: audit_log'), { code: 'SQLITE_ERROR' })],
])('the anchor check failing with %s is logged at %s, once', async (_what, level, failure) => {
  const lines: { level: number; msg: string }[] = [];
  const log = pino({ level: 'info' }, new Writable({ write: (chunk, _enc, done) => (lines.push(JSON.parse(String(chunk))), done()) }));
  const path = join(mkdtempSync(join(tmpdir(), 'cp-outage-')), 'audit-checkpoint.json');
  let down = false;
  const writer = createCheckpointWriter(path, key, log, {
    keys: [key],
    holds: async () => {
      if (down) throw failure;
      return true;
    },
  });
  writer.update(head(1)); // no file yet: nothing to check
  await writer.flush();
  const recorded = readFileSync(path, 'utf8');
  down = true;
  for (const seq of [2, 3, 4]) {
    writer.update(head(seq));
    await writer.flush();
  }
  expect(readFileSync(path, 'utf8'), 'the file still records row 1').toBe(recorded);
  const failed = lines.filter((l) => l.msg === 'audit checkpoint file could not be written');
  expect(failed.map((l) => pino.levels.labels[l.level])).toEqual([level]);
  down = false;
  writer.update(head(5));
  await writer.flush();
  expect(JSON.parse(readFileSync(path, 'utf8')).seq).toBe(5);
  expect(lines.some((l) => l.msg === 'audit checkpoint file written again')).toBe(true);
});

it('a real failure after an outage in the same failing streak is still logged at error', async () => {
  const lines: { level: number; msg: string }[] = [];
  const log = pino({ level: 'info' }, new Writable({ write: (chunk, _enc, done) => (lines.push(JSON.parse(String(chunk))), done()) }));
  const path = join(mkdtempSync(join(tmpdir(), 'cp-outage-')), 'audit-checkpoint.json');
  let failure: Error | undefined;
  const writer = createCheckpointWriter(path, key, log, {
    keys: [key],
    holds: async () => {
      if (failure) throw failure;
      return true;
    },
  });
  writer.update(head(1));
  await writer.flush();
  const outage = Object.assign(new Error('the database system is starting up'), { code: '57P03' });
  const broken = Object.assign(new Error('permission denied for table audit_log'), { code: '42501' });
  for (const [seq, err] of [
    [2, outage],
    [3, outage],
    [4, broken],
    [5, broken],
    [6, outage],
  ] as const) {
    failure = err;
    writer.update(head(seq));
    await writer.flush();
  }
  const failed = lines.filter((l) => l.msg === 'audit checkpoint file could not be written');
  expect(failed.map((l) => pino.levels.labels[l.level])).toEqual(['warn', 'error']);
});

// Found in the 2026-12-06 review of the lock bound: the start-up check of the file's row failing
// (PostgreSQL not answering yet, a lock past its bound) marked the file diverged until a restart —
// the "log was cut" error for an outage, and no checkpoint written again. A failed read now
// leaves the row unchecked; the first write checks it before the file moves.
it.each([
  ['the row is still there', true],
  ['the row is gone (the log was cut while the check could not run)', false],
])('the start-up check failing in an outage decides nothing: the next write checks again — %s', async (_what, holdsLater) => {
  const lines: { level: number; msg: string }[] = [];
  const log = pino({ level: 'info' }, new Writable({ write: (chunk, _enc, done) => (lines.push(JSON.parse(String(chunk))), done()) }));
  const path = join(mkdtempSync(join(tmpdir(), 'cp-outage-')), 'audit-checkpoint.json');
  const first = createCheckpointWriter(path, key, log, { keys: [key], holds: async () => true });
  first.update(head(1));
  await first.flush();
  const recorded = readFileSync(path, 'utf8');
  let down = true;
  const checked: number[] = [];
  const writer = createCheckpointWriter(path, key, log, {
    keys: [key],
    holds: async (seq) => {
      checked.push(seq);
      if (down) throw Object.assign(new Error('Query read timeout'), {});
      return holdsLater;
    },
  });
  await writer.flush(); // waits for the start-up check
  const atStart = lines.find((l) => l.msg.startsWith("audit checkpoint file's row could not be checked at start"));
  expect(atStart && pino.levels.labels[atStart.level]).toBe('warn');
  expect(
    lines.some((l) => l.msg.startsWith('audit checkpoint file kept as it is')),
    'not reported as a cut log',
  ).toBe(false);
  expect(writer.diverged).toBeUndefined();
  down = false;
  writer.update(head(2));
  await writer.flush();
  expect(checked).toEqual([1, 1]);
  if (holdsLater) {
    expect(JSON.parse(readFileSync(path, 'utf8')).seq).toBe(2);
    expect(writer.diverged).toBeUndefined();
  } else {
    expect(readFileSync(path, 'utf8'), 'the file still records row 1').toBe(recorded);
    expect(writer.diverged).toMatch(/no longer holds row 1/);
  }
});
