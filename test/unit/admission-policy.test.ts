import { describe, expect, it } from 'vitest';
import { admitRegistration, MAX_REDIRECT_URIS, widenStoredClient } from '../../src/oauth/admission.js';
import { checkRedirectUri, redirectHosts } from '../../src/oauth/redirect-uri.js';

const policy = { redirectSchemes: ['cursor', 'com.example.app'], supportedScopes: ['openid', 'offline_access', 'mcp:tools'] };
const base = { redirect_uris: ['https://app.example.com/cb'] };

describe('admission policy › checkRedirectUri (REG-04/05/06)', () => {
  it.each([
    ['https://app.example.com/cb', 'https'],
    ['https://app.example.com:8443/oauth/callback?x=1', 'https'],
    ['http://127.0.0.1:33418/callback', 'loopback'],
    ['http://localhost/callback', 'loopback'],
    ['http://[::1]:9000/cb', 'loopback'],
    ['cursor://anysphere.cursor-mcp/oauth/callback', 'private'],
    ['com.example.app:/oauth2redirect', 'private'],
  ])('accepts %s as %s', (uri, kind) => {
    expect(checkRedirectUri(uri, policy)).toEqual({ ok: true, kind });
  });

  it.each([
    ['javascript:alert(1)', 'scheme_forbidden'],
    ['JaVaScRiPt:alert(1)', 'scheme_forbidden'],
    [' javascript:alert(1)', 'control_characters'],
    ['data:text/html,<script>alert(1)</script>', 'scheme_forbidden'],
    ['file:///etc/passwd', 'scheme_forbidden'],
    ['vbscript:msgbox', 'scheme_forbidden'],
    ['http://evil.example/cb', 'http_not_loopback'],
    ['http://127.0.0.2/cb', 'http_not_loopback'],
    ['http://localhost.evil.example/cb', 'http_not_loopback'],
    ['https://app.example.com/cb#frag', 'fragment'],
    ['https://*.example.com/cb', 'wildcard'],
    ['https://app.example.com/*', 'wildcard'],
    ['https://legit.example.com@evil.example/cb', 'userinfo'],
    ['https://user:pw@app.example.com/cb', 'userinfo'],
    ['https://app.example.com/cb/../evil', 'dot_segments'],
    ['https://app.example.com/a/%2e%2e/evil', 'dot_segments'],
    ['/cb', 'not_absolute'],
    ['app.example.com/cb', 'not_absolute'],
    ['myapp:/cb', 'scheme_not_allowed'],
    ['vscode://vscode.github-authentication/did-authenticate', 'scheme_not_allowed'],
    ['https://app.example.com/c\tb', 'control_characters'],
    [`https://app.example.com/${'a'.repeat(2100)}`, 'too_long'],
  ])('refuses %j (%s)', (uri, reason) => {
    const result = checkRedirectUri(uri, policy);
    expect(result.ok).toBe(false);
    expect(result.ok ? undefined : result.reason).toBe(reason);
  });
});

