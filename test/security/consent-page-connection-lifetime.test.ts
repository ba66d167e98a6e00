/**
 * The consent page says how long a client stays connected (issue 9 item 5; CONS-05/06, AT-23):
 * a client that registered the `refresh_token` grant receives refresh tokens and can keep using
 * the account without the user for up to CONSENT_TTL (renewing at least every
 * REFRESH_TOKEN_TTL), until revoked at /account; the page said nothing of it. A client without
 * that grant gets ACCESS_TOKEN_TTL at a time. What the page says is what the token endpoint does.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerClient } from '../helpers/app.js';
import { Browser, buildAuthorization, drive, redeem, startStack, type Stack } from '../helpers/stack.js';
import { connectionTerms, durationInWords } from '../../src/consent/present.js';

let stack: Stack;
beforeAll(async () => {
  stack = await startStack({ env: { CONSENT_TTL: '90d', REFRESH_TOKEN_TTL: '30d', ACCESS_TOKEN_TTL: '1h' } });
});
afterAll(() => stack.close());

async function approve(grantTypes: string[]) {
  const client = await registerClient(stack.app, { grant_types: grantTypes });
  const auth = buildAuthorization(stack.app, { clientId: client.client_id });
  const result = await drive(new Browser(), auth.url, auth.redirectUri);
  const tokens = await redeem(stack.app, client.client_id, result.callback.searchParams.get('code') as string, auth.verifier);
  const text = (result.consentPage?.html ?? '').replace(/\s+/g, ' ');
  return { text, tokens };
}

describe('consent page says how long a client stays connected', () => {
  it('a client that registered refresh_token: up to CONSENT_TTL, renewing within REFRESH_TOKEN_TTL, until revoked at /account — and it does get a refresh token', async () => {
    const { text, tokens } = await approve(['authorization_code', 'refresh_token']);
    expect(text).toContain('<strong>It can stay connected without asking you again</strong> for up to 90 days (renewing its access by itself at least every 30 days), until you revoke it on this server\'s Connected applications page (<code>/account</code>).');
    expect(text).not.toContain('cannot renew it by itself');
    expect(tokens.status).toBe(200);
    expect(tokens.body.refresh_token).toBeTruthy();
  });

  it('a client without refresh_token: access for ACCESS_TOKEN_TTL at a time — and it gets no refresh token', async () => {
    const { text, tokens } = await approve(['authorization_code']);
    expect(text).toContain('Its access lasts up to 1 hour at a time and it cannot renew it by itself');
    expect(text).not.toContain('stay connected without asking you again');
    expect(tokens.status).toBe(200);
    expect(tokens.body.refresh_token).toBeUndefined();
  });

  it('words the configured durations exactly (unit: the presenter)', () => {
    expect(connectionTerms(true, { consent: 7 * 86_400, refreshToken: 14 * 86_400, accessToken: 3600 })).toEqual({ refreshable: true, upTo: '7 days', renewEvery: undefined });
    expect(connectionTerms(true, { consent: 90 * 86_400, refreshToken: 36 * 3600, accessToken: 3600 })).toEqual({ refreshable: true, upTo: '90 days', renewEvery: '36 hours' });
    expect(connectionTerms(false, { consent: 90 * 86_400, refreshToken: 30 * 86_400, accessToken: 900 })).toEqual({ refreshable: false, access: '15 minutes' });
    expect([durationInWords(86_400), durationInWords(1), durationInWords(90)]).toEqual(['1 day', '1 second', '90 seconds']);
  });
});
