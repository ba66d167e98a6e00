/**
 * The masking production uses (src/audit/audit.ts `maskedCanonicalJson`, applied to every row's
 * details): canonical JSON (keys sorted at every depth), credential-like keys masked at any depth
 * (but for a few that only name a kind of token), long strings cut (DESIGN §3 "Nothing secret is ever in a row", §9 the 256-character cap).
 */
import { describe, expect, it } from 'vitest';
import { maskedCanonicalJson } from '../../src/audit/audit.js';
import { MAX_STORED_STRING, withoutUserinfo } from '../../src/audit/limits.js';

describe('audit details masking (maskedCanonicalJson)', () => {
  it('sorts keys at every depth, so the same details always give the same text', () => {
    expect(maskedCanonicalJson({ b: 1, a: { d: [1, { z: 0, y: 1 }], c: null } })).toBe('{"a":{"c":null,"d":[1,{"y":1,"z":0}]},"b":1}');
  });

  it('masks the values of credential-like keys at any depth, inside arrays too', () => {
    const secret = 'raw-secret-value-0123456789';
    const text = maskedCanonicalJson({
      access_token: secret,
      nested: { refresh_token: secret, client_secret: secret, code: secret, state: secret, nonce: secret, code_verifier: secret, authorization: secret, cookie: secret, password: secret },
      list: [{ id_token: secret }, { jti: secret }],
      keep: 'visible',
    });
    expect(text).not.toContain(secret);
    expect(text.match(/"\[masked\]"/g)).toHaveLength(12);
    expect(text).toContain('"keep":"visible"');
  });

  it('masks other credential-like keys too: API and private keys, credentials, session ids (review 2026-12-08)', () => {
    const secret = 'raw-secret-value-0123456789';
    const keys = ['api_key', 'apikey', 'apiKey', 'X-Api-Key', 'private_key', 'privateKey', 'credential', 'credentials', 'client_credentials', 'session_id', 'sessionId', 'mcp_session_id', 'passwd', 'db_password'];
    const text = maskedCanonicalJson({ nested: Object.fromEntries(keys.map((k) => [k, secret])) });
    expect(text).not.toContain(secret);
    expect(text.match(/"\[masked\]"/g)).toHaveLength(keys.length);
  });

  it('lets through the keys that only name a kind of token or say whether one was issued', () => {
    const details = { grant_id: 'g', token_type_hint: 'refresh_token', refresh_token_issued: true, token_endpoint_auth_method: 'none', nested: { token_type_hint: 'access_token' } };
    expect(JSON.parse(maskedCanonicalJson(details))).toEqual(details);
    // Any other key that says "token" still is masked, whatever it holds.
    expect(JSON.parse(maskedCanonicalJson({ token_type: 'x', token_hint: 'y', refresh_token_issued_value: 'z' }))).toEqual({ token_type: '[masked]', token_hint: '[masked]', refresh_token_issued_value: '[masked]' });
  });

  it('replaces the userinfo of any URL in any string at any depth, before cutting it (review 2026-12-08)', () => {
    const text = maskedCanonicalJson({
      error_description: 'redirect URI must not contain user information (user@host): "https://alice:hunter2@app.example/cb"',
      list: [{ uri: 'com.example.app://u:hunter2@host/cb' }, 'HTTPS:\\\\alice:hunter2@x.example/'],
      // the password's `@` beyond the cap: replaced first, so the cut cannot leave the password bare
      long: `${'x'.repeat(MAX_STORED_STRING - 30)} https://alice:hunter2hunter2hunter2@app.example/cb`,
      email: 'alice@example.com',
    });
    expect(text).not.toContain('hunter2');
    expect(text).toContain('https://***@app.example/cb');
    expect(text).toContain('com.example.app://***@host/cb');
    expect(text).toContain('"email":"alice@example.com"');
  });

  it('withoutUserinfo: every URL in a text, up to the last `@` of its authority; paths, e-mail addresses and mailto: kept', () => {
    expect(withoutUserinfo('https://a@b:pw@host/x and https://c:d@h2/')).toBe('https://***@host/x and https://***@h2/');
    expect(withoutUserinfo('https:alice:pw@host/cb')).toBe('https:***@host/cb'); // a special scheme without slashes: still an authority (WHATWG)
    expect(withoutUserinfo('https://alice:pw with space@host/')).toBe('https://***@host/');
    for (const kept of ['https://host/path@x', 'alice@example.com', 'mailto:bob@example.com', 'urn:x:alice@example.com', 'no at sign https://host/']) expect(withoutUserinfo(kept)).toBe(kept);
  });

  it('withoutUserinfo: scheme starts nested inside one authority (the input that made the regex quadratic, review 2026-12-08) give what the rule says', () => {
    const many = 'http:'.repeat(5_000);
    expect(withoutUserinfo(`@${many}`)).toBe(`@${many}`); // no @ after any scheme start
    expect(withoutUserinfo(`${many}u:p@h/x`)).toBe('http:***@h/x'); // the first start's authority runs to the last @
    expect(withoutUserinfo(`a x:/ y://u:p@h`)).toBe('a x:/ y://***@h');
    expect(withoutUserinfo('http:aaa x://b@c')).toBe('http:aaa x://***@c'); // http:'s authority ends at the first /, with no @ in it
  });

  it('cuts over-long strings to the stored cap, marked with an ellipsis', () => {
    const parsed = JSON.parse(maskedCanonicalJson({ origin: 'x'.repeat(5000), deep: [{ path: 'y'.repeat(300) }] })) as { origin: string; deep: { path: string }[] };
    expect(parsed.origin.length).toBeLessThanOrEqual(MAX_STORED_STRING);
    expect(parsed.origin.endsWith('…')).toBe(true);
    expect((parsed.deep[0] as { path: string }).path.length).toBeLessThanOrEqual(MAX_STORED_STRING);
  });

  it('drops undefined members and writes other scalars as JSON', () => {
    expect(maskedCanonicalJson({ a: undefined, b: true, c: 1.5, d: 'x' })).toBe('{"b":true,"c":1.5,"d":"x"}');
    expect(maskedCanonicalJson(undefined)).toBe('null');
  });
});
