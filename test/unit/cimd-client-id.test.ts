/**
 * CIMD-01 client_id URL rules and the trust policy (src/cimd/client-id.ts): pure, before DNS.
 */
import { describe, expect, it } from 'vitest';
import { checkClientIdUrl, MAX_CLIENT_ID_LENGTH, parseHostPattern } from '../../src/cimd/client-id.js';

describe('CIMD-01 client_id URL shape', () => {
  it.each([
    'https://client.example/client.json',
    'https://client.example:8443/oauth/client-metadata.json',
    'https://client.example/', // path "/" is NOT RECOMMENDED, not forbidden
    'https://client.example/c?v=2', // the query is the client's SHOULD NOT
    'https://93.184.216.34/client.json', // an IP literal; its address is checked later
    'https://[2606:4700::1111]/client.json',
    'https://xn--bcher-kva.example/client.json',
    'https://client.example./client.json',
    'https://client.example/a%20b',
  ])('accepts %s', (url) => {
    expect(checkClientIdUrl(url)).toMatchObject({ ok: true, insecureHttp: false });
  });

  it.each([
    ['http://client.example/client.json', 'scheme'],
    ['HTTPS://client.example/client.json', 'not_canonical'],
    ['wss://client.example/client.json', 'scheme'],
    ['javascript:alert(1)//', 'scheme'],
    ['data:application/json,{}', 'scheme'],
    ['https://u:p@client.example/client.json', 'userinfo'],
    ['https://@client.example/client.json', 'userinfo'],
    ['https://client.example/client.json#', 'fragment'],
    ['https://client.example/client.json#frag', 'fragment'],
    ['https://client.example', 'no_path'],
    ['https://client.example?x', 'no_path'],
    ['https://client.example/..', 'dot_segments'],
    ['https://client.example/a/./b', 'dot_segments'],
    ['https://client.example/a/%2E%2e/b', 'dot_segments'],
    ['https://client.example/a/%2e/b', 'dot_segments'],
    ['https://client.example/a/.%2e', 'dot_segments'],
    ['https://Client.Example/client.json', 'not_canonical'],
    ['https://client.example:443/client.json', 'not_canonical'],
    ['https://bücher.example/client.json', 'not_canonical'],
    ['https://client.example/a b', 'not_url'],
    ['https://client.example/\tclient.json', 'not_url'],
    ['https:client.example/client.json', 'not_url'],
    ['https:\\\\client.example\\client.json', 'not_url'],
    ['https://client.example/client.json\n', 'not_url'],
    ['client.example/client.json', 'not_url'],
    [`https://client.example/${'a'.repeat(MAX_CLIENT_ID_LENGTH)}`, 'too_long'],
    ['https://2130706433/x', 'not_canonical'],
    ['https://0x7f.1/x', 'not_canonical'],
    ['https://[::FFFF:127.0.0.1]/x', 'not_canonical'],
  ])('refuses %s (%s)', (url, reason) => {
    expect(checkClientIdUrl(url)).toMatchObject({ ok: false, reason });
  });

  it('gives the host to resolve without brackets and the effective port', () => {
    expect(checkClientIdUrl('https://[2606:4700::1111]/c')).toMatchObject({ hostname: '2606:4700::1111', port: 443 });
    expect(checkClientIdUrl('https://client.example:8443/c')).toMatchObject({ hostname: 'client.example', port: 8443 });
  });
});