describe('admission policy › admitRegistration', () => {
  it('normalises a typical MCP client registration', () => {
    const result = admitRegistration(
      {
        client_name: '  Claude Desktop ',
        redirect_uris: ['http://127.0.0.1:6274/oauth/callback', 'http://127.0.0.1:6274/oauth/callback'],
        grant_types: ['authorization_code', 'refresh_token', 'implicit'],
        response_types: ['code', 'token'],
        scope: 'mcp:tools offline_access admin:all',
        logo_uri: '',
        tos_uri: '',
        x_unknown: 1,
        jwks_uri: 'https://attacker.example/jwks',
        sector_identifier_uri: 'http://169.254.169.254/',
      },
      policy,
    );
    expect(result).toEqual({
      ok: true,
      native: true,
      metadata: {
        client_name: 'Claude Desktop',
        redirect_uris: ['http://127.0.0.1:6274/oauth/callback'],
        grant_types: ['authorization_code', 'refresh_token'],
        response_types: ['code'],
        scope: 'mcp:tools offline_access',
        application_type: 'native',
        token_endpoint_auth_method: 'none',
      },
    });
  });

  it('keeps web clients with https redirect URIs web, and honours an explicit confidential method', () => {
    const result = admitRegistration({ ...base, token_endpoint_auth_method: 'client_secret_basic' }, policy);
    expect(result).toMatchObject({ ok: true, native: false, metadata: { application_type: 'web', token_endpoint_auth_method: 'client_secret_basic' } });
  });

  it.each([
    [{}, 'invalid_redirect_uri', 'missing'],
    [{ redirect_uris: [] }, 'invalid_redirect_uri', 'missing'],
    [{ redirect_uris: 'https://a.example/cb' }, 'invalid_redirect_uri', 'missing'],
    [{ redirect_uris: Array.from({ length: MAX_REDIRECT_URIS + 1 }, (_, i) => `https://a.example/cb${i}`) }, 'invalid_redirect_uri', 'too_many'],
    [{ redirect_uris: [42] }, 'invalid_redirect_uri', 'not_a_string'],
    [{ ...base, client_name: 'Claude\u202Eexe.fdp' }, 'invalid_client_metadata', 'client_name'],
    [{ ...base, client_name: 'line\nbreak' }, 'invalid_client_metadata', 'client_name'],
    [{ ...base, client_name: 'x'.repeat(101) }, 'invalid_client_metadata', 'client_name'],
    [{ ...base, client_name: 7 }, 'invalid_client_metadata', 'client_name'],
    [{ ...base, logo_uri: 'javascript:alert(1)' }, 'invalid_client_metadata', 'logo_uri'],
    [{ ...base, client_uri: 'http://evil.example' }, 'invalid_client_metadata', 'client_uri'],
    [{ ...base, token_endpoint_auth_method: 'private_key_jwt' }, 'invalid_client_metadata', 'token_endpoint_auth_method'],
    [{ ...base, grant_types: ['client_credentials'] }, 'invalid_client_metadata', 'grant_types'],
    [{ ...base, response_types: ['token'] }, 'invalid_client_metadata', 'response_types'],
    [{ ...base, application_type: 'desktop' }, 'invalid_client_metadata', 'application_type'],
    [{ ...base, scope: 5 }, 'invalid_client_metadata', 'scope'],
    [[1, 2], 'invalid_client_metadata', 'not_an_object'],
    ['string', 'invalid_client_metadata', 'not_an_object'],
  ])('refuses %j with %s', (body, error, reason) => {
    const result = admitRegistration(body, policy);
    expect(result).toMatchObject({ ok: false, error, reason });
  });

  it('drops empty strings and an unknown-only scope (interop F7)', () => {
    const result = admitRegistration({ ...base, scope: 'admin', client_uri: '' }, policy);
    expect(result.ok && result.metadata).toEqual({
      redirect_uris: ['https://app.example.com/cb'],
      application_type: 'web',
      token_endpoint_auth_method: 'none',
      grant_types: ['authorization_code'],
      response_types: ['code'],
    });
  });

  it('lists redirect hosts for provenance', () => {
    expect(redirectHosts(['https://a.example/cb', 'https://a.example/other', 'http://127.0.0.1:3000/cb', 'cursor://x/cb'])).toEqual(['a.example', '127.0.0.1:3000', 'x']);
  });
});

describe('admission policy › the step-up scopes of a scope ceiling (GW-15)', () => {
  const stepUp = { ...policy, supportedScopes: [...policy.supportedScopes, 'mcp:admin'], stepUpScopes: ['mcp:admin'] };

  it('gives a stored client what registration would: the step-up scopes join any ceiling, none is made', () => {
    const registered = (scope?: string) => admitRegistration({ ...base, ...(scope === undefined ? {} : { scope }) }, stepUp);
    for (const scope of ['mcp:tools', 'openid', 'mcp:tools offline_access']) {
      const atRegistration = registered(scope);
      expect(atRegistration.ok && atRegistration.metadata.scope).toBe(`${scope} mcp:admin`);
      expect(widenStoredClient({ client_id: 'c', scope }, ['mcp:admin'])).toEqual({ client_id: 'c', scope: `${scope} mcp:admin` });
    }
    const scopeless = registered(undefined);
    expect(scopeless.ok).toBe(true);
    expect(scopeless.ok && scopeless.metadata).not.toHaveProperty('scope');
    expect(widenStoredClient({ client_id: 'c' }, ['mcp:admin'])).toEqual({ client_id: 'c' });
  });

  it('changes nothing else, and nothing at all when the ceiling already holds the step-up scopes', () => {
    const stored = { client_id: 'c', client_name: 'N', redirect_uris: ['https://a.example/cb'], scope: 'mcp:admin  mcp:tools' };
    expect(widenStoredClient(stored, ['mcp:admin'])).toBe(stored);
    expect(widenStoredClient(stored, [])).toBe(stored);
    const widened = widenStoredClient(stored, ['mcp:admin', 'mcp:write']);
    expect(widened).toEqual({ ...stored, scope: 'mcp:admin  mcp:tools mcp:write' });
    expect(stored.scope).toBe('mcp:admin  mcp:tools'); // not mutated
  });
});
