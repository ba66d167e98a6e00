/**
 * CIMD-05: a client_id whose host's DNS never answers must not stall P (src/cimd/dns.ts). The
 * default resolver asks DNS through c-ares, not getaddrinfo on libuv's four thread-pool threads,
 * and cancels its queries at the fetch's deadline; names P answers itself (RFC 6761 `localhost`)
 * cause no query. Each test runs the fetcher's default resolver (`dnsServers` only points it at a
 * DNS server on 127.0.0.1, which records every question), the real address policy, pinning and
 * TLS; the document server and the "internal" listener count their connections.
 */
import { pbkdf2 } from 'node:crypto';
import { promisify } from 'node:util';
import { Resolver as DnsResolver } from 'node:dns/promises';
import type { NetworkInterfaceInfo } from 'node:os';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createDnsResolver, hasGlobalIpv6 } from '../../src/cimd/dns.js';
import { fetchClientMetadata, type CimdFetchOptions } from '../../src/cimd/fetch.js';
import { httpServer, httpsServer, recordingRoute, selfSignedCertificate, type Listener } from '../helpers/cimd.js';
import { dnsServer, type DnsServer } from '../helpers/dns-server.js';

const FAKE_PUBLIC_V4 = '93.184.216.34';
const FAKE_PUBLIC_V6 = '2606:2800:220:1:248:1893:25c8:1946';
const HOST = 'client.example';

let tls: { cert: string; key: string };
let docs: Listener;
let internal: Listener;
let dns: DnsServer;
let silentDns: DnsServer;

beforeAll(async () => {
  tls = selfSignedCertificate([HOST]);
  docs = await httpsServer(tls, (req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ client_id: `https://${HOST}:${docs.port}${req.url}`, client_name: 'Test client', redirect_uris: ['http://127.0.0.1/cb'] }));
  });
  internal = await httpServer((_req, res) => res.end('{"secret":"internal"}'));
  dns = await dnsServer({
    [HOST]: { A: [FAKE_PUBLIC_V4], AAAA: [FAKE_PUBLIC_V6] },
    'v4only.example': { A: [FAKE_PUBLIC_V4] },
    'inside.example': { A: [FAKE_PUBLIC_V4], AAAA: ['fd00::1'] },
    // four A records and one AAAA (GitHub Pages has four of each)
    'pages.example': { A: ['185.199.108.153', '185.199.109.153', '185.199.110.153', '185.199.111.153'], AAAA: [FAKE_PUBLIC_V6] },
  });
  silentDns = await dnsServer('silent');
});
afterAll(async () => {
  await Promise.all([docs?.close(), internal?.close(), dns?.close(), silentDns?.close()]);
});

function options(server: DnsServer, extra: CimdFetchOptions = {}) {
  const route = recordingRoute({ [FAKE_PUBLIC_V4]: docs.port, [FAKE_PUBLIC_V6]: docs.port }, internal.port);
  return { route, options: { dnsServers: [server.address], testOnlyRoute: route, ca: tls.cert, ...extra } satisfies CimdFetchOptions };
}

const iface = (address: string, internal = false) => ({ address, family: 'IPv6', internal, netmask: 'ffff::', mac: '00:00:00:00:00:00', cidr: null, scopeid: 0 }) as NetworkInterfaceInfo;
const asked = (server: DnsServer, name: string) => server.questions.filter((q) => q.name === name).map((q) => q.type);

