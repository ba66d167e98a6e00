/**
 * SEC-02, UP-07, GW-13: after a complete flow (registration, consent, upstream login, code,
 * tokens, refresh, a refused replay), no log line and no audit row contains a token, code,
 * verifier, state, cookie value or secret.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rows } from '../helpers/app.js';
import { Browser, authorizeClient, redeem, refresh, startStack, type Stack } from '../helpers/stack.js';

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
});
