/**
 * doctor's database check speaks PostgreSQL to a PostgreSQL deployment: a read-only standby is not
 * "cannot take the write lock" with a fix about the SQLite file, its directory and WAL files
 * (found in review). A standby cannot be made in a test cluster, so postgresStatus answers as
 * for one; the SQLite wording stays for SQLite.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { checkDatabase } from '../../src/cli/doctor/database.js';
import { holdWriteLock, migratedDatabase } from '../helpers/doctor-db.js';
import type { Config } from '../../src/config/load.js';

vi.mock('../../src/db/status-pg.js', () => ({
  postgresStatus: async () => ({ state: 'not-writable', problem: 'the server is a read-only standby' }),
}));

const OPTIONS = { timeoutMs: 200, now: () => Date.now() };

describe('doctor › database wording per engine', () => {
  it('PostgreSQL on a read-only standby: says so and points DATABASE_URL at the primary, no SQLite words', async () => {
    const config = { databaseUrl: 'postgres://app:pw-not-printed@db.example/proxy', databasePath: '/unused/mcp.db' } as unknown as Readonly<Config>;
    const result = await checkDatabase(config, OPTIONS);
    expect(result).toMatchObject({
      status: 'fail',
      detail: 'the PostgreSQL database (DATABASE_URL) is not writable (the server is a read-only standby)',
      fix: expect.stringContaining('Point DATABASE_URL at the primary'),
    });
    const printed = `${result.detail} ${result.fix ?? ''}`;
    expect(printed).not.toMatch(/write lock|WAL|file|directory/);
    expect(printed).not.toContain('pw-not-printed');
  });

  it('SQLite with its write lock held: the SQLite wording and fix', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'doctor-wording-')), 'locked.db');
    migratedDatabase(path);
    const lock = holdWriteLock(path);
    try {
      const result = await checkDatabase({ databaseUrl: undefined, databasePath: path } as unknown as Readonly<Config>, OPTIONS);
      expect(result).toMatchObject({ status: 'fail', detail: expect.stringContaining('cannot take the write lock'), fix: expect.stringContaining('WAL files') });
    } finally {
      lock.release();
    }
  });
});
