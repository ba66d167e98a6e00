/**
 * The provider's store keeps no usable credential at rest (DESIGN §3, UP-07): codes, tokens,
 * sessions and interactions are keyed by SHA-256 of their id; the raw id is not in the row;
 * session and interaction payloads are sealed; client secrets are sealed.
 */
import { describe, expect, it, vi } from 'vitest';
import { randomBytes } from 'node:crypto';
import { openDatabase } from '../../src/db/open.js';
import { migrate } from '../../src/db/migrate.js';
import { KeyRing, sha256 } from '../../src/crypto/keys.js';
import { createOidcModelStore } from '../../src/store/oidc-models.js';

function setup() {
  const db = openDatabase(':memory:');
  migrate(db);
  const keys = new KeyRing(randomBytes(32));
  return { db, keys, store: createOidcModelStore(db, keys) };
}

const dump = (db: ReturnType<typeof setup>['db']) => JSON.stringify(db.prepare('SELECT * FROM oidc_models').all());

describe('store › oidc-models', () => {
  it('stores tokens and codes under their hash, without the raw id, and finds them by value', () => {
    const { db, store } = setup();
    const value = 'at-' + randomBytes(16).toString('hex');
    store.upsert('AccessToken', value, { jti: value, grantId: 'g1', accountId: 'alice', scope: 'mcp:tools' }, 60);
    expect(dump(db)).not.toContain(value);
    expect(db.prepare('SELECT key, grant_id FROM oidc_models').get()).toEqual({ key: sha256(value), grant_id: 'g1' });
    expect(store.find('AccessToken', value)).toEqual({ jti: value, grantId: 'g1', accountId: 'alice', scope: 'mcp:tools' });
    expect(store.findAccessTokenByHash(sha256(value))).toMatchObject({ grantId: 'g1', accountId: 'alice' });
    expect(store.findAccessTokenByHash(sha256('other'))).toBeUndefined();
  });

  it('seals sessions and interactions whole and still finds sessions by uid', () => {
    const { db, store } = setup();
    store.upsert('Session', 'session-cookie-value', { jti: 'session-cookie-value', uid: 'sess-uid', accountId: 'alice' }, 60);
    store.upsert('Interaction', 'interaction-id', { jti: 'interaction-id', params: { state: 'client-state-value' }, session: { cookie: 'session-cookie-value' } }, 60);
    const raw = dump(db);
    for (const secret of ['session-cookie-value', 'interaction-id', 'client-state-value', 'alice']) expect(raw).not.toContain(secret);
    expect(store.findByUid('Session', 'sess-uid')).toEqual({ jti: 'session-cookie-value', uid: 'sess-uid', accountId: 'alice' });
    expect(store.find('Interaction', 'interaction-id')).toMatchObject({ params: { state: 'client-state-value' } });
  });

  it('keeps client and grant ids in clear but seals client secrets', () => {
    const { db, store } = setup();
    store.upsert('Client', 'client-1', { client_id: 'client-1', client_secret: 'the-client-secret' }, 0);
    expect(dump(db)).not.toContain('the-client-secret');
    expect(store.find('Client', 'client-1')).toEqual({ client_id: 'client-1', client_secret: 'the-client-secret' });
    expect(store.getClient('client-1')).toHaveProperty('client_secret_sealed');
  });

  it('expires, consumes, revokes by grant and purges', () => {
    const { store } = setup();
    store.upsert('AuthorizationCode', 'code-1', { jti: 'code-1', grantId: 'g1' }, 60);
    store.upsert('RefreshToken', 'rt-1', { jti: 'rt-1', grantId: 'g1' }, 60);
    store.upsert('Grant', 'g1', { jti: 'g1' }, 60);
    store.consume('AuthorizationCode', 'code-1');
    expect(store.find('AuthorizationCode', 'code-1')?.consumed).toBeTypeOf('number');
    store.revokeByGrantId('g1');
    expect(store.find('RefreshToken', 'rt-1')).toBeUndefined();
    expect(store.grantExists('g1')).toBe(true);
    store.destroyGrant('g1');
    expect(store.grantExists('g1')).toBe(false);
    store.upsert('AccessToken', 'short', { jti: 'short' }, 1);
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      vi.setSystemTime(Date.now() + 5000);
      expect(store.find('AccessToken', 'short')).toBeUndefined();
      expect(store.purgeExpired()).toBe(1);
    } finally {
      vi.useRealTimers();
    }
  });
});
