/**
 * The gateway cache (src/gateway/cache.ts) and its generation counter
 * (migrations/0008-gateway-generation.sql; PostgreSQL: migrations/postgres/0001-schema.sql):
 * every change that can alter a cached token, consent or upstream-token fact moves the counter,
 * from this connection or another process's (another replica's); writes that cannot (audit rows, a
 * consent's last_used_at, other oidc-provider models) leave it alone. On SQLite the reads answer
 * synchronously (the gateway's hot path makes no promise); on PostgreSQL they are round trips.
 * Runs on the test engine (TEST_ENGINE, test/helpers/engine.ts).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Sql } from '../../src/db/sql.js';
import { createGenerationCache } from '../../src/gateway/cache.js';
import { createGenerationStore } from '../../src/store/gateway-generation.js';
import { onPostgres, openTestSql } from '../helpers/engine.js';

const opened: Sql[] = [];
afterAll(async () => {
  for (const sql of opened) await sql.close();
});

/** A fresh database, and a second connection (SQLite) or pool (PostgreSQL) to it: "another process". */
async function database() {
  const dir = mkdtempSync(join(tmpdir(), 'gen-'));
  const db = await openTestSql(dir);
  const other = await openTestSql(dir);
  opened.push(db, other);
  return { db, other };
}

const createGeneration = (db: Sql) => {
  const store = createGenerationStore(db);
  return () => store.current();
};

const consent = (db: Sql, grantId: string) =>
  db.run(
    `INSERT INTO consents (subject, client_id, redirect_uri, resource, scopes, upstream_scopes, granted_at, expires_at, grant_id)
      VALUES ('alice', 'c1', 'http://127.0.0.1/cb', 'http://p/mcp', 'mcp', 'openid', 1, 9000000000000, ?)`,
    [grantId],
  );

describe('gateway › generation cache', () => {
  it('moves on token, consent and upstream-token changes from any connection, not on other writes', async () => {
    const { db, other } = await database();
    const generation = createGeneration(db);
    const moves = async (write: () => Promise<unknown>) => {
      const before = await generation();
      await write();
      return (await generation()) !== before;
    };
    const token = (key: string) => db.run("INSERT INTO oidc_models (model, key, payload, grant_id, expires_at) VALUES ('AccessToken', ?, '{}', 'g1', 9000000000000)", [key]);

    expect(await moves(() => consent(db, 'g1'))).toBe(true);
    expect(await moves(() => token('t1'))).toBe(false); // a new token cannot be in the cache (misses are not kept)
    expect(await moves(() => db.run("UPDATE consents SET last_used_at = 5 WHERE grant_id = 'g1'"))).toBe(false);
    expect(await moves(() => db.run("INSERT INTO audit_log (seq, ts, event, outcome, prev_hash, hash, key_id) VALUES (1, 't', 'e', 'info', 'p', 'h', 'k')"))).toBe(false);
    expect(await moves(() => db.run("INSERT INTO oidc_models (model, key, payload) VALUES ('Session', 's1', '{}')"))).toBe(false);
    expect(await moves(() => db.run('UPDATE oidc_models SET payload = \'{"x":1}\' WHERE model = \'Session\''))).toBe(false);

    expect(await moves(() => db.run("UPDATE oidc_models SET consumed_at = 1 WHERE key = 't1'"))).toBe(true);
    expect(await moves(() => other.run("UPDATE consents SET revoked_at = 2, revoked_reason = 'cli' WHERE grant_id = 'g1'"))).toBe(true);
    expect(await moves(() => other.run("DELETE FROM oidc_models WHERE model = 'AccessToken'"))).toBe(true);
    expect(await moves(() => db.run("INSERT INTO upstream_tokens (grant_id, subject, sealed_access, updated_at) VALUES ('g1', 'alice', 'x', 1)"))).toBe(true);
    expect(await moves(() => other.run("UPDATE upstream_tokens SET sealed_access = 'y' WHERE grant_id = 'g1'"))).toBe(true);
    expect(await moves(() => db.run("DELETE FROM upstream_tokens WHERE grant_id = 'g1'"))).toBe(true);
    expect(await moves(() => db.run("DELETE FROM consents WHERE grant_id = 'g1'"))).toBe(true);
  });

  it('serves a value while the generation stands, reloads after it moves, bounded in size', async () => {
    const { db } = await database();
    const cache = createGenerationCache<number>(createGeneration(db), { max: 2 });
    let loads = 0;
    const load = () => ++loads;
    expect(await cache.get('k', load)).toBe(1);
    expect(await cache.get('k', load)).toBe(1);
    await consent(db, 'g2');
    expect(await cache.get('k', load)).toBe(2);
    expect(await cache.get('k', load)).toBe(2);
    await cache.get('a', load);
    await cache.get('b', load); // evicts the oldest ('k')
    expect(await cache.get('k', load)).toBe(5);
  });

  it('does not keep values the caller says not to (unknown tokens)', async () => {
    const { db } = await database();
    const cache = createGenerationCache<string | undefined>(createGeneration(db), { keep: (v) => v !== undefined });
    let loads = 0;
    const miss = () => {
      loads += 1;
      return undefined;
    };
    await cache.get('unknown', miss);
    await cache.get('unknown', miss);
    expect(loads).toBe(2);
  });

  it(`answers ${onPostgres ? 'with a promise on PostgreSQL (a round trip)' : 'synchronously on SQLite (no promise on the hot path)'}`, async () => {
    const { db } = await database();
    const generation = createGeneration(db)();
    const cache = createGenerationCache<number>(createGeneration(db));
    const hit = cache.get('k', () => 1, await generation);
    expect(hit instanceof Promise).toBe(false); // a hit is always immediate
    const read = cache.get('k2', () => 2);
    expect(generation instanceof Promise).toBe(onPostgres);
    expect(read instanceof Promise).toBe(onPostgres);
    expect(await read).toBe(2);
  });
});
