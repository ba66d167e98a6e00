/**
 * Review of issue 9 item 1, "a cut audit log overwrites its own checkpoint" (DESIGN §9;
 * SECURITY.md "Tamper-evident audit log": a truncated tail is detected through the checkpoint
 * file). Someone with write access to the database cuts rows off the tail. The checkpoint file
 * catches it — but the server appends its next row to what is left and used to put that
 * shortened head into the file: at once after a restart, or as soon as the running chain grew
 * past the old head. From then on `audit verify` passed and the cut was gone without a trace.
 * Now the file only moves forward along the chain it recorded: it is kept, an error is logged,
 * and verify keeps failing; an operator who restored a backup on purpose moves the file aside.
 * On the test engine (TEST_ENGINE): on PostgreSQL the file is the one replica's own (README
 * "Running several replicas") and the attacker cuts the PostgreSQL table.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run, type Io } from '../../src/cli/index.js';
import type { AuditEntry } from '../../src/audit/audit.js';
import { startTestApp, TEST_SECRET_KEY } from '../helpers/app.js';
import { databaseEnv, dropTrigger, openTestSql } from '../helpers/engine.js';

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
function newDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'audit-cut-'));
  dirs.push(dir);
  return dir;
}

const entry = (i: number): AuditEntry => ({ event: 'consent.approved', subject: `user-${i}`, clientId: 'c-1' });
const entries = (from: number, n: number) => Array.from({ length: n }, (_, i) => entry(from + i));

/** P with this data directory records `list` as it does for decisions, then stops. */
async function serverRecords(dir: string, list: AuditEntry[]): Promise<string[]> {
  const app = await startTestApp({ dir });
  for (const e of list) await app.runtime.audit.record(e);
  await app.close();
  return app.logLines;
}

async function verify(dir: string) {
  const stdout: string[] = [];
  const stderr: string[] = [];
  const io: Io = { env: { ...(await databaseEnv(dir)), SECRET_KEY: TEST_SECRET_KEY }, out: (t) => stdout.push(t), err: (t) => stderr.push(t) };
  const code = await run(['audit', 'verify'], io);
  return { code, out: stdout.join('\n'), err: stderr.join('\n') };
}

/** The attacker: triggers dropped, every row from `fromSeq` deleted. */
async function truncate(dir: string, fromSeq: number): Promise<void> {
  const db = await openTestSql(dir);
  await dropTrigger(db, 'audit_log_no_delete', 'audit_log');
  await db.run('DELETE FROM audit_log WHERE seq >= ?', [fromSeq]);
  await db.close();
}

const checkpointSeq = (dir: string) => JSON.parse(readFileSync(join(dir, 'audit-checkpoint.json'), 'utf8')).seq as number;

describe('a cut audit log overwrites its own checkpoint', () => {
  it('after a restart, the next row does not replace the checkpoint of the longer chain: verify still fails, and the server says why', async () => {
    const dir = newDir();
    await serverRecords(dir, entries(1, 6));
    expect(checkpointSeq(dir)).toBe(6);
    await truncate(dir, 4);

    const logLines = await serverRecords(dir, entries(100, 4)); // rows 4–7 of the cut chain
    expect(checkpointSeq(dir)).toBe(6);
    const result = await verify(dir);
    expect(result.code).toBe(1);
    expect(result.err).toMatch(/audit log BROKEN at row 6: row 6 differs from the checkpoint file \(written [^)]+\): the log was rewritten from there or before/);
    const errors = logLines.map((l) => JSON.parse(l)).filter((l) => l.level === 50);
    expect(errors.some((l) => l.msg.startsWith('audit checkpoint file kept as it is') && l.problem.includes('row 6'))).toBe(true);
  }, 30_000);

  it('a running server whose tail is cut does not move the checkpoint onto the new rows', async () => {
    const dir = newDir();
    const app = await startTestApp({ dir });
    try {
      for (const e of entries(1, 6)) await app.runtime.audit.record(e);
      await app.runtime.audit.flush();
      expect(checkpointSeq(dir)).toBe(6);
      await truncate(dir, 4);
      for (const e of entries(100, 6)) await app.runtime.audit.record(e); // rows 4–9
      await app.runtime.audit.flush();
    } finally {
      await app.close();
    }
    expect(checkpointSeq(dir)).toBe(6);
    const result = await verify(dir);
    expect(result.code).toBe(1);
    expect(result.err).toContain('row 6 differs from the checkpoint file');
  }, 30_000);

  it('an operator who restored on purpose moves the file aside; the next row writes a new one and verify passes', async () => {
    const dir = newDir();
    await serverRecords(dir, entries(1, 6));
    await truncate(dir, 4); // as a restored older backup would be
    await serverRecords(dir, entries(100, 1));
    expect((await verify(dir)).code).toBe(1);

    renameSync(join(dir, 'audit-checkpoint.json'), join(dir, 'audit-checkpoint.before-restore.json'));
    await serverRecords(dir, entries(200, 1));
    expect(existsSync(join(dir, 'audit-checkpoint.json'))).toBe(true);
    expect(checkpointSeq(dir)).toBe(5);
    expect((await verify(dir)).code).toBe(0);
  }, 30_000);
});
