/**
 * Group commit on SQLite (src/db/sqlite-group-commit.ts, src/db/sqlite-sql.ts; issue 14): the
 * transactions that start before a batch's COMMIT is due share one SQLite transaction, each in a
 * savepoint; each resolves only once that COMMIT is durable; a failure rolls back only its own
 * work; a failed COMMIT fails them all; statements from outside wait for the COMMIT; a steady
 * stream of transactions cannot keep a batch open. A second connection (what another process
 * sees) tells what is committed.
 */
import Database from 'better-sqlite3';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { NOT_NOW, openSqliteSql } from '../../src/db/sqlite-sql.js';

async function setup() {
  const path = join(mkdtempSync(join(tmpdir(), 'group-commit-')), 'p.db');
  const sql = openSqliteSql(path);
  await sql.run('CREATE TABLE items (id TEXT PRIMARY KEY)');
  await sql.run('CREATE TABLE parents (id TEXT PRIMARY KEY)');
  await sql.run('CREATE TABLE children (id TEXT PRIMARY KEY, parent TEXT REFERENCES parents (id) DEFERRABLE INITIALLY DEFERRED)');
  const other = new Database(path, { readonly: true });
  const seen = () => (other.prepare('SELECT id FROM items ORDER BY id').all() as { id: string }[]).map((r) => r.id);
  return { sql, seen, close: async () => (other.close(), await sql.close()) };
}

/** Microtask turns only: the transactions' work is done, the batch's COMMIT (due at the check phase) not yet. */
const microtasks = async () => {
  for (let i = 0; i < 50; i++) await Promise.resolve();
};

/** Counts the COMMIT statements run on any better-sqlite3 connection of this process while `fn` runs. */
async function countCommits(fn: () => Promise<void>): Promise<number> {
  const probe = new Database(':memory:');
  const proto = Object.getPrototypeOf(probe.prepare('SELECT 1')) as { run: (...args: unknown[]) => unknown };
  probe.close();
  const run = proto.run;
  let n = 0;
  proto.run = function (this: { source: string }, ...args: unknown[]) {
    if (this.source === 'COMMIT') n += 1;
    return run.apply(this, args);
  };
  try {
    await fn();
  } finally {
    proto.run = run;
  }
  return n;
}

describe('SQLite group commit', () => {
  it('transactions started in one turn share one COMMIT, and none resolves before it is durable', async () => {
    const { sql, seen, close } = await setup();
    try {
      const order: string[] = [];
      const runs = ['a', 'b', 'c'].map((id) =>
        sql
          .transaction(async () => {
            await sql.run('INSERT INTO items (id) VALUES (?)', [id]);
            sql.afterCommit(() => order.push(`after ${id}: ${seen().join(',')}`));
            return id;
          })
          .then((value) => (order.push(`resolved ${value}: ${seen().join(',')}`), value)),
      );
      await microtasks();
      expect(seen(), 'nothing visible to another connection before the COMMIT').toEqual([]);
      expect(order, 'none resolved before it').toEqual([]);
      expect(await Promise.all(runs)).toEqual(['a', 'b', 'c']);
      for (const line of order) expect(line, 'each resolved and ran its afterCommit with all three committed').toMatch(/: a,b,c$/);
      expect(order.filter((l) => l.startsWith('after'))).toHaveLength(3);
    } finally {
      await close();
    }
  });

  it('counts the COMMITs: three transactions in one turn, one; three one after another, three', async () => {
    const { sql, close } = await setup();
    try {
      expect(await countCommits(async () => void (await Promise.all(['a', 'b', 'c'].map((id) => sql.transaction(() => sql.run('INSERT INTO items (id) VALUES (?)', [id]))))))).toBe(1);
      expect(
        await countCommits(async () => {
          for (const id of ['d', 'e', 'f']) await sql.transaction(() => sql.run('INSERT INTO items (id) VALUES (?)', [id]));
        }),
      ).toBe(3);
    } finally {
      await close();
    }
  });

  it('a transaction that fails rolls back its own work only; the others of the batch commit', async () => {
    const { sql, seen, close } = await setup();
    try {
      const results = await Promise.allSettled([
        sql.transaction(() => sql.run('INSERT INTO items (id) VALUES (?)', ['kept-1'])),
        sql.transaction(async () => {
          await sql.run('INSERT INTO items (id) VALUES (?)', ['rolled-back']);
          throw new Error('this one fails');
        }),
        sql.transaction(() => sql.run('INSERT INTO items (id) VALUES (?)', ['kept-2'])),
      ]);
      expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
      expect(seen()).toEqual(['kept-1', 'kept-2']);
    } finally {
      await close();
    }
  });

  it('a COMMIT that fails fails every transaction of the batch, none of whose writes remain, and runs no afterCommit', async () => {
    const { sql, seen, close } = await setup();
    try {
      const after: string[] = [];
      const results = await Promise.allSettled([
        sql.transaction(async () => {
          await sql.run('INSERT INTO items (id) VALUES (?)', ['innocent']);
          sql.afterCommit(() => after.push('innocent'));
        }),
        // A deferred foreign key is checked at COMMIT: this one fails it.
        sql.transaction(() => sql.run('INSERT INTO children (id, parent) VALUES (?, ?)', ['orphan', 'nobody'])),
      ]);
      expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
      expect(String((results[0] as PromiseRejectedResult).reason)).toMatch(/FOREIGN KEY/);
      await new Promise((resolve) => setImmediate(resolve));
      expect(after).toEqual([]);
      expect(seen()).toEqual([]);
      expect(await sql.one('SELECT id FROM children')).toBeUndefined();
      // The connection is usable again: the next batch commits.
      await sql.transaction(() => sql.run('INSERT INTO items (id) VALUES (?)', ['next']));
      expect(seen()).toEqual(['next']);
    } finally {
      await close();
    }
  });

  it('a statement from outside a transaction waits for the open batch to commit (it would join it) and sees its rows', async () => {
    const { sql, close } = await setup();
    try {
      const tx = sql.transaction(() => sql.run('INSERT INTO items (id) VALUES (?)', ['x']));
      await microtasks(); // its work done, the batch open
      expect(sql.oneSync('SELECT id FROM items'), 'no answer from inside an uncommitted batch').toBe(NOT_NOW);
      const read = sql.one<{ id: string }>('SELECT id FROM items');
      await tx;
      expect(await read).toEqual({ id: 'x' });
    } finally {
      await close();
    }
  });

  it('a steady stream of transactions cannot keep a batch open: its COMMIT comes at the next check phase', async () => {
    const { sql, seen, close } = await setup();
    try {
      let n = 0;
      let stop = false;
      const stream = (async () => {
        while (!stop) {
          const id = `s${(n += 1)}`;
          void sql.transaction(() => sql.run('INSERT INTO items (id) VALUES (?)', [id]));
          await Promise.resolve();
          if (n % 50 === 0) await new Promise((resolve) => setImmediate(resolve));
        }
      })();
      const first = sql.transaction(() => sql.run('INSERT INTO items (id) VALUES (?)', ['first']));
      await first; // resolves: the stream did not starve its COMMIT
      stop = true;
      await stream;
      expect(seen()).toContain('first');
    } finally {
      await close();
    }
  });
});