describe('CIMD §6.8 trust policy', () => {
  const check = (url: string, policy: Parameters<typeof checkClientIdUrl>[1]) => checkClientIdUrl(url, policy);

  it('an empty allowed list admits every host; a non-empty one only what it names', () => {
    expect(check('https://a.example/c', { allowedHosts: [] }).ok).toBe(true);
    expect(check('https://a.example/c', { allowedHosts: ['a.example'] }).ok).toBe(true);
    expect(check('https://a.example:8443/c', { allowedHosts: ['a.example'] }).ok).toBe(true); // no port: any port
    expect(check('https://a.example:8443/c', { allowedHosts: ['a.example:443'] })).toMatchObject({ ok: false, reason: 'host_not_allowed' });
    expect(check('https://a.example/c', { allowedHosts: ['a.example:443'] }).ok).toBe(true);
    expect(check('https://b.example/c', { allowedHosts: ['a.example'] })).toMatchObject({ ok: false, reason: 'host_not_allowed' });
    expect(check('https://sub.a.example/c', { allowedHosts: ['a.example'] })).toMatchObject({ ok: false, reason: 'host_not_allowed' });
  });

  it('*.domain matches subdomains at any depth, not the domain, not a look-alike suffix, never an IP', () => {
    const policy = { allowedHosts: ['*.vscode.dev'] };
    expect(check('https://insiders.vscode.dev/c', policy).ok).toBe(true);
    expect(check('https://a.b.vscode.dev/c', policy).ok).toBe(true);
    expect(check('https://vscode.dev/c', policy)).toMatchObject({ reason: 'host_not_allowed' });
    expect(check('https://evilvscode.dev/c', policy)).toMatchObject({ reason: 'host_not_allowed' });
    expect(check('https://vscode.dev.evil.example/c', policy)).toMatchObject({ reason: 'host_not_allowed' });
    for (const ipSuffix of ['*.0.0.1', '*.3.4', '*.[::1]']) expect(() => parseHostPattern(ipSuffix), ipSuffix).toThrow(TypeError);
  });

  it('denied wins over allowed; comparisons ignore case, one trailing dot, and use punycode and canonical IPs', () => {
    expect(check('https://a.example/c', { allowedHosts: ['a.example'], deniedHosts: ['a.example'] })).toMatchObject({ reason: 'host_denied' });
    expect(check('https://a.example./c', { deniedHosts: ['A.Example'] })).toMatchObject({ reason: 'host_denied' });
    expect(check('https://a.example/c', { deniedHosts: ['a.example.'] })).toMatchObject({ reason: 'host_denied' });
    // An empty label is no host name: `a.example..` slipped past the deny list for `a.example` (review 2026-12-06).
    for (const raw of ['https://a.example../c', 'https://a..example/c', 'https://a.example.../c']) {
      expect(check(raw, { deniedHosts: ['a.example'] }), raw).toMatchObject({ ok: false, reason: 'not_url' });
      expect(check(raw, {}), raw).toMatchObject({ ok: false, reason: 'not_url' });
    }
    expect(check('https://xn--bcher-kva.example/c', { deniedHosts: ['bücher.example'] })).toMatchObject({ reason: 'host_denied' });
    expect(check('https://[2606:4700::1111]/c', { deniedHosts: ['[2606:4700:0::1111]'] })).toMatchObject({ reason: 'host_denied' });
    expect(check('https://93.184.216.34:8443/c', { deniedHosts: ['93.184.216.34:8443'] })).toMatchObject({ reason: 'host_denied' });
    expect(check('https://93.184.216.34/c', { deniedHosts: ['93.184.216.34:8443'] }).ok).toBe(true);
  });

  it('malformed entries are configuration errors', () => {
    for (const entry of ['', 'https://a.example', 'a.example/path', 'a.example:0', 'a.example:70000', '*.', '*', 'a.*.example', '**.example', 'a b', 'a.example:x', 'user@a.example', 'a.example?x', 'a.example#x', 'a.example\\x', 'a%2eexample', '*.a.example@b.example']) {
      expect(() => parseHostPattern(entry), entry).toThrow(TypeError);
    }
    expect(parseHostPattern('[::1]:8080')).toEqual({ host: '[::1]', wildcard: false, port: 8080 });
  });
});

describe('insecure http (tests only): the flag AND this exact host:port in the allowed list', () => {
  const url = 'http://127.0.0.1:4567/client.json';
  it('accepted only with both', () => {
    expect(checkClientIdUrl(url, { dangerouslyAllowInsecureHttp: true, allowedHosts: ['127.0.0.1:4567'] })).toMatchObject({ ok: true, insecureHttp: true, port: 4567 });
    expect(checkClientIdUrl(url, { allowedHosts: ['127.0.0.1:4567'] })).toMatchObject({ ok: false, reason: 'scheme' });
    expect(checkClientIdUrl(url, { dangerouslyAllowInsecureHttp: true })).toMatchObject({ ok: false, reason: 'scheme' });
    expect(checkClientIdUrl(url, { dangerouslyAllowInsecureHttp: true, allowedHosts: ['127.0.0.1'] })).toMatchObject({ ok: false, reason: 'scheme' });
    expect(checkClientIdUrl('http://127.0.0.1/client.json', { dangerouslyAllowInsecureHttp: true, allowedHosts: ['127.0.0.1:80'] })).toMatchObject({ ok: true, insecureHttp: true });
    expect(checkClientIdUrl('http://a.example:4567/c', { dangerouslyAllowInsecureHttp: true, allowedHosts: ['*.example:4567'] })).toMatchObject({ ok: false, reason: 'scheme' });
  });

  it('the allowance does not relax the URL rules', () => {
    const policy = { dangerouslyAllowInsecureHttp: true, allowedHosts: ['127.0.0.1:4567'] };
    expect(checkClientIdUrl('http://127.0.0.1:4567/a/../c', policy)).toMatchObject({ reason: 'dot_segments' });
    expect(checkClientIdUrl('http://127.0.0.1:4567/c#x', policy)).toMatchObject({ reason: 'fragment' });
    expect(checkClientIdUrl('http://u@127.0.0.1:4567/c', policy)).toMatchObject({ reason: 'userinfo' });
  });
});
