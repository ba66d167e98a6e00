/**
 * Superseded consent: upstream revocation (issue 9 item 5; UP-08, CONS-19, DESIGN §2
 * "Revocation cascades"). Approving again for the same client and redirect URI supersedes the
 * older consent: its grant and P's tokens are revoked — and, after the commit, so is its
 * upstream token at U's revocation endpoint, as every other cascade does.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditEvents, rows } from '../helpers/app.js';
import { Browser, authorizeClient, buildAuthorization, drive, redeem, refresh, startStack, type Stack } from '../helpers/stack.js';
import { INITIALIZE, mcpPost } from '../helpers/mcp-http.js';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack();
});
afterAll(() => stack.close());

/** `login` authorizes a client: its consent's grant, U's token stored for it, and U's revocation count once settled. */
async function authorizedWithUpstreamToken(login: string) {
  const browser = new Browser(login);
  const granted = await authorizeClient(stack, browser, { login });
  const [consent] = await rows(stack.app, 'SELECT grant_id FROM consents WHERE client_id = ? AND revoked_at IS NULL', granted.clientId);
  const upstream = await stack.app.runtime.stores.upstreamTokens.get(consent.grant_id);
  expect(upstream?.refreshToken).toBeTruthy();
  await stack.app.runtime.revocation.settled();
  return { browser, granted, grantId: consent.grant_id as string, upstream, revokedBefore: stack.upstream.revokedTokens.length };
}

describe('superseded consent upstream revocation', () => {
  it('revokes the old grant\'s upstream token at U after the second approval; the old grant\'s tokens are refused', async () => {
    const { browser, granted: first, grantId, upstream: oldUpstream, revokedBefore } = await authorizedWithUpstreamToken('alice');

    // The same user approves the same client and redirect URI again (the client asked for prompt=consent).
    const again = buildAuthorization(stack.app, { clientId: first.clientId, prompt: 'consent' });
    const second = await drive(browser, again.url, again.redirectUri, { login: 'alice' });
    expect(second.seen[0]).toBe('consent');
    const code = second.callback.searchParams.get('code') as string;
    const fresh = await redeem(stack.app, first.clientId, code, again.verifier);
    expect(fresh.status).toBe(200);
    await stack.app.runtime.revocation.settled();

    // U received a revocation request for the superseded grant's upstream token — and for nothing else.
    expect(stack.upstream.revokedTokens.slice(revokedBefore)).toEqual([oldUpstream?.refreshToken]);
    expect((await auditEvents(stack.app)).filter((e) => e.event === 'upstream.token_revoked' && e.details?.includes(grantId))).toHaveLength(1);
    expect((await rows(stack.app, 'SELECT count(*) AS n FROM upstream_tokens WHERE grant_id = ?', grantId))[0].n).toBe(0);
    expect(await rows(stack.app, 'SELECT revoked_reason FROM consents WHERE grant_id = ?', grantId)).toEqual([{ revoked_reason: 'superseded' }]);

    // The old grant's tokens are refused at the gateway and at /token; the new ones work.
    const oldCall = await mcpPost(`${stack.app.url}/mcp`, first.tokens.body.access_token, INITIALIZE);
    expect(oldCall.status).toBe(401);
    expect(await refresh(stack.app, first.clientId, first.tokens.body.refresh_token)).toMatchObject({ status: 400, body: { error: 'invalid_grant' } });
    expect((await mcpPost(`${stack.app.url}/mcp`, fresh.body.access_token, INITIALIZE)).status).toBe(200);
  });
});

describe('revocation whose audit row cannot be written', () => {
  it('still asks U to revoke the upstream token once the revocation has committed (found by review, 2026-12-06)', async () => {
    const { grantId, upstream, revokedBefore } = await authorizedWithUpstreamToken('bob');
    const { audit } = stack.app.runtime;
    const record = audit.record.bind(audit);
    audit.record = async (entry) => {
      if (entry.event === 'admin.consent_revoked') throw Object.assign(new Error('database is locked'), { code: 'SQLITE_BUSY' });
      return record(entry);
    };
    try {
      await expect(stack.app.runtime.revocation.revokeGrant(grantId, 'admin', { event: 'admin.consent_revoked', subject: 'admin' })).rejects.toThrow('database is locked');
    } finally {
      audit.record = record;
    }
    await stack.app.runtime.revocation.settled();
    expect(stack.upstream.revokedTokens.slice(revokedBefore)).toEqual([upstream?.refreshToken]);
    expect(await rows(stack.app, 'SELECT revoked_reason FROM consents WHERE grant_id = ?', grantId)).toEqual([{ revoked_reason: 'admin' }]);
  });
});
