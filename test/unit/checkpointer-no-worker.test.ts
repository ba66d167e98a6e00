/**
 * Where no worker thread can start (a bundled build, Node's permission model), startCheckpointer
 * reports why and leaves SQLite checkpointing in its own commits (src/db/checkpointer.ts): the
 * server still starts, and the automatic checkpoint is not raised to the safety net.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it, vi } from 'vitest';
import { openDatabase } from '../../src/db/open.js';
import { startCheckpointer } from '../../src/db/checkpointer.js';

vi.mock('node:worker_threads', () => ({
  Worker: class {
    constructor() {
      throw new Error('worker threads are not allowed here');
    }
  },
}));

it('a worker that cannot start: reported, no throw, SQLite keeps its own checkpoints', async () => {
  const db = openDatabase(join(mkdtempSync(join(tmpdir(), 'checkpointer-')), 'p.db'));
  const before = db.pragma('wal_autocheckpoint', { simple: true });
  const errors: string[] = [];
  const checkpointer = startCheckpointer(db, db.name, (message) => errors.push(message));
  expect(errors).toEqual(['worker threads are not allowed here']);
  expect(db.pragma('wal_autocheckpoint', { simple: true })).toBe(before);
  await checkpointer.stop();
  db.close();
});
