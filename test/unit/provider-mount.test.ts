/**
 * SECURITY.md "No code without consent at P": oidc-provider's own browser session cookie is never
 * passed back to it (DESIGN §7; src/http/provider-mount.ts pinToPublicUrl) — `_session`, its
 * signature and the legacy pair are dropped from the request; every other cookie is kept as sent.
 */
import { describe, expect, it } from 'vitest';
import type { Request } from 'express';
import { pinToPublicUrl } from '../../src/http/provider-mount.js';
import { derivePublicUrls } from '../../src/config/urls.js';

const urls = derivePublicUrls(new URL('https://proxy.example/base'));

function request(headers: Record<string, string>): Request {
  return { headers: { ...headers }, ip: '203.0.113.9', socket: { remoteAddress: '127.0.0.1' } } as unknown as Request;
}

describe('pinToPublicUrl', () => {
  it("drops the provider's _session cookies (and their signatures, legacy ones too), keeps every other cookie in order", () => {
    const req = request({
      cookie: 'a=1; _session=s; _session.sig=ss; _interaction=i; _session.legacy=l; _session.legacy.sig=ls; __Host-mcp-session=p; _sessionx=2; x_session=3; _interaction_resume=r',
    });
    pinToPublicUrl(req, urls);
    expect(req.headers.cookie).toBe('a=1; _interaction=i; __Host-mcp-session=p; _sessionx=2; x_session=3; _interaction_resume=r');
  });

  it('leaves an empty Cookie header when only _session cookies were sent, and no header when none was', () => {
    const only = request({ cookie: '_session=s; _session.sig=ss' });
    pinToPublicUrl(only, urls);
    expect(only.headers.cookie).toBe('');
    const none = request({});
    pinToPublicUrl(none, urls);
    expect(none.headers.cookie).toBeUndefined();
  });

  it("pins host, protocol and client address to PUBLIC_URL and express's view, and drops Forwarded", () => {
    const req = request({ host: 'evil.example', 'x-forwarded-host': 'evil.example', 'x-forwarded-proto': 'http', 'x-forwarded-for': '198.51.100.1', forwarded: 'for=198.51.100.1;host=evil.example' });
    pinToPublicUrl(req, urls);
    expect(req.headers).toMatchObject({ 'x-forwarded-host': 'proxy.example', 'x-forwarded-proto': 'https', 'x-forwarded-for': '203.0.113.9' });
    expect(req.headers.forwarded).toBeUndefined();
  });
});