describe('CIMD-05: the default resolver (c-ares, A and AAAA)', () => {
  it('asks A and AAAA, checks every address, connects only to a checked one, TLS verified for the name', async () => {
    const { route, options: o } = options(dns);
    const url = `https://${HOST}:${docs.port}/client.json`;
    const before = docs.connections;
    const result = await fetchClientMetadata(url, o);
    expect(result).toMatchObject({ ok: true, url });
    expect(new Set(asked(dns, HOST))).toEqual(new Set(['A', 'AAAA']));
    expect(route.seen.map((t) => t.address)).toEqual([FAKE_PUBLIC_V4]); // the first checked address answered
    expect(docs.connections).toBe(before + 1);
    expect(docs.requests.at(-1)).toMatchObject({ host: `${HOST}:${docs.port}`, servername: HOST });
  });

  it('a name with no AAAA is fetched from its A address', async () => {
    const { route, options: o } = options(dns);
    const result = await fetchClientMetadata(`https://v4only.example:${docs.port}/client.json`, { ...o, ca: tls.cert });
    // The certificate is for client.example: the fetch connects (to the checked address) and fails TLS.
    expect(result).toMatchObject({ ok: false, reason: 'tls_failed' });
    expect(route.seen.map((t) => t.address)).toEqual([FAKE_PUBLIC_V4]);
  });

  it('one private AAAA among public A addresses: not_public_address, nothing connected', async () => {
    const { route, options: o } = options(dns);
    const before = { docs: docs.connections, internal: internal.connections };
    const result = await fetchClientMetadata(`https://inside.example:${docs.port}/client.json`, o);
    expect(result).toMatchObject({ ok: false, reason: 'not_public_address', address: 'fd00::1' });
    expect(route.seen).toEqual([]);
    expect({ docs: docs.connections, internal: internal.connections }).toEqual(before);
  });

  it('a name DNS does not know (NXDOMAIN): dns_failed, nothing connected', async () => {
    const { route, options: o } = options(dns);
    const before = docs.connections + internal.connections;
    const result = await fetchClientMetadata(`https://nowhere.example:${docs.port}/client.json`, o);
    expect(result).toMatchObject({ ok: false, reason: 'dns_failed' });
    expect(result.ok === false && result.detail).toContain('ENOTFOUND');
    expect(asked(dns, 'nowhere.example').length).toBeGreaterThan(0);
    expect(route.seen).toEqual([]);
    expect(docs.connections + internal.connections).toBe(before);
  });

  it('localhost and names under .localhost are 127.0.0.1 and ::1 without a query (RFC 6761 §6.3)', async () => {
    const resolve = createDnsResolver({ servers: [dns.address] });
    const before = dns.questions.length;
    for (const name of ['localhost', 'docs.localhost', 'a.b.localhost.']) {
      expect(await resolve(name)).toEqual([
        { address: '127.0.0.1', family: 4 },
        { address: '::1', family: 6 },
      ]);
    }
    expect(await resolve('localhost.example').catch((e: NodeJS.ErrnoException) => e.code)).toBe('ENOTFOUND'); // not a localhost name: asked
    expect(dns.questions.slice(before).map((q) => q.name)).toEqual(['localhost.example', 'localhost.example']);
    // And the address policy still refuses them for an https client_id.
    const { route, options: o } = options(dns);
    const result = await fetchClientMetadata(`https://docs.localhost:${internal.port}/client.json`, o);
    expect(result).toMatchObject({ ok: false, reason: 'not_public_address' });
    expect(route.seen).toEqual([]);
  });
});

describe('CIMD-05: the order of the addresses (src/cimd/connect.ts tries four at most)', () => {
  it('interleaves the families, IPv6 first when this machine has a global IPv6 address, IPv4 first otherwise', async () => {
    const v4 = ['185.199.108.153', '185.199.109.153', '185.199.110.153', '185.199.111.153'];
    const sixFirst = await createDnsResolver({ servers: [dns.address], preferIpv6: () => true })('pages.example');
    expect(sixFirst.map((a) => a.address)).toEqual([FAKE_PUBLIC_V6, ...v4]);
    const fourFirst = await createDnsResolver({ servers: [dns.address], preferIpv6: () => false })('pages.example');
    expect(fourFirst.map((a) => a.address)).toEqual([v4[0], FAKE_PUBLIC_V6, v4[1], v4[2], v4[3]]);
    expect(hasGlobalIpv6({ lo: [iface('::1', true)], eth0: [iface('fd00::2'), iface('fe80::1')] })).toBe(false);
    expect(hasGlobalIpv6({ eth0: [iface('fe80::1'), iface('2001:db8:1::5')] })).toBe(true);
  });

  it('a host that reaches IPv6 only still gets the document of a name with four A records (review: IPv4 first never tried IPv6)', async () => {
    // Every IPv4 target goes to a closed port (what ENETUNREACH is to the connector), IPv6 to the document server.
    const closed = await httpServer(() => undefined);
    await closed.close();
    const tlsFor = selfSignedCertificate(['pages.example']);
    const pages = await httpsServer(tlsFor, (req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ client_id: `https://pages.example${req.url}`, client_name: 'Pages', redirect_uris: ['http://127.0.0.1/cb'] }));
    });
    try {
      for (const preferIpv6 of [true, false]) {
        const route = recordingRoute({ [FAKE_PUBLIC_V6]: pages.port }, closed.port);
        const lookup = createDnsResolver({ servers: [dns.address], preferIpv6: () => preferIpv6 });
        const result = await fetchClientMetadata('https://pages.example/client.json', { lookup, testOnlyRoute: route, ca: tlsFor.cert });
        expect(result, `preferIpv6 ${preferIpv6}`).toMatchObject({ ok: true, address: FAKE_PUBLIC_V6 });
        expect(route.seen.map((t) => t.address)).toEqual(preferIpv6 ? [FAKE_PUBLIC_V6] : ['185.199.108.153', FAKE_PUBLIC_V6]);
      }
    } finally {
      await pages.close();
    }
  });
});

