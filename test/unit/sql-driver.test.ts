/**
 * The Sql driver on SQLite (src/db/sqlite-sql.ts): the cases every driver passes
 * (test/helpers/sql-driver-cases.ts; the PostgreSQL run is sql-driver.pg.test.ts), the SQLite
 * waiting rule, and the pure helpers of src/db/sql.ts (placeholder rewriting, lock keys, LIKE
 * patterns).
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { likePattern, lockKey, toPositional } from '../../src/db/sql.js';
import { NOT_NOW, openSqliteSql } from '../../src/db/sqlite-sql.js';
import { gate, sqlDriverCases, turns, watch } from '../helpers/sql-driver-cases.js';

const dbPath = () => join(mkdtempSync(join(tmpdir(), 'sql-driver-')), 'p.db');

sqlDriverCases('sqlite', async () => openSqliteSql(dbPath()));

describe('SQLite driver: one connection, one transaction at a time', () => {
  async function withItems() {
    const sql = openSqliteSql(dbPath());
    await sql.run('CREATE TABLE items (id TEXT PRIMARY KEY, n BIGINT)');
    return sql;
  }

  it("a statement from outside the open transaction's context waits until it ends, and is not rolled back with it", async () => {
    const sql = await withItems();
    const g = gate();
    const started = gate();
    const tx = sql.transaction(async () => {
      await sql.run('INSERT INTO items (id) VALUES (?)', ['inside']);
      started.open();
      await g.wait;
      throw new Error('roll back');
    });
    await started.wait;
    const write = (async () => sql.run('INSERT INTO items (id) VALUES (?)', ['outside']))();
    const read = (async () => sql.all<{ id: string }>('SELECT id FROM items'))();
    const writeDone = watch(write);
    const readDone = watch(read);
    await turns(5);
    // Still waiting: better-sqlite3 would otherwise have run them at once, inside the transaction.
    expect(writeDone()).toBe(false);
    expect(readDone()).toBe(false);
    expect(sql.db.prepare('SELECT id FROM items').all()).toEqual([{ id: 'inside' }]);
    g.open();
    await expect(tx).rejects.toThrow('roll back');
    expect(await write).toEqual({ changes: 1 });
    // The read ran after the rollback (and after the write issued before it): it never saw the
    // uncommitted row.
    expect(await read).toEqual([{ id: 'outside' }]);
    expect(await sql.all('SELECT id FROM items')).toEqual([{ id: 'outside' }]);
    await sql.close();
  });

  it('a second transaction from another context starts only after the first has ended', async () => {
    const sql = await withItems();
    const g = gate();
    const order: string[] = [];
    const first = sql.transaction(async () => {
      order.push('first begins');
      await g.wait;
      await sql.run('INSERT INTO items (id) VALUES (?)', ['first']);
      order.push('first ends');
    });
    const second = (async () =>
      sql.transaction(async () => {
        order.push('second begins');
        await sql.run('INSERT INTO items (id) VALUES (?)', ['second']);
      }))();
    await turns(5);
    expect(order).toEqual(['first begins']);
    g.open();
    await Promise.all([first, second]);
    expect(order).toEqual(['first begins', 'first ends', 'second begins']);
    await sql.close();
  });

  it('with no transaction open a statement runs at once, synchronously, and statements are prepared once per SQL text', async () => {
    const sql = await withItems();
    const prepare = vi.spyOn(sql.db, 'prepare');
    const p = sql.run('INSERT INTO items (id) VALUES (?)', ['now']);
    // Executed before the first await: visible to a synchronous reader right away.
    expect(sql.db.prepare('SELECT count(*) AS n FROM items').get()).toEqual({ n: 1 });
    await p;
    prepare.mockClear();
    for (let i = 0; i < 3; i++) await sql.one('SELECT id FROM items WHERE id = ?', ['now']);
    expect(prepare).toHaveBeenCalledTimes(1);
    await sql.close();
  });

  it("oneSync answers synchronously, except while another context's transaction holds the connection (NOT_NOW); oneNow then waits for it", async () => {
    const sql = await withItems();
    await sql.run('INSERT INTO items (id, n) VALUES (?, ?)', ['a', 1]);
    expect(sql.oneSync('SELECT n FROM items WHERE id = ?', ['a'])).toEqual({ n: 1 });
    expect(sql.oneNow('SELECT n FROM items WHERE id = ?', ['a'])).toEqual({ n: 1 }); // a value, not a promise
    const g = gate();
    const inside = gate();
    const tx = sql.transaction(async () => {
      await sql.run('UPDATE items SET n = ? WHERE id = ?', [2, 'a']);
      // Inside its own transaction the read joins it, synchronously.
      expect(sql.oneSync('SELECT n FROM items WHERE id = ?', ['a'])).toEqual({ n: 2 });
      inside.open();
      await g.wait;
      throw new Error('roll back');
    });
    await inside.wait;
    expect(sql.oneSync('SELECT n FROM items WHERE id = ?', ['a'])).toBe(NOT_NOW);
    const later = sql.oneNow<{ n: number }>('SELECT n FROM items WHERE id = ?', ['a']);
    expect(later).toBeInstanceOf(Promise);
    const laterDone = watch(later as Promise<unknown>);
    await turns(3);
    expect(laterDone()).toBe(false);
    g.open();
    await expect(tx).rejects.toThrow('roll back');
    expect(await later).toEqual({ n: 1 }); // read after the rollback, never the uncommitted 2
    await sql.close();
  });

  it('close() waits for the open transaction, then closes the database', async () => {
    const sql = await withItems();
    const g = gate();
    const tx = sql.transaction(async () => {
      await g.wait;
      await sql.run('INSERT INTO items (id) VALUES (?)', ['kept']);
    });
    const closed = sql.close();
    const closedDone = watch(closed);
    await turns(3);
    expect(closedDone()).toBe(false);
    g.open();
    await tx;
    await closed;
    expect(sql.db.open).toBe(false);
  });
});

describe('toPositional: ? to $n for PostgreSQL', () => {
  it('numbers placeholders in order and leaves SQL without any untouched', () => {
    expect(toPositional('SELECT a FROM t WHERE b = ? AND c IN (?, ?) LIMIT ? OFFSET ?')).toEqual({
      text: 'SELECT a FROM t WHERE b = $1 AND c IN ($2, $3) LIMIT $4 OFFSET $5',
      count: 5,
    });
    const plain = 'SELECT 1';
    expect(toPositional(plain)).toEqual({ text: plain, count: 0 });
  });

  it('skips literals, E-strings, quoted identifiers, dollar quotes and comments', () => {
    const cases: [string, string][] = [
      ["SELECT '?', ?", "SELECT '?', $1"],
      ["SELECT 'it''s ?' || ?", "SELECT 'it''s ?' || $1"],
      ["SELECT E'\\' ?' || ?", "SELECT E'\\' ?' || $1"],
      ["SELECT e'a\\\\' , ?", "SELECT e'a\\\\' , $1"],
      ['SELECT "a?""?" FROM t WHERE x = ?', 'SELECT "a?""?" FROM t WHERE x = $1'],
      ['SELECT $$ ? $$, $tag$ ?$$? $tag$, ?', 'SELECT $$ ? $$, $tag$ ?$$? $tag$, $1'],
      ['SELECT ? -- what?\n, ?', 'SELECT $1 -- what?\n, $2'],
      ['SELECT /* ? /* ? */ ? */ ?', 'SELECT /* ? /* ? */ ? */ $1'],
    ];
    for (const [sql, text] of cases) expect(toPositional(sql).text, sql).toBe(text);
  });

  it('an E just before a quote is a prefix only when it starts a token', () => {
    // `THE'…'` is not an E-string: the backslash is an ordinary character there.
    expect(toPositional("SELECT x FROM t WHERE THE'\\' = ?").text).toBe("SELECT x FROM t WHERE THE'\\' = $1");
  });
});

describe('lockKey and likePattern', () => {
  it('lockKey is a stable signed 64-bit integer per name', () => {
    expect(lockKey('mcp-consent-proxy:migrate')).toBe(lockKey('mcp-consent-proxy:migrate'));
    expect(lockKey('a')).not.toBe(lockKey('b'));
    // First 8 bytes of SHA-256("x") = 2d711642b726b044, read as a signed big-endian int64.
    expect(lockKey('x')).toBe(BigInt.asIntN(64, 0x2d711642b726b044n).toString());
    for (const name of ['x', 'refresh:grant-1', 'audit']) {
      const k = BigInt(lockKey(name));
      expect(k >= -(2n ** 63n) && k < 2n ** 63n).toBe(true);
    }
  });

  it('likePattern escapes LIKE metacharacters and folds ASCII letters only', () => {
    expect(likePattern('Ab_c%d\\É')).toBe('%ab\\_c\\%d\\\\É%');
  });
});
