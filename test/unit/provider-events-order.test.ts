/**
 * The order of a revoked grant's writes in its transaction (src/provider/events.ts; review
 * 2026-12-07): the revocation cascade first, its audit rows after. On PostgreSQL the cascade's
 * changes bump the gateway generation row and an audit row takes the chain's lock, and every other
 * writer (a client's disabling, a consent's revocation, an approval) takes them in that order: a
 * replay caught at /token that audited first and bumped after deadlocked with a disabling on
 * another replica (40P01, reproduced with two connections), and PostgreSQL could abort the replay's
 * revocation.
 */
import { describe, expect, it } from 'vitest';
import type Provider from 'oidc-provider';
import { bridgeProviderEvents, type EventDeps } from '../../src/provider/events.js';
import { ReplayedGrantSource } from '../../src/provider/configuration.js';

function bridged() {
  const writes: string[] = [];
  const listeners = new Map<string, (...args: unknown[]) => void>();
  const provider = { on: (event: string, fn: (...args: unknown[]) => void) => listeners.set(event, fn) } as unknown as Provider;
  const deps = {
    audit: { record: async (entry: { event: string }) => void writes.push(`audit ${entry.event}`) },
    clientsMeta: {},
    log: { warn() {}, error() {} },
    onGrantRevoked: async (grantId: string) => void writes.push(`cascade ${grantId}`),
  } as unknown as EventDeps;
  bridgeProviderEvents(provider, deps);
  const emit = (event: string, ...args: unknown[]) => listeners.get(event)!(...args);
  return { writes, emit };
}

const tokenCtx = { oidc: { route: 'token', client: { clientId: 'c1' }, params: { grant_type: 'refresh_token' } } };
const settle = () => new Promise((resolve) => setImmediate(resolve));

describe('a revoked grant: cascade before audit rows', () => {
  it('a replay caught by P (ReplayedGrantSource): the cascade, then token.rejected and grant.revoked', async () => {
    const { writes, emit } = bridged();
    emit('grant.error', tokenCtx, new ReplayedGrantSource('RefreshToken', 'g1'));
    await settle();
    expect(writes).toEqual(['cascade g1', 'audit token.rejected', 'audit grant.revoked']);
  });

  it("oidc-provider's own revocation (refresh-token reuse, code replay): the cascade, then grant.revoked", async () => {
    const { writes, emit } = bridged();
    emit('grant.revoked', tokenCtx, 'g2');
    await settle();
    expect(writes).toEqual(['cascade g2', 'audit grant.revoked']);
  });

  it('any other token error is one audit row, no cascade', async () => {
    const { writes, emit } = bridged();
    emit('grant.error', tokenCtx, Object.assign(new Error('grant request is invalid'), { error: 'invalid_grant' }));
    await settle();
    expect(writes).toEqual(['audit token.rejected']);
  });
});