describe('CIMD-05: the production default (no lookup, no servers given)', () => {
  it('asks through c-ares (Resolver.resolve4 and resolve6 of node:dns/promises), not getaddrinfo', async () => {
    const resolve4 = vi.spyOn(DnsResolver.prototype, 'resolve4').mockImplementation(async () => ['10.0.0.7']);
    const resolve6 = vi.spyOn(DnsResolver.prototype, 'resolve6').mockImplementation(async () => {
      throw Object.assign(new Error('queryAaaa ENODATA'), { code: 'ENODATA' });
    });
    try {
      const before = docs.connections + internal.connections;
      const result = await fetchClientMetadata('https://client.example/client.json');
      // The stub's private address was judged: the answer came from c-ares (getaddrinfo would have failed to resolve here).
      expect(result).toMatchObject({ ok: false, reason: 'not_public_address', address: '10.0.0.7' });
      expect(resolve4).toHaveBeenCalledWith('client.example');
      expect(resolve6).toHaveBeenCalledWith('client.example');
      expect(docs.connections + internal.connections).toBe(before);
    } finally {
      resolve4.mockRestore();
      resolve6.mockRestore();
    }
  });
});

describe('CIMD-05: DNS that never answers does not take the thread pool', () => {
  it('16 fetches whose DNS hangs: thread-pool work still runs at once, each fetch ends on its deadline as timeout, nothing connected', async () => {
    const { route, options: o } = options(silentDns, { timeoutMs: 1_000 });
    const before = docs.connections + internal.connections;
    const fetches = Array.from({ length: 16 }, (_, i) => fetchClientMetadata(`https://hang${i}.example/client.json`, o));
    let fetchesEnded = false;
    void Promise.all(fetches).then(() => (fetchesEnded = true));
    // Wait until every name was asked (so all 16 lookups are in flight), with a bound.
    for (let i = 0; i < 500 && new Set(silentDns.questions.map((q) => q.name)).size < 16; i++) await new Promise((r) => setImmediate(r));
    expect(new Set(silentDns.questions.map((q) => q.name)).size).toBe(16);
    // libuv's pool has 4 threads here (UV_THREADPOOL_SIZE unset): 8 jobs need all of them twice.
    await Promise.all(Array.from({ length: 8 }, () => promisify(pbkdf2)('x', 'salt', 1, 32, 'sha256')));
    expect(fetchesEnded, 'thread-pool work finished while every lookup was still waiting for DNS').toBe(false);
    for (const result of await Promise.all(fetches)) expect(result).toMatchObject({ ok: false, reason: 'timeout' });
    expect(route.seen).toEqual([]);
    expect(docs.connections + internal.connections).toBe(before);
  });

  it('the deadline cancels the lookup: its queries are abandoned (ECANCELLED), not left running', async () => {
    const resolve = createDnsResolver({ servers: [silentDns.address] });
    const deadline = new AbortController();
    const lookup = resolve('cancelled.example', deadline.signal);
    for (let i = 0; i < 500 && !silentDns.questions.some((q) => q.name === 'cancelled.example'); i++) await new Promise((r) => setImmediate(r));
    deadline.abort(new Error('deadline'));
    await expect(lookup).rejects.toMatchObject({ code: 'ECANCELLED' });
    // Aborted before it starts: no query at all.
    const before = silentDns.questions.length;
    await expect(resolve('never.example', AbortSignal.abort())).rejects.toThrow();
    expect(silentDns.questions.length).toBe(before);
  });
});
