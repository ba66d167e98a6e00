/**
 * GW-14 for a U token that cannot be renewed (no refresh token: GitHub OAuth Apps), R having
 * refused it (src/gateway/upstream-token.ts `refusedByR`; end to end with GitHub's API as R:
 * test/security/stale-upstream-grant.test.ts). Review 2026-12-07: the token was handed back as
 * "renewed", and the client retried in a loop. Now U's own API decides: refused there too → P's
 * grant is revoked (UP-08); accepted there, or no answer → nothing is revoked on R's word alone.
 */
import { describe, expect, it } from 'vitest';
import { createUpstreamTokenSource, type UpstreamTokenDeps } from '../../src/gateway/upstream-token.js';

const cast = <T>(value: unknown): T => value as T;
const who = { subject: 'alice', clientId: 'client-1' };

function setup(uRefuses: boolean) {
  const asked: string[] = [];
  const revoked: [string, string][] = [];
  let answer: (() => void) | undefined;
  const row = { accessToken: 'gho_1', refreshToken: undefined, expiresAt: undefined };
  const deps: UpstreamTokenDeps = {
    store: cast({ access: () => row, get: async () => ({ ...row, subject: 'alice', version: 'v1' }) }),
    upstream: cast(() => ({
      refusesAccessToken: async (token: string) => {
        asked.push(token);
        await new Promise<void>((resolve) => (answer = resolve));
        return uRefuses;
      },
      refresh: async () => Promise.reject(new Error('no refresh token: never asked')),
    })),
    revocation: cast({ revokeGrant: async (grantId: string, reason: string) => revoked.push([grantId, reason]), revokeUnkept: () => undefined, onRevoked: () => undefined }),
    audit: cast({ record: async () => undefined }),
    generation: () => 1,
    exclusive: (_name, _wait, fn) => fn(),
    log: cast({ warn: () => undefined, error: () => undefined }),
  };
  return { source: createUpstreamTokenSource(deps), asked, revoked, answerU: () => answer?.() };
}

const settle = () => new Promise((resolve) => setImmediate(resolve));

describe("R refused a U token that cannot be renewed (GW-14)", () => {
  it("U refuses it too: P's grant is revoked (UP-08), once for requests that ask together", async () => {
    const { source, asked, revoked, answerU } = setup(true);
    const both = Promise.all([source.get('g1', who, true), source.get('g1', who, true)]);
    await settle();
    answerU();
    expect(await both).toEqual([
      { ok: false, failure: 'revoked' },
      { ok: false, failure: 'revoked' },
    ]);
    expect(asked).toEqual(['gho_1']);
    expect(revoked).toEqual([['g1', 'upstream_invalid_grant']]);
  });

  it('U accepts it: nothing revoked on R\'s word alone, and not "renewed" either', async () => {
    const { source, asked, revoked, answerU } = setup(false);
    const result = source.get('g1', who, true);
    await settle();
    answerU();
    expect(await result).toEqual({ ok: false, failure: 'failed' });
    expect(asked).toEqual(['gho_1']);
    expect(revoked).toEqual([]);
  });

  it('a request R did not refuse uses the token as it is, without asking U', async () => {
    const { source, asked } = setup(true);
    expect(await source.get('g1', who, false)).toMatchObject({ ok: true, accessToken: 'gho_1' });
    expect(asked).toEqual([]);
  });
});
