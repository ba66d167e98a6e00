/**
 * AT-20 SSRF through CIMD (CIMD-05, CIMD-01; issue 12): a client_id URL must not make P connect
 * to anything but a public address it checked, follow a redirect, read a huge document or hang.
 *
 * How the tests prove "no connection": every listener is on 127.0.0.1 and counts accepted
 * connections. The fetcher's test route (`testOnlyRoute`, see src/cimd/fetch.ts) sends every
 * address that PASSES the policy to a loopback port — the fake public address to the document
 * server, anything else to the counting "internal" listener — so a policy that let a private
 * address through would be seen there. IP-literal URLs name the internal listener's port too.
 * Pre-connect refusals: 0 connections, nothing handed to the route. Post-connect refusals
 * (redirect, size, time): the redirect target is never contacted, the body never read to the end.
 */
import { createServer, type AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { fetchClientMetadata, type CimdFetchOptions } from '../../src/cimd/fetch.js';
import { fakeResolver, httpServer, httpsServer, recordingRoute, selfSignedCertificate, silentServer, type Listener } from '../helpers/cimd.js';

/** A public address that nothing in the tests ever reaches: the route maps it to loopback. */
const FAKE_PUBLIC = '93.184.216.34';
const OTHER_PUBLIC = '93.184.216.35';
const HOST = 'client.example';

let tls: { cert: string; key: string };
let internal: Listener; // the "internal service": any connection P makes by mistake lands here
let docs: Listener; // https server holding client.example's documents (self-signed certificate)
let silent: Listener; // accepts and never answers
const huge = { sent: 0, closed: false, finished: false };
const declared = { closed: false };

const docUrl = (path: string) => `https://${HOST}:${docs.port}${path}`;
const documentFor = (url: string) => JSON.stringify({ client_id: url, client_name: 'Test client', redirect_uris: ['http://127.0.0.1/cb'] });

beforeAll(async () => {
  tls = selfSignedCertificate([HOST]);
  internal = await httpServer((_req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end('{"secret":"internal"}');
  });
  silent = await silentServer();
  docs = await httpsServer(tls, (req, res) => {
    const url = `https://${HOST}:${docs.port}${req.url}`;
    const json = (body: string | Buffer, type = 'application/json') => {
      res.setHeader('content-type', type);
      res.end(body);
    };
    switch (req.url) {
      case '/client.json':
        return json(documentFor(url));
      case '/redirect-internal':
      case '/redirect-internal-307':
      case '/redirect-internal-301':
        res.statusCode = req.url.endsWith('307') ? 307 : req.url.endsWith('301') ? 301 : 302;
        res.setHeader('location', `http://127.0.0.1:${internal.port}/secret`);
        return res.end();
      case '/redirect-same-host':
        res.statusCode = 302;
        res.setHeader('location', '/client.json');
        return res.end();
      case '/huge-chunked': {
        // 1 MiB, paced at 1 KiB per 2 ms (> 2 s in all) so reading it all would show.
        res.setHeader('content-type', 'application/json');
        Object.assign(huge, { sent: 0, closed: false, finished: false });
        res.on('close', () => (huge.closed = true));
        res.on('finish', () => (huge.finished = true));
        const chunk = Buffer.alloc(1024, 0x20);
        const pump = () => {
          if (res.destroyed) return;
          if (huge.sent >= 1024 * 1024) return void res.end();
          res.write(chunk);
          huge.sent += chunk.length;
          setTimeout(pump, 2);
        };
        return pump();
      }
      case '/huge-declared':
        declared.closed = false;
        res.on('close', () => (declared.closed = true));
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(1024 * 1024) });
        return res.flushHeaders(); // and never a byte of body
      case '/slow-headers':
        return; // never answers
      case '/trickle': {
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': '100' });
        const timer = setInterval(() => (res.destroyed ? clearInterval(timer) : res.write(' ')), 50);
        return res.on('close', () => clearInterval(timer));
      }
      case '/html':
        return json(documentFor(url), 'text/html');
      case '/javascript':
        return json(documentFor(url), 'application/javascript');
      case '/no-type':
        return res.end(documentFor(url));
      case '/latin1':
        return json(documentFor(url), 'application/json; charset=iso-8859-1');
      case '/not-json':
        return json('<html>not json</html>');
      case '/bad-utf8':
        return json(Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d]));
      case '/gzip':
        res.setHeader('content-encoding', 'gzip');
        return json(gzipSync(documentFor(url)));
      case '/status-404':
      case '/status-500':
      case '/status-204':
        res.statusCode = Number(req.url.slice(-3));
        return res.end();
      default:
        res.statusCode = 404;
        return res.end();
    }
  });
});
afterAll(async () => {
  await Promise.all([internal?.close(), docs?.close(), silent?.close()]);
});

