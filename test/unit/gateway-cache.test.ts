/**
 * The gateway cache (src/gateway/cache.ts) and its generation counter
 * (migrations/0008-gateway-generation.sql): every change that can alter a cached token, consent
 * or upstream-token fact moves the counter, from this connection or another process's; writes
 * that cannot (audit rows, a consent's last_used_at, other oidc-provider models) leave it alone.
 */
import { describe, expect, it } from 'vitest';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openDatabase } from '../../src/db/open.js';
import { migrate } from '../../src/db/migrate.js';
import { createGenerationCache } from '../../src/gateway/cache.js';
import { createGenerationStore } from '../../src/store/gateway-generation.js';

const createGeneration = (db: Parameters<typeof createGenerationStore>[0]) => {
  const store = createGenerationStore(db);
  return () => store.current();
};

function database() {
  const path = join(mkdtempSync(join(tmpdir(), 'gen-')), 'g.db');
  const db = openDatabase(path);
  migrate(db);
  return { db, path };
}

const consent = (db: ReturnType<typeof openDatabase>, grantId: string) =>
  db
    .prepare(`INSERT INTO consents (subject, client_id, redirect_uri, resource, scopes, upstream_scopes, granted_at, expires_at, grant_id)
      VALUES ('alice', 'c1', 'http://127.0.0.1/cb', 'http://p/mcp', 'mcp', 'openid', 1, 9e12, ?)`)
    .run(grantId);

describe('gateway › generation cache', () => {
  it('moves on token, consent and upstream-token changes from any connection, not on other writes', () => {
    const { db, path } = database();
    const generation = createGeneration(db);
    const other = openDatabase(path);
    const moves = (write: () => unknown) => {
      const before = generation();
      write();
      return generation() !== before;
    };
    const token = (key: string) =>
      db.prepare("INSERT INTO oidc_models (model, key, payload, grant_id, expires_at) VALUES ('AccessToken', ?, '{}', 'g1', 9e12)").run(key);

    expect(moves(() => consent(db, 'g1'))).toBe(true);
    expect(moves(() => token('t1'))).toBe(false); // a new token cannot be in the cache (misses are not kept)
    expect(moves(() => db.prepare("UPDATE consents SET last_used_at = 5 WHERE grant_id = 'g1'").run())).toBe(false);
    expect(moves(() => db.prepare("INSERT INTO audit_log (seq, ts, event, outcome, prev_hash, hash, key_id) VALUES (1, 't', 'e', 'info', 'p', 'h', 'k')").run())).toBe(false);
    expect(moves(() => db.prepare("INSERT INTO oidc_models (model, key, payload) VALUES ('Session', 's1', '{}')").run())).toBe(false);
    expect(moves(() => db.prepare("UPDATE oidc_models SET payload = '{\"x\":1}' WHERE model = 'Session'").run())).toBe(false);

    expect(moves(() => db.prepare("UPDATE oidc_models SET consumed_at = 1 WHERE key = 't1'").run())).toBe(true);
    expect(moves(() => other.prepare("UPDATE consents SET revoked_at = 2, revoked_reason = 'cli' WHERE grant_id = 'g1'").run())).toBe(true);
    expect(moves(() => other.prepare("DELETE FROM oidc_models WHERE model = 'AccessToken'").run())).toBe(true);
    expect(moves(() => db.prepare("INSERT INTO upstream_tokens (grant_id, subject, sealed_access, updated_at) VALUES ('g1', 'alice', 'x', 1)").run())).toBe(true);
    expect(moves(() => other.prepare("UPDATE upstream_tokens SET sealed_access = 'y' WHERE grant_id = 'g1'").run())).toBe(true);
    expect(moves(() => db.prepare("DELETE FROM upstream_tokens WHERE grant_id = 'g1'").run())).toBe(true);
    expect(moves(() => db.prepare("DELETE FROM consents WHERE grant_id = 'g1'").run())).toBe(true);
    other.close();
    db.close();
  });

  it('serves a value while the generation stands, reloads after it moves, bounded in size', () => {
    const { db } = database();
    const cache = createGenerationCache<number>(createGeneration(db), { max: 2 });
    let loads = 0;
    const load = () => ++loads;
    expect(cache.get('k', load)).toBe(1);
    expect(cache.get('k', load)).toBe(1);
    consent(db, 'g2');
    expect(cache.get('k', load)).toBe(2);
    expect(cache.get('k', load)).toBe(2);
    cache.get('a', load);
    cache.get('b', load); // evicts the oldest ('k')
    expect(cache.get('k', load)).toBe(5);
    db.close();
  });

  it('does not keep values the caller says not to (unknown tokens)', () => {
    const { db } = database();
    const cache = createGenerationCache<string | undefined>(createGeneration(db), { keep: (v) => v !== undefined });
    let loads = 0;
    const miss = () => {
      loads += 1;
      return undefined;
    };
    cache.get('unknown', miss);
    cache.get('unknown', miss);
    expect(loads).toBe(2);
    db.close();
  });
});
