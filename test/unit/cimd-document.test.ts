/**
 * CIMD-02/04 document validation (src/cimd/document.ts): exact client_id, the DCR admission
 * policy for redirect URIs and the name, no shared secrets, and nothing else trusted.
 */
import { describe, expect, it } from 'vitest';
import { validateClientMetadataDocument } from '../../src/cimd/document.js';
import { MAX_CLIENT_NAME, MAX_REDIRECT_URIS } from '../../src/oauth/admission.js';

const URL_ = 'https://app.example.com/oauth/client-metadata.json';
const policy = { redirectSchemes: ['cursor'] };
/** The MCP 2025-11-25 example document. */
const example = {
  client_id: URL_,
  client_name: 'Example MCP Client',
  client_uri: 'https://app.example.com',
  logo_uri: 'https://app.example.com/logo.png',
  redirect_uris: ['http://127.0.0.1:3000/callback', 'http://localhost:3000/callback'],
  grant_types: ['authorization_code'],
  response_types: ['code'],
  token_endpoint_auth_method: 'none',
};
const validate = (doc: unknown, url = URL_) => validateClientMetadataDocument(doc, url, policy);
const withDoc = (patch: Record<string, unknown>) => ({ ...example, ...patch });

describe('CIMD-02 document › accepted, normalised to what P uses', () => {
  it('the MCP example document', () => {
    expect(validate(example)).toEqual({
      ok: true,
      metadata: {
        client_id: URL_,
        client_name: 'Example MCP Client',
        client_uri: 'https://app.example.com',
        logo_uri: 'https://app.example.com/logo.png',
        redirect_uris: ['http://127.0.0.1:3000/callback', 'http://localhost:3000/callback'],
        grant_types: ['authorization_code'],
        response_types: ['code'],
        token_endpoint_auth_method: 'none',
        application_type: 'native', // loopback redirects (REG-12, F9)
      },
    });
  });

  it('nothing else is kept: scope, jwks, contacts, software_*, application_type, unknown members are dropped', () => {
    const result = validate(withDoc({
      redirect_uris: ['https://app.example.com/cb', 'https://app.example.com/cb'],
      scope: 'admin everything',
      jwks_uri: 'https://app.example.com/jwks.json',
      jwks: { keys: [] },
      contacts: ['a@example.com'],
      tos_uri: 'https://app.example.com/tos',
      policy_uri: 'https://app.example.com/policy',
      software_id: 'x',
      application_type: 'native',
      require_pushed_authorization_requests: true,
      __proto__: { polluted: true },
      'x-extra': 1,
    }));
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(Object.keys(result.metadata).sort()).toEqual(['application_type', 'client_id', 'client_name', 'client_uri', 'grant_types', 'logo_uri', 'redirect_uris', 'response_types', 'token_endpoint_auth_method']);
    expect(result.metadata.redirect_uris).toEqual(['https://app.example.com/cb']); // deduplicated
    expect(result.metadata.application_type).toBe('web'); // derived from the redirects, not the document
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('grant_types narrowed to authorization_code/refresh_token; defaults per RFC 7591', () => {
    const narrowed = validate(withDoc({ grant_types: ['authorization_code', 'refresh_token', 'client_credentials', 'implicit', 'urn:ietf:params:oauth:grant-type:token-exchange'] }));
    expect(narrowed).toMatchObject({ ok: true, metadata: { grant_types: ['authorization_code', 'refresh_token'] } });
    const { grant_types: _g, response_types: _r, token_endpoint_auth_method: _t, ...minimal } = example;
    expect(validate(minimal)).toMatchObject({ ok: true, metadata: { grant_types: ['authorization_code'], response_types: ['code'], token_endpoint_auth_method: 'none' } });
  });

  it('client_uri / logo_uri kept only when https, canonical and without userinfo — never a reason to refuse', () => {
    for (const bad of ['http://app.example.com/', 'javascript:alert(1)', 'data:image/png;base64,AAAA', 'https://u@app.example.com/', 'https://APP.example.com/', 'file:///etc/passwd', 42, ['https://a.example/'], 'https://app.example.com/\u202e']) {
      const result = validate(withDoc({ client_uri: bad, logo_uri: bad }));
      expect(result.ok, String(bad)).toBe(true);
      if (result.ok) expect(result.metadata.client_uri ?? result.metadata.logo_uri, String(bad)).toBeUndefined();
    }
  });

  it('client_name stored in NFC, trimmed; a private-use scheme on the allowlist is a native redirect', () => {
    const result = validate(withDoc({ client_name: '  Cafe\u0301 ', redirect_uris: ['cursor://anysphere.cursor-mcp/oauth/callback'] }));
    expect(result).toMatchObject({ ok: true, metadata: { client_name: 'Café', application_type: 'native' } });
  });
});

describe('CIMD-02 document › refused', () => {
  it.each([
    [null, 'not_object'],
    [[], 'not_object'],
    ['{"client_id":"…"}', 'not_object'],
    [42, 'not_object'],
  ])('%j → %s', (doc, reason) => {
    expect(validate(doc)).toMatchObject({ ok: false, reason });
  });

  it.each([
    [undefined],
    [null],
    [''],
    [`${URL_}/`],
    [URL_.toUpperCase()],
    ['https://app.example.com:443/oauth/client-metadata.json'],
    [`${URL_}#`],
    [`${URL_}?`],
    [` ${URL_}`],
    ['https://evil.example/oauth/client-metadata.json'],
    [[URL_]],
    [{ href: URL_ }],
  ])('client_id %j is not the fetched URL → client_id_mismatch (simple string comparison)', (clientId) => {
    expect(validate(withDoc({ client_id: clientId }))).toMatchObject({ ok: false, reason: 'client_id_mismatch' });
  });

  it('the comparison is with the URL as fetched, not a normalised one', () => {
    expect(validate(withDoc({ client_id: 'https://app.example.com/a/../oauth/client-metadata.json' }), 'https://app.example.com/a/../oauth/client-metadata.json').ok).toBe(true);
    expect(validate(example, 'https://app.example.com/a/../oauth/client-metadata.json')).toMatchObject({ reason: 'client_id_mismatch' });
  });

  it.each([
    [{ client_secret: 'shh' }, 'shared_secret'],
    [{ client_secret: '' }, 'shared_secret'],
    [{ client_secret_expires_at: 0 }, 'shared_secret'],
    [{ token_endpoint_auth_method: 'client_secret_basic' }, 'shared_secret'],
    [{ token_endpoint_auth_method: 'client_secret_post' }, 'shared_secret'],
    [{ token_endpoint_auth_method: 'client_secret_jwt' }, 'shared_secret'],
    [{ token_endpoint_auth_method: 'private_key_jwt', jwks_uri: 'https://app.example.com/jwks.json' }, 'token_endpoint_auth_method'],
    [{ token_endpoint_auth_method: 'tls_client_auth' }, 'token_endpoint_auth_method'],
    [{ token_endpoint_auth_method: ['none'] }, 'token_endpoint_auth_method'],
  ])('CIMD-04: %j → %s', (patch, reason) => {
    expect(validate(withDoc(patch))).toMatchObject({ ok: false, reason });
  });

  it.each([
    [{ redirect_uris: undefined }, 'redirect_uris', undefined],
    [{ redirect_uris: [] }, 'redirect_uris', undefined],
    [{ redirect_uris: 'https://app.example.com/cb' }, 'redirect_uris', undefined],
    [{ redirect_uris: [42] }, 'redirect_uris', undefined],
    [{ redirect_uris: Array.from({ length: MAX_REDIRECT_URIS + 1 }, (_, i) => `https://app.example.com/cb${i}`) }, 'redirect_uris', undefined],
    [{ redirect_uris: ['http://evil.example/cb'] }, 'redirect_uri', 'http_not_loopback'],
    [{ redirect_uris: ['javascript:alert(1)'] }, 'redirect_uri', 'scheme_forbidden'],
    [{ redirect_uris: ['https://app.example.com/cb#x'] }, 'redirect_uri', 'fragment'],
    [{ redirect_uris: ['https://*.example.com/cb'] }, 'redirect_uri', 'wildcard'],
    [{ redirect_uris: ['https://app.example.com@evil.example/cb'] }, 'redirect_uri', 'userinfo'],
    [{ redirect_uris: ['https://APP.example.com/cb'] }, 'redirect_uri', 'not_canonical'],
    [{ redirect_uris: ['myapp:/cb'] }, 'redirect_uri', 'scheme_not_allowed'],
    [{ redirect_uris: ['https://app.example.com/cb', 'http://127.0.0.1:1/../x'] }, 'redirect_uri', 'dot_segments'],
    // A native client (loopback or private-use redirect) with an https loopback redirect: oidc-provider never loads it (review 2026-12-07).
    [{ redirect_uris: ['http://127.0.0.1:3000/cb', 'https://localhost/cb'] }, 'redirect_uri', 'https_loopback_native'],
    [{ redirect_uris: ['https://127.0.0.1/cb', 'cursor://cb'] }, 'redirect_uri', 'https_loopback_native'],
    [{ redirect_uris: ['https://[::1]/cb', 'http://localhost:1/cb'] }, 'redirect_uri', 'https_loopback_native'],
  ])('the DCR admission policy: %j → %s (%s)', (patch, reason, rule) => {
    const result = validate(withDoc(patch));
    expect(result).toMatchObject({ ok: false, reason });
    if (!result.ok) expect(result.rule).toBe(rule);
  });

  it.each([
    [{ client_name: undefined }],
    [{ client_name: '' }],
    [{ client_name: '   ' }],
    [{ client_name: 42 }],
    [{ client_name: 'x'.repeat(MAX_CLIENT_NAME + 1) }],
    [{ client_name: 'Visual Studio Code\u202e' }],
    [{ client_name: 'Claude\u3164' }],
    [{ client_name: 'Cur\u0301\u0301sor' }],
    [{ client_name: 'a\nb' }],
  ])('client_name under the DCR display-text rule, and required (MCP): %j → client_name', (patch) => {
    expect(validate(withDoc(patch))).toMatchObject({ ok: false, reason: 'client_name' });
  });

  it.each([
    [{ grant_types: ['refresh_token'] }, 'grant_types'],
    [{ grant_types: ['client_credentials'] }, 'grant_types'],
    [{ grant_types: 'authorization_code' }, 'grant_types'],
    [{ grant_types: [1] }, 'grant_types'],
    [{ response_types: ['token'] }, 'response_types'],
    [{ response_types: 'code' }, 'response_types'],
  ])('%j → %s', (patch, reason) => {
    expect(validate(withDoc(patch))).toMatchObject({ ok: false, reason });
  });

  it('details are bounded and printable even for a hostile client_id', () => {
    const result = validate(withDoc({ client_id: `\u202e${'x'.repeat(10_000)}` }));
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(result.detail.length).toBeLessThan(300);
      expect(result.detail).not.toMatch(/[^\x20-\x7e…§]/);
    }
  });
});
