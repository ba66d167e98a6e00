/**
 * SEC-02, UP-07, GW-13: after a complete flow (registration, consent, upstream login, code,
 * tokens, refresh, a refused replay), no log line and no audit row contains a token, code,
 * verifier, state, cookie value or secret. And on a failure path (review 2026-12-08): U's
 * revocation endpoint refusing with an error that echoes the upstream token, asked at once, again
 * by housekeeping, and given up on a week later — no upstream token in a log line, an audit row
 * or any column of upstream_revocations.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { rows } from '../helpers/app.js';
import { Browser, authorizeClient, redeem, refresh, startStack, type Stack } from '../helpers/stack.js';
import { runMaintenance } from '../../src/runtime/maintenance.js';
import { maintenanceDeps } from '../../src/runtime/server.js';
import { GIVE_UP_MS, RETRY_FIRST_MS } from '../../src/consent/upstream-revocations.js';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack({ env: { LOG_LEVEL: 'debug' } });
});
afterAll(() => stack.close());

describe('secrets are never logged', () => {
  it('keeps every credential of a full flow out of logs and the audit log', async () => {
    const browser = new Browser();
    const { clientId, tokens, result, auth } = await authorizeClient(stack, browser, { login: 'alice' });
    const code = result.callback.searchParams.get('code') as string;
    const refreshed = await refresh(stack.app, clientId, tokens.body.refresh_token);
    expect(refreshed.status).toBe(200);
    expect((await redeem(stack.app, clientId, code, auth.verifier)).status).toBe(400); // replay: refused, grant revoked
    const upstreamState = stack.upstream.authorizations.at(-1)?.query.state as string;
    const upstreamNonce = stack.upstream.authorizations.at(-1)?.query.nonce as string;
    const secrets = {
      accessToken: tokens.body.access_token,
      refreshToken: tokens.body.refresh_token,
      refreshed: refreshed.body.access_token,
      code,
      verifier: auth.verifier,
      clientState: auth.state,
      upstreamState,
      upstreamNonce,
      upstreamTokens: stack.upstream.issued.map((t) => t.token).join('|'),
      upstreamSecret: stack.upstream.clientSecret,
      sessionCookie: browser.cookie('127.0.0.1', '__Host-mcp-session') as string,
      csrfCookie: browser.cookie('127.0.0.1', '__Host-mcp-csrf') as string,
    };
    await stack.app.runtime.audit.flush();
    const logs = stack.app.logLines.join('\n');
    const audit = JSON.stringify(await rows(stack.app, 'SELECT * FROM audit_log'));
    expect(stack.app.logLines.filter((l) => l.includes('"msg":"request"')).length).toBeGreaterThanOrEqual(9);
    for (const [name, value] of Object.entries(secrets)) {
      for (const part of value.split('|').filter(Boolean)) {
        expect(part.length, name).toBeGreaterThan(15);
        expect(logs.includes(part), `${name} in logs`).toBe(false);
        expect(audit.includes(part), `${name} in audit`).toBe(false);
      }
    }
  });
  it("U's revocation endpoint failing with an error that echoes the token: no upstream token in logs, audit_log or upstream_revocations", async () => {
    const { runtime } = stack.app;
    const { clientId } = await authorizeClient(stack, new Browser(), { login: 'bob' });
    const [consent] = (await rows(stack.app, 'SELECT grant_id FROM consents WHERE client_id = ?', clientId)) as { grant_id: string }[];
    const grantId = consent!.grant_id;
    const tokens = (await runtime.stores.upstreamTokens.get(grantId))!;
    const asked = stack.upstream.revokedTokens.length;
    const linesBefore = stack.app.logLines.length;
    stack.upstream.setRevocationFault(400, { echoToken: true });
    const start = Date.now();
    vi.useFakeTimers({ toFake: ['Date'], now: start });
    try {
      await runtime.revocation.revokeGrant(grantId, 'user'); // U asked at once: refused
      await runtime.revocation.settled();
      const [row] = (await rows(stack.app, 'SELECT last_error FROM upstream_revocations WHERE grant_id = ?', grantId)) as { last_error: string }[];
      expect(row?.last_error).toBe('server responded with an error in the response body (HTTP 400 invalid_request)');
      vi.setSystemTime(start + RETRY_FIRST_MS); // housekeeping asks again: refused
      await runMaintenance(maintenanceDeps(runtime, runtime.gateway));
      await runtime.revocation.settled();
      vi.setSystemTime(start + GIVE_UP_MS); // a week on: asked a last time, given up, audited with U's error
      await runMaintenance(maintenanceDeps(runtime, runtime.gateway));
      await runtime.revocation.settled();
    } finally {
      vi.useRealTimers();
      stack.upstream.setRevocationFault(undefined);
    }
    // U received the token three times and answered each time with it in its error body.
    expect(stack.upstream.revokedTokens.slice(asked)).toEqual([tokens.refreshToken, tokens.refreshToken, tokens.refreshToken]);
    await runtime.audit.flush();
    const abandoned = (await rows(stack.app, "SELECT details FROM audit_log WHERE event = 'upstream.revocation_abandoned'")) as { details: string }[];
    expect(abandoned.map((r) => JSON.parse(r.details).error)).toEqual(['server responded with an error in the response body (HTTP 400 invalid_request)']);
    const logs = stack.app.logLines.slice(linesBefore).join('\n');
    expect(logs).toContain('upstream token revocation failed');
    expect(logs).toContain('revoke it at U by hand');
    const stored = [JSON.stringify(await rows(stack.app, 'SELECT * FROM audit_log')), JSON.stringify(await rows(stack.app, 'SELECT * FROM upstream_revocations'))].join('\n');
    const upstreamTokens = [tokens.accessToken, tokens.refreshToken as string, ...stack.upstream.issued.map((t) => t.token)];
    for (const token of upstreamTokens) {
      expect(token.length).toBeGreaterThan(15);
      expect(stack.app.logLines.join('\n').includes(token), 'an upstream token in the logs').toBe(false);
      expect(stored.includes(token), 'an upstream token in audit_log or upstream_revocations').toBe(false);
    }
  });
});