/** Options that route the fake public address to the document server and all else inward. */
function guarded(extra: CimdFetchOptions = {}) {
  const lookup = fakeResolver({ [HOST]: [FAKE_PUBLIC], 'localhost': ['127.0.0.1'] });
  const route = recordingRoute({ [FAKE_PUBLIC]: docs.port }, internal.port);
  return { lookup, route, options: { lookup, testOnlyRoute: route, ca: tls.cert, ...extra } satisfies CimdFetchOptions };
}

/** The pre-connect refusal contract: the reason, no connection anywhere, nothing routed. */
async function expectRefusedBeforeConnect(url: string, reason: string, extra: CimdFetchOptions = {}) {
  const before = { internal: internal.connections, docs: docs.connections };
  const { route, lookup, options } = guarded(extra);
  const result = await fetchClientMetadata(url, { ...options, ...extra });
  expect(result, url).toMatchObject({ ok: false, reason });
  expect(route.seen, `${url}: nothing may be handed to the connector`).toEqual([]);
  expect(internal.connections, `${url}: no connection to the internal listener`).toBe(before.internal);
  expect(docs.connections, `${url}: no connection at all`).toBe(before.docs);
  return { result, lookups: lookup.lookups };
}

describe('AT-20 refused addresses: IP-literal client_ids (no DNS, no connection)', () => {
  it.each([
    ['127.0.0.1', 'loopback'],
    ['10.0.0.1', 'private'],
    ['172.16.5.4', 'private'],
    ['192.168.1.1', 'private'],
    ['169.254.169.254', 'link_local'],
    ['100.64.0.1', 'cgnat'],
    ['0.0.0.0', 'unspecified'],
    ['224.0.0.1', 'multicast'],
    ['255.255.255.255', 'broadcast'],
    ['240.0.0.1', 'reserved'],
    ['192.0.2.10', 'documentation'],
    ['198.18.0.1', 'benchmarking'],
    ['[::1]', 'loopback'],
    ['[::]', 'unspecified'],
    ['[::ffff:7f00:1]', 'loopback'], // the canonical spelling of [::ffff:127.0.0.1]
    ['[::ffff:a9fe:a9fe]', 'link_local'], // ::ffff:169.254.169.254
    ['[64:ff9b::7f00:1]', 'loopback'], // NAT64 of 127.0.0.1
    ['[64:ff9b::a00:1]', 'private'], // NAT64 of 10.0.0.1
    ['[::7f00:1]', 'loopback'], // IPv4-compatible ::127.0.0.1
    ['[fe80::1]', 'link_local'],
    ['[fd00::1]', 'unique_local'],
    ['[ff02::1]', 'multicast'],
    ['[2001:db8::1]', 'documentation'],
    ['[2002:7f00:1::1]', '6to4'],
    ['[2001::1]', 'teredo'],
  ])('https://%s/ → not_public_address (%s)', async (host, why) => {
    for (const url of [`https://${host}:${internal.port}/client.json`, `https://${host}/latest/meta-data/`]) {
      const { result, lookups } = await expectRefusedBeforeConnect(url, 'not_public_address');
      expect(lookups).toEqual([]);
      expect(result.ok === false && result.detail).toContain(why);
    }
  });

  it.each([
    'https://2130706433/x', // decimal 127.0.0.1
    'https://0177.0.0.1/x', // octal
    'https://0x7f.0.0.1/x', // hex
    'https://0x7f000001/x',
    'https://127.1/x', // short form
    'https://017700000001/x',
    'https://[::ffff:127.0.0.1]/x',
    'https://[0:0:0:0:0:ffff:7f00:1]/x',
    'https://169.254.169.254./latest/meta-data/', // a trailing dot: still the address
    'https://0xa9.0xfe.0xa9.0xfe/latest/meta-data/',
  ])('obfuscated %s is refused as written, and its normalised form is refused as an address', async (raw) => {
    const normalised = new URL(raw).href;
    expect(normalised).not.toBe(raw);
    await expectRefusedBeforeConnect(raw, 'not_canonical');
    const { lookups } = await expectRefusedBeforeConnect(normalised, 'not_public_address');
    expect(lookups).toEqual([]);
  });
});

