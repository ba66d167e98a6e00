/**
 * SQLite's WAL checkpoints in a worker thread (src/db/checkpointer.ts, issue 14): committed pages
 * reach the database file without the server's connection checkpointing (its automatic
 * checkpoint is only a safety net at SAFETY_NET_PAGES), close() stops the worker, and a worker
 * that cannot open the database reports it instead of failing the server.
 * Waits are bounded polls for the worker's effect, not sleeps.
 */
import { mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openSqliteSql } from '../../src/db/sqlite-sql.js';
import { openDatabase } from '../../src/db/open.js';
import { SAFETY_NET_PAGES, startCheckpointer } from '../../src/db/checkpointer.js';

const dbPath = () => join(mkdtempSync(join(tmpdir(), 'checkpointer-')), 'p.db');

async function until(condition: () => boolean, withinMs = 5000): Promise<boolean> {
  for (const deadline = Date.now() + withinMs; Date.now() < deadline; ) {
    if (condition()) return true;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return condition();
}

/** ~600 KB of rows in one commit: about 150 pages, far below the safety net. */
async function writeRows(sql: ReturnType<typeof openSqliteSql>): Promise<void> {
  await sql.run('CREATE TABLE IF NOT EXISTS items (id BIGINT PRIMARY KEY, note TEXT)');
  await sql.transaction(async () => {
    for (let i = 0; i < 600; i++) await sql.run('INSERT INTO items (id, note) VALUES (?, ?)', [i, 'x'.repeat(1000)]);
  });
}

describe('background WAL checkpoints', () => {
  it("copy committed pages into the database file while the server's own connection does not checkpoint", async () => {
    const path = dbPath();
    const sql = openSqliteSql(path);
    const errors: string[] = [];
    sql.checkpointInBackground((m) => errors.push(m));
    expect(sql.db.pragma('wal_autocheckpoint', { simple: true })).toBe(SAFETY_NET_PAGES);
    await writeRows(sql);
    expect(await until(() => statSync(path).size > 500_000), 'the rows reached the database file').toBe(true);
    expect((await sql.one<{ n: number }>('SELECT count(*) AS n FROM items'))?.n).toBe(600);
    await sql.close();
    expect(errors).toEqual([]);
  });

  it('without the worker the same rows stay in the WAL (what the test above would see if it did nothing)', async () => {
    const path = dbPath();
    const sql = openSqliteSql(path);
    sql.db.pragma(`wal_autocheckpoint = ${SAFETY_NET_PAGES}`);
    await writeRows(sql);
    expect(await until(() => statSync(path).size > 500_000, 300)).toBe(false);
    await sql.close();
  });

  it('a worker that cannot open the database reports it, and stop() still resolves', async () => {
    const db = openDatabase(dbPath());
    const errors: string[] = [];
    const checkpointer = startCheckpointer(db, join(tmpdir(), 'no-such-dir-for-checkpointer', 'p.db'), (m) => errors.push(m), 20);
    await checkpointer.stop();
    expect(errors.join(' ')).toMatch(/unable to open|does not exist|no such/i);
    db.close();
  });
});
