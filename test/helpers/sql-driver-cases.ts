/**
 * The cases every Sql driver (src/db/sql.ts) must pass, the same for SQLite and PostgreSQL:
 * test/unit/sql-driver.test.ts runs them on SQLite, test/unit/sql-driver.pg.test.ts on PostgreSQL.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { SqlParameterError, TransactionAbortedError, type Sql } from '../../src/db/sql.js';

export interface Gate {
  wait: Promise<void>;
  open: () => void;
}

export function gate(): Gate {
  let open!: () => void;
  const wait = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { wait, open };
}

/** Whether a promise has settled, observable synchronously. */
export function watch(p: Promise<unknown>): () => boolean {
  let settled = false;
  p.then(
    () => (settled = true),
    () => (settled = true),
  );
  return () => settled;
}

/** Let the event loop run `turns` times (I/O callbacks included); a bounded wait, not a sleep. */
export async function turns(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise((resolve) => setImmediate(resolve));
}

const ids = async (sql: Sql) => (await sql.all<{ id: string }>('SELECT id FROM items ORDER BY id')).map((r) => r.id);

export function sqlDriverCases(engine: 'sqlite' | 'postgres', open: () => Promise<Sql>): void {
  describe(`Sql driver cases (${engine})`, () => {
    let sql: Sql;
    beforeAll(async () => {
      sql = await open();
      expect(sql.engine).toBe(engine);
      await sql.run('CREATE TABLE items (id TEXT PRIMARY KEY, n BIGINT, note TEXT)');
    });
    afterAll(async () => {
      await sql?.close();
    });
    beforeEach(async () => {
      await sql.run('DELETE FROM items');
    });

    it('one, all and run: rows, undefined when there is none, changes counted, RETURNING', async () => {
      expect(await sql.run('INSERT INTO items (id, n, note) VALUES (?, ?, ?)', ['a', 1, 'first'])).toEqual({ changes: 1 });
      await sql.run('INSERT INTO items (id, n, note) VALUES (?, ?, ?), (?, ?, ?)', ['b', 2, null, 'c', 3, 'third']);
      expect(await sql.one('SELECT id, n, note FROM items WHERE id = ?', ['a'])).toEqual({ id: 'a', n: 1, note: 'first' });
      expect(await sql.one('SELECT id FROM items WHERE id = ?', ['zzz'])).toBeUndefined();
      expect(await sql.all('SELECT id, note FROM items ORDER BY id')).toEqual([
        { id: 'a', note: 'first' },
        { id: 'b', note: null },
        { id: 'c', note: 'third' },
      ]);
      expect(await sql.all('SELECT id FROM items WHERE n > ?', [100])).toEqual([]);
      expect(await sql.run('UPDATE items SET note = ? WHERE n >= ?', ['x', 2])).toEqual({ changes: 2 });
      expect(await sql.run('DELETE FROM items WHERE id = ?', ['nope'])).toEqual({ changes: 0 });
      expect(await sql.one('UPDATE items SET n = n + 10 WHERE id = ? RETURNING id, n', ['a'])).toEqual({ id: 'a', n: 11 });
      expect(await sql.one('INSERT INTO items (id, n) VALUES (?, ?) ON CONFLICT (id) DO UPDATE SET n = excluded.n + items.n RETURNING n', ['a', 5])).toEqual({ n: 16 });
      expect(await sql.one('INSERT INTO items (id, n) VALUES (?, ?) ON CONFLICT DO NOTHING RETURNING id', ['a', 0])).toBeUndefined();
    });

    it('placeholders: a ? inside a string literal, a quoted identifier or a comment is left alone', async () => {
      await sql.run("INSERT INTO items (id, note) VALUES (?, 'why?')", ['q']);
      const row = await sql.one<Record<string, unknown>>(
        `SELECT CAST(? AS TEXT) AS a, 'it''s ?' AS b, note AS "c?", /* ? */ CAST(? AS TEXT) AS d -- trailing ?
         FROM items WHERE id = ? AND note = 'why?'`,
        ['x', 'y', 'q'],
      );
      expect(row).toEqual({ a: 'x', b: "it's ?", 'c?': 'why?', d: 'y' });
    });

    it('BIGINT values come back as JS numbers: ms timestamps, counters, count(*) and max()', async () => {
      const ms = 1_767_225_600_123;
      await sql.run('INSERT INTO items (id, n) VALUES (?, ?), (?, ?)', ['t', ms, 'big', Number.MAX_SAFE_INTEGER]);
      const t = await sql.one<{ n: unknown }>('SELECT n FROM items WHERE id = ?', ['t']);
      expect(t?.n).toBe(ms);
      expect(typeof t?.n).toBe('number');
      expect((await sql.one<{ n: unknown }>('SELECT n FROM items WHERE id = ?', ['big']))?.n).toBe(Number.MAX_SAFE_INTEGER);
      const agg = await sql.one<{ c: unknown; m: unknown; s: unknown }>('SELECT count(*) AS c, max(n) AS m, CAST(sum(n) - ? AS BIGINT) AS s FROM items', [Number.MAX_SAFE_INTEGER]);
      expect(agg).toEqual({ c: 2, m: Number.MAX_SAFE_INTEGER, s: ms });
    });

    it('a string parameter with U+0000 is refused on both engines, and nothing is written', async () => {
      await expect(sql.run('INSERT INTO items (id, note) VALUES (?, ?)', ['nul', 'a\u0000b'])).rejects.toThrow(SqlParameterError);
      expect(await ids(sql)).toEqual([]);
    });

    it('a read with U+0000 in a parameter finds nothing (looked up as U+FFFD) instead of failing, on both engines', async () => {
      await sql.run('INSERT INTO items (id, note) VALUES (?, ?)', ['a', 'x']);
      expect(await sql.one('SELECT id FROM items WHERE id = ?', ['a\u0000'])).toBeUndefined();
      expect(await sql.all('SELECT id FROM items WHERE note = ?', ['\u0000'])).toEqual([]);
      await sql.run('INSERT INTO items (id, note) VALUES (?, ?)', ['b', 'c\uFFFDd']);
      expect(await sql.one<{ id: string }>('SELECT id FROM items WHERE note = ?', ['c\u0000d'])).toEqual({ id: 'b' });
    });

    it('afterCommit: at once outside a transaction; after the commit inside one (seeing the committed row, outside its context); never after a rollback, nested or not', async () => {
      const seen: string[] = [];
      sql.afterCommit(() => seen.push('outside'));
      expect(seen).toEqual(['outside']);
      const committed = sql.transaction(async () => {
        await sql.run('INSERT INTO items (id) VALUES (?)', ['kept']);
        await sql.transaction(async () => {
          sql.afterCommit(() => {
            seen.push(`nested, in a transaction: ${sql.inTransaction()}`);
          });
        });
        sql.afterCommit(() => seen.push('outer'));
        await turns(2);
        expect(seen, 'not before the commit').toEqual(['outside']);
      });
      await committed;
      await turns(1);
      expect(seen).toEqual(['outside', 'nested, in a transaction: false', 'outer']);
      expect(await ids(sql)).toEqual(['kept']);
      await expect(
        sql.transaction(async () => {
          await sql.run('INSERT INTO items (id) VALUES (?)', ['gone']);
          sql.afterCommit(() => seen.push('rolled back'));
          await sql.transaction(async () => {
            sql.afterCommit(() => seen.push('nested, rolled back'));
          });
          throw new Error('roll back');
        }),
      ).rejects.toThrow('roll back');
      await turns(2);
      expect(seen).toHaveLength(3);
      expect(await ids(sql)).toEqual(['kept']);
    });

    it('transaction: commits when fn resolves and returns its value', async () => {
      const result = await sql.transaction(async () => {
        await sql.run('INSERT INTO items (id) VALUES (?)', ['a']);
        await sql.run('INSERT INTO items (id) VALUES (?)', ['b']);
        return (await sql.one<{ n: number }>('SELECT count(*) AS n FROM items'))?.n;
      });
      expect(result).toBe(2);
      expect(await ids(sql)).toEqual(['a', 'b']);
    });

    it('transaction: rolls back when fn throws, and rethrows', async () => {
      const boom = new Error('boom');
      await expect(
        sql.transaction(async () => {
          await sql.run('INSERT INTO items (id) VALUES (?)', ['a']);
          throw boom;
        }),
      ).rejects.toBe(boom);
      expect(await ids(sql)).toEqual([]);
    });

    it('transaction: a statement fn started but did not await, failing after fn returned, fails the transaction — no commit reported, no afterCommit', async () => {
      await sql.run('INSERT INTO items (id) VALUES (?)', ['taken']);
      const seen: string[] = [];
      let late: Promise<unknown> | undefined;
      await expect(
        sql.transaction(async () => {
          await sql.run('INSERT INTO items (id) VALUES (?)', ['written']);
          sql.afterCommit(() => seen.push('after commit'));
          late = sql.run('INSERT INTO items (id) VALUES (?)', ['taken']).catch((err: unknown) => err); // a duplicate key
          return 'done';
        }),
      ).rejects.toThrow(/duplicate|UNIQUE/i);
      expect(await late).toBeInstanceOf(Error);
      await turns(2);
      expect(seen).toEqual([]);
      expect(await ids(sql)).toEqual(['taken']);
    });

    it('nested transaction joins the outer one: the outer rollback undoes the inner writes', async () => {
      await expect(
        sql.transaction(async () => {
          await sql.run('INSERT INTO items (id) VALUES (?)', ['outer']);
          const inner = await sql.transaction(async () => {
            await sql.run('INSERT INTO items (id) VALUES (?)', ['inner']);
            // The inner call sees the outer's uncommitted row: one transaction.
            return (await sql.one<{ n: number }>('SELECT count(*) AS n FROM items'))?.n;
          });
          expect(inner).toBe(2);
          throw new Error('outer fails');
        }),
      ).rejects.toThrow('outer fails');
      expect(await ids(sql)).toEqual([]);
    });

    it('a nested call that throws dooms the whole transaction, even when the outer fn catches it', async () => {
      const inner = new Error('inner fails');
      await expect(
        sql.transaction(async () => {
          await sql.run('INSERT INTO items (id) VALUES (?)', ['outer']);
          await sql
            .transaction(async () => {
              await sql.run('INSERT INTO items (id) VALUES (?)', ['inner']);
              throw inner;
            })
            .catch(() => undefined);
          return 'fn resolved';
        }),
      ).rejects.toBe(inner);
      expect(await ids(sql)).toEqual([]);
    });

    it('a failed statement dooms the transaction: later statements are refused, and it rolls back even when fn catches', async () => {
      await sql.run('INSERT INTO items (id) VALUES (?)', ['dup']);
      let duplicate: unknown;
      let later: unknown;
      const outcome = await sql
        .transaction(async () => {
          await sql.run('INSERT INTO items (id) VALUES (?)', ['a']);
          duplicate = await sql.run('INSERT INTO items (id) VALUES (?)', ['dup']).catch((err: unknown) => err);
          later = await sql.run('INSERT INTO items (id) VALUES (?)', ['b']).catch((err: unknown) => err);
          return 'fn resolved';
        })
        .catch((err: unknown) => err);
      expect(duplicate).toBeInstanceOf(Error);
      expect(outcome).toBe(duplicate);
      expect(later).toBeInstanceOf(TransactionAbortedError);
      expect(await ids(sql)).toEqual(['dup']);
    });

    it('runLater inside a transaction: later statements see its write, and it commits with them', async () => {
      await sql.transaction(async () => {
        await sql.runLater('INSERT INTO items (id, n) VALUES (?, ?)', ['later-1', 1]);
        await sql.runLater('UPDATE items SET n = n + 1 WHERE id = ?', ['later-1']);
        expect(await sql.one<{ n: number }>('SELECT n FROM items WHERE id = ?', ['later-1'])).toEqual({ n: 2 });
        await sql.runLater('INSERT INTO items (id, n) VALUES (?, ?)', ['later-2', 1]);
      });
      expect(await ids(sql)).toEqual(['later-1', 'later-2']);
      // Outside a transaction it is run: committed once it resolves.
      await sql.runLater('INSERT INTO items (id) VALUES (?)', ['later-3']);
      expect(await ids(sql)).toEqual(['later-1', 'later-2', 'later-3']);
    });

    it('runLater that fails dooms the transaction: the next statement waited for is refused with it as the cause, the transaction rejects with it, nothing commits', async () => {
      await sql.run('INSERT INTO items (id) VALUES (?)', ['dup']);
      let next: unknown;
      const outcome = await sql
        .transaction(async () => {
          await sql.run('INSERT INTO items (id) VALUES (?)', ['a']);
          // PostgreSQL answers it later (pipelined); SQLite at once — either way the caller may not rely on its await.
          await sql.runLater('INSERT INTO items (id) VALUES (?)', ['dup']).catch(() => undefined);
          next = await sql.one('SELECT id FROM items WHERE id = ?', ['a']).catch((err: unknown) => err);
          return 'fn resolved';
        })
        .catch((err: unknown) => err);
      expect(outcome).toBeInstanceOf(Error);
      expect(outcome).not.toBeInstanceOf(TransactionAbortedError);
      expect(next).toBeInstanceOf(TransactionAbortedError);
      expect((next as Error).cause).toBe(outcome);
      expect(await ids(sql)).toEqual(['dup']);
      /** A transaction inserting `id`, then `bad` unwaited as its last statement: what it ends with. */
      const endingWithFailedLater = (id: string, bad: string) =>
        sql
          .transaction(async () => {
            await sql.run('INSERT INTO items (id) VALUES (?)', [id]);
            await sql.runLater('INSERT INTO items (id) VALUES (?)', [bad]).catch(() => undefined);
          })
          .catch((err: unknown) => err);
      // The last statement of a transaction, failing unwaited: COMMIT is refused with its error.
      expect(await endingWithFailedLater('b', 'dup')).toBeInstanceOf(Error);
      expect(await ids(sql)).toEqual(['dup']);
      // Refused before it is sent (a parameter with U+0000): the same (review 2026-12-06: PostgreSQL committed without the row).
      expect(await endingWithFailedLater('c', 'nul\u0000')).toBeInstanceOf(Error);
      expect(await ids(sql)).toEqual(['dup']);
    });

    it("a statement from outside the transaction's context does not join it", async () => {
      const g = gate();
      const started = gate();
      const tx = sql.transaction(async () => {
        await sql.run('INSERT INTO items (id) VALUES (?)', ['inside']);
        started.open();
        await g.wait;
        throw new Error('roll back');
      });
      await started.wait;
      // Another request, in its own async context, while the transaction is open.
      const outside = (async () => sql.run('INSERT INTO items (id) VALUES (?)', ['outside']))();
      await turns(3);
      g.open();
      await expect(tx).rejects.toThrow('roll back');
      await outside;
      expect(await ids(sql)).toEqual(['outside']);
    });

    it("a statement issued from a transaction's context after it ended runs on its own, joining no later transaction", async () => {
      const release = gate();
      let late: Promise<unknown> | undefined;
      await sql.transaction(async () => {
        await sql.run('INSERT INTO items (id) VALUES (?)', ['in-tx']);
        late = release.wait.then(() => sql.run('INSERT INTO items (id) VALUES (?)', ['late']));
      });
      const started = gate();
      const finish = gate();
      const second = sql.transaction(async () => {
        await sql.run('INSERT INTO items (id) VALUES (?)', ['second']);
        started.open();
        await finish.wait;
        throw new Error('this rollback must not take the late row');
      });
      await started.wait;
      release.open();
      await turns(3);
      finish.open();
      await expect(second).rejects.toThrow('this rollback');
      await late;
      expect(await ids(sql)).toEqual(['in-tx', 'late']);
    });

    it('inTransaction() is true only in the async context of an open transaction', async () => {
      expect(sql.inTransaction()).toBe(false);
      const inside = gate();
      const release = gate();
      const tx = sql.transaction(async () => {
        expect(sql.inTransaction()).toBe(true);
        await sql.run('INSERT INTO items (id) VALUES (?)', ['t']);
        inside.open();
        await release.wait;
        expect(sql.inTransaction()).toBe(true);
      });
      await inside.wait;
      expect(sql.inTransaction()).toBe(false); // another context, while it is open
      release.open();
      await tx;
      expect(sql.inTransaction()).toBe(false);
    });

    it('transactionScope() is one identity per transaction, shared by nested calls, and undefined outside one', async () => {
      expect(sql.transactionScope()).toBeUndefined();
      let first: object | undefined;
      let nested: object | undefined;
      let afterAwait: object | undefined;
      await sql.transaction(async () => {
        first = sql.transactionScope();
        await sql.run('INSERT INTO items (id) VALUES (?)', ['s1']);
        afterAwait = sql.transactionScope();
        await sql.transaction(async () => {
          nested = sql.transactionScope();
        });
      });
      expect(first).toBeTypeOf('object');
      expect(afterAwait).toBe(first);
      expect(nested).toBe(first);
      expect(sql.transactionScope()).toBeUndefined();
      const second = await sql.transaction(async () => sql.transactionScope());
      expect(second).toBeTypeOf('object');
      expect(second).not.toBe(first);
      const inside = gate();
      const release = gate();
      const open = sql.transaction(async () => {
        inside.open();
        await release.wait;
      });
      await inside.wait;
      expect(sql.transactionScope()).toBeUndefined(); // another context, while it is open
      release.open();
      await open;
    });

    it('transactionScope() is undefined in the transaction once a statement failed, and in its context after it ended', async () => {
      const seen: (object | undefined)[] = [];
      const later = gate();
      let late: Promise<object | undefined> | undefined;
      await expect(
        sql.transaction(async () => {
          seen.push(sql.transactionScope());
          await sql.run('INSERT INTO no_such_table (id) VALUES (?)', ['x']).catch(() => undefined);
          seen.push(sql.transactionScope());
        }),
      ).rejects.toThrow();
      expect(seen[0]).toBeTypeOf('object');
      expect(seen[1]).toBeUndefined();
      await sql.transaction(async () => {
        // started in the transaction's context, running after it committed
        late = (async () => {
          await later.wait;
          return sql.transactionScope();
        })();
      });
      later.open();
      expect(await late).toBeUndefined();
    });

    it('oneNow answers what one answers, as a value or a promise', async () => {
      await sql.run('INSERT INTO items (id, n) VALUES (?, ?)', ['x', 7]);
      expect(await sql.oneNow('SELECT id, n FROM items WHERE id = ?', ['x'])).toEqual({ id: 'x', n: 7 });
      expect(await sql.oneNow('SELECT id FROM items WHERE id = ?', ['none'])).toBeUndefined();
      expect(await sql.transaction(async () => sql.oneNow('SELECT n FROM items WHERE id = ?', ['x']))).toEqual({ n: 7 });
    });

    it('lock() is refused outside a transaction', async () => {
      await expect(sql.lock('x')).rejects.toThrow(/only allowed inside transaction/);
    });

    it('lock(): a read-modify-write under the lock loses no update among concurrent transactions', async () => {
      await sql.run('INSERT INTO items (id, n) VALUES (?, ?)', ['counter', 0]);
      await Promise.all(
        Array.from({ length: 8 }, () =>
          sql.transaction(async () => {
            await sql.lock('counter');
            const row = await sql.one<{ n: number }>('SELECT n FROM items WHERE id = ?', ['counter']);
            await turns(1);
            await sql.run('UPDATE items SET n = ? WHERE id = ?', [row!.n + 1, 'counter']);
          }),
        ),
      );
      expect((await sql.one<{ n: number }>('SELECT n FROM items WHERE id = ?', ['counter']))?.n).toBe(8);
    });

    it('exclusive(), tryExclusive(): run fn outside a transaction and returns its value; refused inside one, where fn never runs', async () => {
      expect(await sql.exclusive('x', 1000, async () => (await sql.one<{ v: number }>('SELECT 7 AS v'))?.v)).toBe(7);
      let ran = false;
      await expect(
        sql.transaction(() =>
          sql.exclusive('x', 1000, async () => {
            ran = true;
          }),
        ),
      ).rejects.toThrow(/not allowed inside transaction/);
      expect(ran).toBe(false);
      expect(await sql.tryExclusive('x', async () => 8)).toEqual({ acquired: true, value: 8 });
      await expect(sql.transaction(() => sql.tryExclusive('x', async () => 9))).rejects.toThrow(/not allowed inside transaction/);
    });
  });
}