describe('AT-20 refused addresses: names resolving inside (one lookup, no connection)', () => {
  it.each([
    [['127.0.0.1'], 'loopback'],
    [['10.1.2.3'], 'private'],
    [['169.254.169.254'], 'link_local'],
    [['::1'], 'loopback'],
    [['::ffff:127.0.0.1'], 'loopback'],
    [['::ffff:7f00:1'], 'loopback'],
    [['64:ff9b::7f00:1'], 'loopback'],
    [['64:ff9b::a9fe:a9fe'], 'link_local'],
    [['fd12:3456::1'], 'unique_local'],
    [['100.100.100.100'], 'cgnat'],
    [[FAKE_PUBLIC, '10.0.0.5'], 'private'], // one public and one private: refused, not filtered
    [['10.0.0.5', FAKE_PUBLIC], 'private'],
    [[FAKE_PUBLIC, '::1'], 'loopback'],
  ])('a name resolving to %j → not_public_address (%s)', async (addresses, why) => {
    const lookup = fakeResolver({ 'inside.example': addresses });
    const { result } = await expectRefusedBeforeConnect('https://inside.example/client.json', 'not_public_address', { lookup });
    expect(lookup.lookups).toEqual(['inside.example']);
    expect(result.ok === false && result.detail).toContain(why);
  });

  it('localhost resolves to loopback: refused', async () => {
    await expectRefusedBeforeConnect(`https://localhost:${internal.port}/client.json`, 'not_public_address');
  });

  it('DNS failure, an empty answer and a non-address answer: dns_failed, no connection', async () => {
    await expectRefusedBeforeConnect('https://nowhere.example/client.json', 'dns_failed');
    await expectRefusedBeforeConnect('https://empty.example/client.json', 'dns_failed', { lookup: fakeResolver({ 'empty.example': [] }) });
    await expectRefusedBeforeConnect('https://odd.example/client.json', 'dns_failed', { lookup: fakeResolver({ 'odd.example': ['localhost'] }) });
  });
});

describe('AT-20 DNS rebinding: one lookup, and the connection goes to the checked address', () => {
  it('a name that is public at the check and 127.0.0.1 afterwards is looked up once; the socket goes to the public address', async () => {
    const lookup = fakeResolver((_host, call) => (call === 1 ? [FAKE_PUBLIC] : ['127.0.0.1']));
    const route = recordingRoute({ [FAKE_PUBLIC]: docs.port }, internal.port);
    const before = internal.connections;
    const result = await fetchClientMetadata(docUrl('/client.json'), { lookup, testOnlyRoute: route, ca: tls.cert });
    expect(result).toMatchObject({ ok: true, address: FAKE_PUBLIC, document: { client_id: docUrl('/client.json') } });
    expect(lookup.lookups).toEqual([HOST]); // no second lookup, by us, undici or node:net
    expect(route.seen).toEqual([{ address: FAKE_PUBLIC, family: 4, port: docs.port }]);
    expect(internal.connections).toBe(before);
  });

  it('TLS is verified for the URL host although the socket was opened to an IP: SNI and Host are the name', async () => {
    const { options } = guarded();
    const result = await fetchClientMetadata(docUrl('/client.json'), options);
    expect(result.ok).toBe(true);
    const seen = docs.requests.at(-1);
    expect(seen).toMatchObject({ method: 'GET', url: '/client.json', host: `${HOST}:${docs.port}`, servername: HOST, accept: 'application/json' });
  });

  it('a certificate for another name, or one P does not trust, is tls_failed', async () => {
    const other = guarded({ lookup: fakeResolver({ 'other.example': [FAKE_PUBLIC] }) });
    expect(await fetchClientMetadata(`https://other.example:${docs.port}/client.json`, other.options)).toMatchObject({ ok: false, reason: 'tls_failed' });
    const { ca: _ca, ...untrusted } = guarded().options;
    expect(await fetchClientMetadata(docUrl('/client.json'), untrusted)).toMatchObject({ ok: false, reason: 'tls_failed' });
  });

  it('only checked addresses are tried, in order: a refused first connection moves on to the next checked one', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const closedPort = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const lookup = fakeResolver({ [HOST]: [OTHER_PUBLIC, FAKE_PUBLIC] });
    const route = recordingRoute({ [OTHER_PUBLIC]: closedPort, [FAKE_PUBLIC]: docs.port });
    const result = await fetchClientMetadata(docUrl('/client.json'), { lookup, testOnlyRoute: route, ca: tls.cert });
    expect(result).toMatchObject({ ok: true, address: FAKE_PUBLIC });
    expect(route.seen.map((t) => t.address)).toEqual([OTHER_PUBLIC, FAKE_PUBLIC]);
    expect(lookup.lookups).toEqual([HOST]);
  });
});

