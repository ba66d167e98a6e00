/**
 * The provider's store keeps no usable credential at rest (DESIGN §3, UP-07): codes, tokens,
 * sessions and interactions are keyed by SHA-256 of their id; the raw id is not in the row;
 * session and interaction payloads are sealed; client secrets are sealed. Consumption is atomic:
 * of two consumes of one code, exactly one wins (TOK-05, RT-02), on either engine
 * (TEST_ENGINE, test/helpers/engine.ts).
 */
import { afterAll, describe, expect, it, vi } from 'vitest';
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KeyRing, sha256 } from '../../src/crypto/keys.js';
import { createOidcModelStore } from '../../src/store/oidc-models.js';
import { adapterClass } from '../../src/provider/configuration.js';
import type { Sql } from '../../src/db/sql.js';
import { onPostgres, openTestSql } from '../helpers/engine.js';
import { gate } from '../helpers/sql-driver-cases.js';

const opened: Sql[] = [];
afterAll(async () => {
  for (const sql of opened) await sql.close();
});

async function setup() {
  const db = await openTestSql(mkdtempSync(join(tmpdir(), 'oidc-models-')));
  opened.push(db);
  const keys = new KeyRing(randomBytes(32));
  return { db, keys, store: createOidcModelStore(db, keys) };
}

const dump = async (db: Sql) => JSON.stringify(await db.all('SELECT model, key, payload, grant_id, uid, expires_at, consumed_at FROM oidc_models'));

describe('store › oidc-models', () => {
  it('stores tokens and codes under their hash, without the raw id, and finds them by value', async () => {
    const { db, store } = await setup();
    const value = 'at-' + randomBytes(16).toString('hex');
    await store.upsert('AccessToken', value, { jti: value, grantId: 'g1', accountId: 'alice', scope: 'mcp:tools' }, 60);
    expect(await dump(db)).not.toContain(value);
    expect(await db.one('SELECT key, grant_id FROM oidc_models')).toEqual({ key: sha256(value), grant_id: 'g1' });
    expect(await store.find('AccessToken', value)).toEqual({ jti: value, grantId: 'g1', accountId: 'alice', scope: 'mcp:tools' });
    expect(await store.findAccessTokenByHash(sha256(value))).toMatchObject({ grantId: 'g1', accountId: 'alice' });
    expect(await store.findAccessTokenByHash(sha256('other'))).toBeUndefined();
  });

  it('seals sessions and interactions whole and still finds sessions by uid', async () => {
    const { db, store } = await setup();
    await store.upsert('Session', 'session-cookie-value', { jti: 'session-cookie-value', uid: 'sess-uid', accountId: 'alice' }, 60);
    await store.upsert('Interaction', 'interaction-id', { jti: 'interaction-id', params: { state: 'client-state-value' }, session: { cookie: 'session-cookie-value' } }, 60);
    const raw = await dump(db);
    for (const secret of ['session-cookie-value', 'interaction-id', 'client-state-value', 'alice']) expect(raw).not.toContain(secret);
    expect(await store.findByUid('Session', 'sess-uid')).toEqual({ jti: 'session-cookie-value', uid: 'sess-uid', accountId: 'alice' });
    expect(await store.find('Interaction', 'interaction-id')).toMatchObject({ params: { state: 'client-state-value' } });
  });

  it('keeps client and grant ids in clear but seals client secrets', async () => {
    const { db, store } = await setup();
    await store.upsert('Client', 'client-1', { client_id: 'client-1', client_secret: 'the-client-secret' }, 0);
    expect(await dump(db)).not.toContain('the-client-secret');
    expect(await store.find('Client', 'client-1')).toEqual({ client_id: 'client-1', client_secret: 'the-client-secret' });
    expect(await store.getClient('client-1')).toHaveProperty('client_secret_sealed');
  });

  it('expires, consumes, revokes by grant and purges', async () => {
    const { store } = await setup();
    await store.upsert('AuthorizationCode', 'code-1', { jti: 'code-1', grantId: 'g1' }, 60);
    await store.upsert('RefreshToken', 'rt-1', { jti: 'rt-1', grantId: 'g1' }, 60);
    await store.upsert('Grant', 'g1', { jti: 'g1' }, 60);
    await store.consume('AuthorizationCode', 'code-1');
    expect((await store.find('AuthorizationCode', 'code-1'))?.consumed).toBeTypeOf('number');
    await store.revokeByGrantId('g1');
    expect(await store.find('RefreshToken', 'rt-1')).toBeUndefined();
    expect(await store.grantExists('g1')).toBe(true);
    await store.destroyGrant('g1');
    expect(await store.grantExists('g1')).toBe(false);
    await store.upsert('AccessToken', 'short', { jti: 'short' }, 1);
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      vi.setSystemTime(Date.now() + 5000);
      expect(await store.find('AccessToken', 'short')).toBeUndefined();
      expect(await store.purgeExpired()).toBe(1);
    } finally {
      vi.useRealTimers();
    }
  });

  it.skipIf(!onPostgres)(
    "PostgreSQL: the purge of expired rows runs in a transaction of its own, never joined to a caller's (its mark would keep that transaction's changes from moving the gateway generation)",
    async () => {
      const { db, store } = await setup();
      await store.upsert('AccessToken', 'gone', { jti: 'gone', grantId: 'g9' }, 1);
      const before = Number((await db.one<{ n: number }>('SELECT n FROM gateway_generation'))?.n);
      await expect(db.transaction(() => store.purgeExpired(Date.now() + 5000))).rejects.toThrow(/a transaction of its own/);
      expect(await store.purgeExpired(Date.now() + 5000)).toBe(1);
      // Its own transaction moved nothing the gateway caches: the token had expired.
      expect(Number((await db.one<{ n: number }>('SELECT n FROM gateway_generation'))?.n)).toBe(before);
      await store.upsert('AccessToken', 'live', { jti: 'live', grantId: 'g9' }, 60);
      await store.revokeByGrantId('g9'); // any other delete of an access token still moves it
      expect(Number((await db.one<{ n: number }>('SELECT n FROM gateway_generation'))?.n)).toBe(before + 1);
    },
  );
});

