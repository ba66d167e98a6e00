/**
 * AT-10 stolen authorization code (TOK-02..08): without the verifier, with a wrong one, from
 * another client, after expiry, or twice — always invalid_grant; a second redemption also
 * revokes what the first one issued; a failed attempt does not burn the legitimate one.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { registerClient, rows } from '../helpers/app.js';
import { pkcePair } from '../helpers/pkce.js';
import { Browser, buildAuthorization, drive, redeem, startStack, type Stack } from '../helpers/stack.js';
import { sha256 } from '../../src/crypto/keys.js';

let stack: Stack;
let browser: Browser;
beforeAll(async () => {
  stack = await startStack();
  browser = new Browser();
});
afterAll(() => stack.close());

async function freshCode() {
  const client = await registerClient(stack.app);
  const auth = buildAuthorization(stack.app, { clientId: client.client_id });
  const { callback } = await drive(browser, auth.url, auth.redirectUri, { login: 'alice' });
  return { clientId: client.client_id as string, code: callback.searchParams.get('code') as string, verifier: auth.verifier };
}

const accessTokenRows = async () => (await rows(stack.app, "SELECT count(*) AS n FROM oidc_models WHERE model = 'AccessToken'"))[0].n as number;

describe('AT-10 stolen authorization code', () => {
  it('refuses redemption without a verifier', async () => {
    const { clientId, code } = await freshCode();
    const res = await redeem(stack.app, clientId, code, '');
    expect(res.status).toBe(400);
    expect(['invalid_grant', 'invalid_request']).toContain(res.body.error);
    expect(res.body).not.toHaveProperty('access_token');
  });

  it('refuses a wrong verifier, and the legitimate redemption still works afterwards (TOK-08)', async () => {
    const { clientId, code, verifier } = await freshCode();
    const wrong = await redeem(stack.app, clientId, code, pkcePair().verifier);
    expect(wrong).toMatchObject({ status: 400, body: { error: 'invalid_grant' } });
    const right = await redeem(stack.app, clientId, code, verifier);
    expect(right.status).toBe(200);
  });

  it('refuses another client_id (TOK-04) and another redirect_uri (TOK-06)', async () => {
    const { clientId, code, verifier } = await freshCode();
    const other = await registerClient(stack.app);
    expect(await redeem(stack.app, other.client_id, code, verifier)).toMatchObject({ status: 400, body: { error: 'invalid_grant' } });
    expect(await redeem(stack.app, clientId, code, verifier, 'http://127.0.0.1:33418/other')).toMatchObject({ status: 400, body: { error: 'invalid_grant' } });
  });

  it('refuses a code after eleven minutes (TOK-03, fake clock)', async () => {
    const { clientId, code, verifier } = await freshCode();
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      vi.setSystemTime(Date.now() + 11 * 60_000);
      expect(await redeem(stack.app, clientId, code, verifier)).toMatchObject({ status: 400, body: { error: 'invalid_grant' } });
    } finally {
      vi.useRealTimers();
    }
  });

  it('refuses a second redemption and revokes the tokens of the first (TOK-02)', async () => {
    const { clientId, code, verifier } = await freshCode();
    const first = await redeem(stack.app, clientId, code, verifier);
    expect(first.status).toBe(200);
    expect(await stack.app.runtime.stores.models.findAccessTokenByHash(sha256(first.body.access_token))).toBeDefined();
    const before = await accessTokenRows();
    const second = await redeem(stack.app, clientId, code, verifier);
    expect(second).toMatchObject({ status: 400, body: { error: 'invalid_grant' } });
    expect(await stack.app.runtime.stores.models.findAccessTokenByHash(sha256(first.body.access_token))).toBeUndefined();
    expect(await accessTokenRows()).toBeLessThan(before);
  });
});