describe('AT-20 client_id shape and trust policy: refused before DNS (CIMD-01)', () => {
  it.each([
    ['http://client.example/client.json', 'scheme'],
    ['ftp://client.example/client.json', 'scheme'],
    ['file:///etc/passwd', 'scheme'],
    [`gopher://127.0.0.1:${70}/x`, 'scheme'],
    ['https://user@client.example/client.json', 'userinfo'],
    ['https://client.example@127.0.0.1/client.json', 'userinfo'],
    ['https://client.example/client.json#x', 'fragment'],
    ['https://client.example/client.json#', 'fragment'],
    ['https://client.example', 'no_path'],
    ['https://client.example?x=1', 'no_path'],
    ['https://client.example/a/../client.json', 'dot_segments'],
    ['https://client.example/a/%2e%2e/client.json', 'dot_segments'],
    ['https://client.example/./client.json', 'dot_segments'],
    ['https://CLIENT.example/client.json', 'not_canonical'],
    ['https://client.example:443/client.json', 'not_canonical'],
    ['not a url', 'not_url'],
  ])('%s → %s', async (url, reason) => {
    const { lookups } = await expectRefusedBeforeConnect(url, reason);
    expect(lookups).toEqual([]);
  });

  it('deniedHosts (also with a trailing dot or as *.domain) and allowedHosts are applied before any lookup', async () => {
    for (const [url, extra, reason] of [
      ['https://evil.example/client.json', { deniedHosts: ['evil.example'] }, 'host_denied'],
      ['https://evil.example./client.json', { deniedHosts: ['evil.example'] }, 'host_denied'],
      ['https://a.b.corp.example/client.json', { deniedHosts: ['*.corp.example'] }, 'host_denied'],
      [docUrl('/client.json'), { allowedHosts: [HOST], deniedHosts: [`${HOST}:${docs.port}`] }, 'host_denied'],
      ['https://elsewhere.example/client.json', { allowedHosts: [HOST] }, 'host_not_allowed'],
      [docUrl('/client.json'), { allowedHosts: [`${HOST}:1`] }, 'host_not_allowed'],
    ] as const) {
      const { lookups } = await expectRefusedBeforeConnect(url, reason, extra);
      expect(lookups, url).toEqual([]);
    }
    // and an allowed host still has to resolve to public addresses
    await expectRefusedBeforeConnect('https://inside.example/client.json', 'not_public_address', {
      allowedHosts: ['inside.example'],
      lookup: fakeResolver({ 'inside.example': ['10.0.0.1'] }),
    });
    const ok = await fetchClientMetadata(docUrl('/client.json'), guarded({ allowedHosts: [HOST] }).options);
    expect(ok.ok).toBe(true);
  });
});

describe('AT-20 the insecure-http allowance is for one exact loopback host:port only', () => {
  let plain: Listener;
  beforeAll(async () => {
    plain = await httpServer((req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(documentFor(`http://127.0.0.1:${plain.port}${req.url}`));
    });
  });
  afterAll(() => plain.close());

  it('http://127.0.0.1:port with the flag AND that exact host:port allowed: fetched (one connection)', async () => {
    const url = `http://127.0.0.1:${plain.port}/client.json`;
    const result = await fetchClientMetadata(url, { dangerouslyAllowInsecureHttp: true, allowedHosts: [`127.0.0.1:${plain.port}`] });
    expect(result).toMatchObject({ ok: true, address: '127.0.0.1', document: { client_id: url } });
    expect(plain.connections).toBe(1);
  });

  it('without the flag, without the port in the list, or on another port: scheme, no connection', async () => {
    const before = plain.connections;
    const url = `http://127.0.0.1:${plain.port}/client.json`;
    for (const extra of [
      { allowedHosts: [`127.0.0.1:${plain.port}`] },
      { dangerouslyAllowInsecureHttp: true, allowedHosts: ['127.0.0.1'] },
      { dangerouslyAllowInsecureHttp: true, allowedHosts: ['127.0.0.1', `localhost:${plain.port}`] },
      { dangerouslyAllowInsecureHttp: false, allowedHosts: [`127.0.0.1:${plain.port}`] },
    ]) {
      await expectRefusedBeforeConnect(url, 'scheme', extra);
    }
    await expectRefusedBeforeConnect(url, 'host_not_allowed', { dangerouslyAllowInsecureHttp: true, allowedHosts: [`127.0.0.1:${plain.port + 1}`] });
    expect(plain.connections).toBe(before);
  });

  it('the allowance accepts loopback only (a private or public address is refused) and never covers https', async () => {
    const lookup = fakeResolver({ 'dev.example': ['10.0.0.9'], 'pub.example': [FAKE_PUBLIC] });
    await expectRefusedBeforeConnect(`http://dev.example:${plain.port}/client.json`, 'insecure_http_not_loopback', {
      dangerouslyAllowInsecureHttp: true, allowedHosts: [`dev.example:${plain.port}`], lookup,
    });
    await expectRefusedBeforeConnect(`http://pub.example:${plain.port}/client.json`, 'insecure_http_not_loopback', {
      dangerouslyAllowInsecureHttp: true, allowedHosts: [`pub.example:${plain.port}`], lookup,
    });
    await expectRefusedBeforeConnect(`https://127.0.0.1:${plain.port}/client.json`, 'not_public_address', {
      dangerouslyAllowInsecureHttp: true, allowedHosts: [`127.0.0.1:${plain.port}`],
    });
  });
});

