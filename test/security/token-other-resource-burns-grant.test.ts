/**
 * Finding (issue 9 §5): `/token` with `resource` = another of P's resources burned the code or
 * refresh token — the provider consumed it before failing with invalid_target — so the client's
 * corrected retry looked like reuse and revoked the whole grant (TOK-07, RT-04, RFC 8707 §2).
 * Now the request's resource is compared with the one granted to that code or refresh token
 * before the provider touches it: invalid_target, nothing consumed, nothing revoked.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditEvents, rows } from '../helpers/app.js';
import { Browser, buildAuthorization, drive, redeem, refresh, startStack, type Stack } from '../helpers/stack.js';
import { registerClient } from '../helpers/app.js';
import { sha256 } from '../../src/crypto/keys.js';

let stack: Stack;
let mcpResource: string;
let apiResource: string;
beforeAll(async () => {
  // A second protected resource: P now has two (the MCP resource and /api/things).
  stack = await startStack({ env: { GATEWAY_ROUTES: '/api/things=http://127.0.0.1:1/v1' } });
  mcpResource = `${stack.app.url}/mcp`;
  apiResource = `${stack.app.url}/api/things`;
});
afterAll(() => stack.close());

async function codeFor(resource: string) {
  const client = await registerClient(stack.app);
  const auth = buildAuthorization(stack.app, { clientId: client.client_id, resource });
  const { callback } = await drive(new Browser(), auth.url, auth.redirectUri, { login: `user-${client.client_id.slice(0, 8)}` });
  const code = callback.searchParams.get('code') as string;
  const [consent] = await rows(stack.app, 'SELECT grant_id FROM consents WHERE client_id = ?', client.client_id);
  return { clientId: client.client_id as string, code, verifier: auth.verifier, redirectUri: auth.redirectUri, grantId: consent.grant_id as string };
}

const consumed = async (model: string) => (await rows(stack.app, 'SELECT count(*) AS n FROM oidc_models WHERE model = ? AND consumed_at IS NOT NULL', model))[0].n as number;

async function expectGrantIntact(grantId: string) {
  expect(await rows(stack.app, 'SELECT revoked_at FROM consents WHERE grant_id = ?', grantId)).toEqual([{ revoked_at: null }]);
  expect((await rows(stack.app, 'SELECT count(*) AS n FROM upstream_tokens WHERE grant_id = ?', grantId))[0].n).toBe(1);
  expect((await auditEvents(stack.app)).some((e) => e.event === 'grant.revoked' && e.details?.includes(grantId))).toBe(false);
}

describe("/token with resource = another of P's resources burns the code or refresh token", () => {
  it('refuses a code granted for the MCP resource when redeemed for the API route, without consuming it; the correct retry succeeds', async () => {
    const { clientId, code, verifier, redirectUri, grantId } = await codeFor(mcpResource);
    const before = await consumed('AuthorizationCode');
    const wrong = await redeem(stack.app, clientId, code, verifier, redirectUri, { resource: apiResource });
    expect(wrong).toMatchObject({ status: 400, body: { error: 'invalid_target' } });
    expect(wrong.body).not.toHaveProperty('access_token');
    expect(await consumed('AuthorizationCode')).toBe(before); // the code was not touched
    expect((await auditEvents(stack.app)).at(-1)).toMatchObject({ event: 'token.rejected', reason: 'invalid_target', client_id: clientId });

    const right = await redeem(stack.app, clientId, code, verifier, redirectUri, { resource: mcpResource });
    expect(right.status).toBe(200);
    expect((await stack.app.runtime.stores.models.findAccessTokenByHash(sha256(right.body.access_token)))?.aud).toBe(mcpResource);
    await expectGrantIntact(grantId);
  });

  it('refuses the other direction too (a code for the API route redeemed for the MCP resource)', async () => {
    const { clientId, code, verifier, redirectUri, grantId } = await codeFor(apiResource);
    expect(await redeem(stack.app, clientId, code, verifier, redirectUri, { resource: mcpResource })).toMatchObject({ status: 400, body: { error: 'invalid_target' } });
    const right = await redeem(stack.app, clientId, code, verifier, redirectUri, { resource: apiResource });
    expect(right.status).toBe(200);
    expect((await stack.app.runtime.stores.models.findAccessTokenByHash(sha256(right.body.access_token)))?.aud).toBe(apiResource);
    await expectGrantIntact(grantId);
  });

  it('refuses a refresh token granted for the MCP resource when refreshed for the API route, without rotating it; the correct retry succeeds', async () => {
    const { clientId, code, verifier, redirectUri, grantId } = await codeFor(mcpResource);
    const tokens = await redeem(stack.app, clientId, code, verifier, redirectUri);
    const rt = tokens.body.refresh_token as string;
    expect(rt).toBeTruthy();
    const before = await consumed('RefreshToken');
    const wrong = await refresh(stack.app, clientId, rt, { resource: apiResource });
    expect(wrong).toMatchObject({ status: 400, body: { error: 'invalid_target' } });
    expect(wrong.body).not.toHaveProperty('access_token');
    expect(await consumed('RefreshToken')).toBe(before); // not rotated
    expect(await stack.app.runtime.stores.models.findAccessTokenByHash(sha256(tokens.body.access_token))).toBeDefined();

    const right = await refresh(stack.app, clientId, rt, { resource: mcpResource });
    expect(right.status).toBe(200);
    expect((await stack.app.runtime.stores.models.findAccessTokenByHash(sha256(right.body.access_token)))?.aud).toBe(mcpResource);
    expect((await refresh(stack.app, clientId, right.body.refresh_token)).status).toBe(200);
    await expectGrantIntact(grantId);
  });

  it('refuses two resources at once without consuming the code', async () => {
    const { clientId, code, verifier, redirectUri, grantId } = await codeFor(mcpResource);
    const res = await fetch(`${stack.app.url}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: `${new URLSearchParams({ grant_type: 'authorization_code', code, code_verifier: verifier, client_id: clientId, redirect_uri: redirectUri, resource: apiResource })}&resource=${encodeURIComponent(mcpResource)}`,
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: string }).error).toBe('invalid_target');
    expect((await redeem(stack.app, clientId, code, verifier, redirectUri)).status).toBe(200);
    await expectGrantIntact(grantId);
  });

  it('still treats a used refresh token as reuse, whatever resource it names (RT-02)', async () => {
    const { clientId, code, verifier, redirectUri, grantId } = await codeFor(mcpResource);
    const rt1 = (await redeem(stack.app, clientId, code, verifier, redirectUri)).body.refresh_token as string;
    expect((await refresh(stack.app, clientId, rt1)).status).toBe(200);
    expect(await refresh(stack.app, clientId, rt1, { resource: apiResource })).toMatchObject({ status: 400, body: { error: 'invalid_grant' } });
    expect(await rows(stack.app, 'SELECT revoked_reason FROM consents WHERE grant_id = ?', grantId)).toEqual([{ revoked_reason: 'grant_revoked' }]);
  });
});