describe('store › oidc-models › consume (single use across requests and replicas)', () => {
  it('lets exactly one of two concurrent consumes of a code win; the other learns it was a replay, with its grant', async () => {
    const { store } = await setup();
    await store.upsert('AuthorizationCode', 'code-race', { jti: 'code-race', grantId: 'g-race' }, 60);
    const outcomes = await Promise.all([store.consume('AuthorizationCode', 'code-race'), store.consume('AuthorizationCode', 'code-race')]);
    expect(outcomes.filter((o) => o.consumed)).toHaveLength(1);
    expect(outcomes.find((o) => !o.consumed)).toEqual({ consumed: false, replayed: true, grantId: 'g-race' });
    expect(await store.consume('AuthorizationCode', 'unknown-code')).toEqual({ consumed: false, replayed: false });
    // The payload oidc-provider reads says consumed, in seconds; the JSON at rest is untouched.
    expect((await store.find('AuthorizationCode', 'code-race'))?.consumed).toBeTypeOf('number');
    expect((await store.grantSource('AuthorizationCode', 'code-race'))?.consumed).toBe(true);
  });
});

/** `db` with its `one` statements counted (every read the store makes goes through `one`). */
function counting(db: Sql): { sql: Sql; reads: () => number } {
  let n = 0;
  const sql = new Proxy(db, {
    get(target, prop) {
      if (prop === 'one') {
        return (text: string, params?: readonly unknown[]) => {
          n++;
          return target.one(text, params);
        };
      }
      const value: unknown = Reflect.get(target, prop, target);
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
  return { sql, reads: () => n };
}

describe('store › oidc-models › a grant read with its code or refresh token (one round trip less per /token, issue 11)', () => {
  async function seeded() {
    const { db, keys } = await setup();
    const { sql, reads } = counting(db);
    const store = createOidcModelStore(sql, keys);
    await store.upsert('Grant', 'g1', { jti: 'g1', accountId: 'alice', openid: { scope: 'openid' } }, 600);
    await store.upsert('RefreshToken', 'rt-1', { jti: 'rt-1', grantId: 'g1', accountId: 'alice' }, 600);
    await store.upsert('AuthorizationCode', 'code-1', { jti: 'code-1', grantId: 'g1' }, 600);
    return { db, keys, store, reads };
  }

  it('in a transaction, the next find of that grant is answered from the same statement, once, with what a read would give', async () => {
    const { db, store, reads } = await seeded();
    const plain = await store.find('Grant', 'g1');
    for (const [model, id] of [
      ['RefreshToken', 'rt-1'],
      ['AuthorizationCode', 'code-1'],
    ] as const) {
      await db.transaction(async () => {
        const before = reads();
        expect(await store.findWithGrant(model, id)).toMatchObject({ grantId: 'g1' });
        expect(await store.find('Grant', 'g1')).toEqual(plain);
        expect(reads() - before).toBe(1);
        expect(await store.find('Grant', 'g1')).toEqual(plain); // served once: this one reads
        expect(reads() - before).toBe(2);
      });
    }
  });

  it("through the provider's adapter: P's refresh token and its grant in one read; a prefixed provider's (the demo IdP's) in two", async () => {
    const { db, keys } = await seeded();
    const { sql, reads: adapterReads } = counting(db);
    const store = createOidcModelStore(sql, keys);
    const P = adapterClass(store);
    const demo = adapterClass(store, { prefix: 'Demo' });
    await new demo('Grant').upsert('dg1', { jti: 'dg1', accountId: 'bob' } as never, 600);
    await new demo('RefreshToken').upsert('drt-1', { jti: 'drt-1', grantId: 'dg1' } as never, 600);
    for (const [Adapter, token, grantId, expected] of [
      [P, 'rt-1', 'g1', 1],
      [demo, 'drt-1', 'dg1', 2],
    ] as const) {
      await db.transaction(async () => {
        const before = adapterReads();
        expect(await new Adapter('RefreshToken').find(token)).toMatchObject({ grantId });
        expect(await new Adapter('Grant').find(grantId)).toMatchObject({ jti: grantId });
        expect(adapterReads() - before).toBe(expected);
      });
    }
  });

  it('outside a transaction, or in another transaction, the grant is read again', async () => {
    const { db, store, reads } = await seeded();
    let before = reads();
    await store.findWithGrant('RefreshToken', 'rt-1');
    await store.find('Grant', 'g1');
    expect(reads() - before).toBe(2);

    await db.transaction(async () => {
      await store.findWithGrant('RefreshToken', 'rt-1');
    });
    before = reads();
    await db.transaction(async () => {
      expect(await store.find('Grant', 'g1')).toMatchObject({ accountId: 'alice' });
    });
    expect(reads() - before).toBe(1);
  });

  it('every write through the store in between — and one made while the join was under way — makes the grant read again', async () => {
    const { db, store, reads } = await seeded();
    const writes: [string, () => Promise<unknown>][] = [
      ['upsert', () => store.upsert('AccessToken', 'at-x', { jti: 'at-x', grantId: 'g2' }, 60)],
      ['consume', () => store.consume('AuthorizationCode', 'code-1')],
      ['destroy', () => store.destroy('AccessToken', 'at-x')],
      ['revokeByGrantId', () => store.revokeByGrantId('g-other')],
      ['destroyGrant', () => store.destroyGrant('g-other')],
      ['deleteClient', () => store.deleteClient('c-none')],
      // PostgreSQL: the purge runs in a transaction of its own, never inside another (the case below)
      ...(onPostgres ? [] : [['purgeExpired', () => store.purgeExpired()] as [string, () => Promise<unknown>]]),
    ];
    for (const [name, write] of writes) {
      await db.transaction(async () => {
        await store.findWithGrant('RefreshToken', 'rt-1');
        await write();
        const before = reads();
        expect(await store.find('Grant', 'g1'), name).toMatchObject({ accountId: 'alice' });
        expect(reads() - before, name).toBe(1);
      });
    }
    await db.transaction(async () => {
      const joined = store.findWithGrant('RefreshToken', 'rt-1'); // not awaited: the write starts meanwhile
      await store.upsert('Grant', 'g1', { jti: 'g1', accountId: 'alice', openid: { scope: 'openid offline_access' } }, 600);
      await joined;
      expect(await store.find('Grant', 'g1')).toMatchObject({ openid: { scope: 'openid offline_access' } });
    });
  });

  it("readAhead (a /token request's token, sent with the client lookup): on PostgreSQL the token and its grant come from it with no read of their own; any write through the store in between makes the token read again; outside a transaction, and on SQLite, it does nothing", async () => {
    const { db, store, reads } = await seeded();
    const plain = await store.findWithGrant('RefreshToken', 'rt-1');
    await db.transaction(async () => {
      store.readAhead('RefreshToken', 'rt-1');
      const before = reads();
      expect(await store.findWithGrant('RefreshToken', 'rt-1')).toEqual(plain);
      expect(await store.find('Grant', 'g1')).toMatchObject({ accountId: 'alice' });
      expect(reads() - before, 'reads made after readAhead').toBe(onPostgres ? 0 : 1);
    });
    await db.transaction(async () => {
      store.readAhead('RefreshToken', 'rt-1');
      await store.consume('RefreshToken', 'rt-1'); // a write in between: what was read ahead is stale
      const before = reads();
      expect(await store.findWithGrant('RefreshToken', 'rt-1')).toMatchObject({ consumed: expect.any(Number) });
      expect(reads() - before).toBe(1);
    });
    store.readAhead('AuthorizationCode', 'code-1'); // outside a transaction: nothing
    const before = reads();
    await db.transaction(async () => {
      expect(await store.findWithGrant('AuthorizationCode', 'code-1')).toMatchObject({ grantId: 'g1' });
    });
    expect(reads() - before).toBe(1);
  });

  it('a missing grant is read (and found missing); expiry is judged when the grant is served, not when it was joined', async () => {
    const { db, store } = await seeded();
    await store.upsert('RefreshToken', 'rt-orphan', { jti: 'rt-orphan', grantId: 'g-gone' }, 600);
    await store.upsert('Grant', 'g-short', { jti: 'g-short' }, 5);
    await store.upsert('RefreshToken', 'rt-short', { jti: 'rt-short', grantId: 'g-short' }, 600);
    await db.transaction(async () => {
      expect(await store.findWithGrant('RefreshToken', 'rt-orphan')).toMatchObject({ grantId: 'g-gone' });
      expect(await store.find('Grant', 'g-gone')).toBeUndefined();
    });
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      await db.transaction(async () => {
        expect(await store.findWithGrant('RefreshToken', 'rt-short')).toMatchObject({ grantId: 'g-short' }); // the grant live now
        vi.setSystemTime(Date.now() + 10_000);
        expect(await store.find('Grant', 'g-short')).toBeUndefined();
      });
    } finally {
      vi.useRealTimers();
    }
  });

  it('a transaction a failed statement has doomed serves nothing it read ahead', async () => {
    const { db, store } = await seeded();
    let answer = '';
    const outcome = db.transaction(async () => {
      await store.findWithGrant('RefreshToken', 'rt-1');
      await db.run('INSERT INTO no_such_table (x) VALUES (?)', [1]).catch(() => undefined);
      answer = await store.find('Grant', 'g1').then(
        () => 'served',
        (err: Error) => err.name,
      );
    });
    await expect(outcome).rejects.toThrow();
    expect(answer).toBe('TransactionAbortedError');
  });

  it.runIf(onPostgres)('a grant revoked by another connection between the join and the consume: the consume finds no row (PostgreSQL)', async () => {
    const { db, store } = await seeded();
    const joined = gate();
    const revoked = gate();
    const tx = db.transaction(async () => {
      await store.findWithGrant('RefreshToken', 'rt-1');
      joined.open();
      await revoked.wait;
      const grant = await store.find('Grant', 'g1'); // the grant as read before the revocation
      expect(grant).toMatchObject({ accountId: 'alice' });
      return store.consume('RefreshToken', 'rt-1');
    });
    await joined.wait;
    await store.destroyGrant('g1'); // outside the transaction's context: another pool connection
    revoked.open();
    expect(await tx).toEqual({ consumed: false, replayed: false });
    expect(await db.one("SELECT key FROM oidc_models WHERE grant_id = 'g1' OR key = 'g1'")).toBeUndefined();
  });
});