describe('AT-20 after connecting: no redirect followed, no huge or slow document read', () => {
  it.each(['/redirect-internal', '/redirect-internal-301', '/redirect-internal-307'])('%s (3xx to http://127.0.0.1:internal) → redirect; the target is never contacted', async (path) => {
    const before = internal.connections;
    const result = await fetchClientMetadata(docUrl(path), guarded().options);
    expect(result).toMatchObject({ ok: false, reason: 'redirect' });
    expect(internal.connections).toBe(before);
  });

  it('a redirect to the same host is not followed either (one request)', async () => {
    const before = docs.requests.length;
    const result = await fetchClientMetadata(docUrl('/redirect-same-host'), guarded().options);
    expect(result).toMatchObject({ ok: false, reason: 'redirect' });
    expect(docs.requests.slice(before).map((r) => r.url)).toEqual(['/redirect-same-host']);
  });

  it('a 1 MiB document without Content-Length: too_large, the read stops after 5 KiB and the server is cut off', async () => {
    const result = await fetchClientMetadata(docUrl('/huge-chunked'), guarded().options);
    expect(result).toMatchObject({ ok: false, reason: 'too_large' });
    await vi.waitFor(() => expect(huge.closed).toBe(true), { timeout: 5_000 });
    expect(huge.finished).toBe(false);
    expect(huge.sent).toBeLessThan(256 * 1024);
  });

  it('Content-Length: 1048576 is refused on the headers, without waiting for any body', async () => {
    const started = Date.now();
    const result = await fetchClientMetadata(docUrl('/huge-declared'), guarded().options); // default 5 s deadline
    expect(result).toMatchObject({ ok: false, reason: 'too_large' });
    expect(Date.now() - started).toBeLessThan(2_500);
    await vi.waitFor(() => expect(declared.closed).toBe(true), { timeout: 5_000 });
  });

  it('a server that never answers, one that trickles its body, a TLS peer that never speaks and a resolver that never answers: timeout on one deadline', async () => {
    for (const [url, extra] of [
      [docUrl('/slow-headers'), {}],
      [docUrl('/trickle'), {}], // 1 byte / 50 ms: an idle timer would never fire
      [docUrl('/client.json'), { testOnlyRoute: recordingRoute({ [FAKE_PUBLIC]: silent.port }) }],
      [docUrl('/client.json'), { lookup: () => new Promise<never>(() => undefined) }],
    ] as const) {
      const started = Date.now();
      const result = await fetchClientMetadata(url, { ...guarded().options, timeoutMs: 300, ...extra });
      expect(result, url).toMatchObject({ ok: false, reason: 'timeout' });
      expect(Date.now() - started).toBeLessThan(3_000);
    }
  });

  it.each([
    ['/html', 'bad_content_type'],
    ['/javascript', 'bad_content_type'],
    ['/no-type', 'bad_content_type'],
    ['/latin1', 'bad_content_type'],
    ['/not-json', 'not_json'],
    ['/bad-utf8', 'not_json'],
    ['/gzip', 'bad_response'],
    ['/status-404', 'bad_status'],
    ['/status-500', 'bad_status'],
    ['/status-204', 'bad_status'],
  ])('%s → %s', async (path, reason) => {
    const result = await fetchClientMetadata(docUrl(path), guarded().options);
    expect(result).toMatchObject({ ok: false, reason });
  });
});
