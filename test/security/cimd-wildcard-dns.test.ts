/**
 * CIMD-05 (fetches at once): distinct names that resolve to one silent server. MAX_FETCHES_PER_HOST
 * counts host names, so a wildcard DNS record (`n0.wild.example`, `n1.wild.example`, …) asked for
 * from enough client addresses could hold every fetch slot of the process on one server that
 * never answers. MAX_FETCHES_PER_DESTINATION (src/cimd/resolve.ts) counts the address each fetch
 * dials (src/cimd/connect.ts) — IPv6 by its /64, an IPv4 carried in IPv6 (NAT64, mapped) as that
 * IPv4: an address without room is skipped for the name's next one, and when none had room the
 * fetch is `busy` after its one lookup, with nothing handed to the connector and no connection;
 * another address is fetched meanwhile; busy is not remembered; an address whose connection
 * failed holds no place, and a fetch that ended — answered, refused or on its deadline — gives
 * its place back.
 *
 * Every listener is on 127.0.0.1; the fetcher's test route maps the fake public addresses to them
 * (test/helpers/cimd.ts), and counts what it was handed — the proof that a refused fetch dialled
 * nothing.
 */
import { afterEach, beforeAll, expect, it } from 'vitest';
import { createClientIdMetadataResolver, MAX_CONCURRENT_FETCHES, MAX_FETCHES_PER_DESTINATION, MAX_FETCHES_PER_REQUESTER, requesterOf } from '../../src/cimd/resolve.js';
import { fakeResolver, httpsServer, recordingRoute, selfSignedCertificate, silentServer, type Listener } from '../helpers/cimd.js';

/** Public addresses nothing here ever reaches: the route maps them to loopback. */
const WILD = '93.184.216.34';
const OTHER = '93.184.216.35';
const DEAD = '93.184.216.36';

let tls: { cert: string; key: string };
const listeners: Listener[] = [];
beforeAll(() => {
  tls = selfSignedCertificate(['*.wild.example', 'other.example', '*.other.example']);
});
afterEach(async () => {
  await Promise.all(listeners.splice(0).map((l) => l.close()));
});

/** Port 1 of 127.0.0.1: nothing listens there, so a connection is refused at once (a port freed by a test could be taken by another test file's listener). */
const REFUSING_PORT = 1;

async function until(condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 500 && !condition(); i++) await new Promise((resolve) => setTimeout(resolve, 10));
  expect(condition(), what).toBe(true);
}

/** Each lookup from an address of its own: MAX_FETCHES_PER_REQUESTER is not what refuses here. */
const from = (i: number) => requesterOf(`198.51.100.${i}`);

it('the bounds let a wildcard record hold a share of the slots only', () => {
  expect(MAX_FETCHES_PER_DESTINATION).toBeLessThan(MAX_CONCURRENT_FETCHES);
  expect(MAX_FETCHES_PER_DESTINATION).toBeGreaterThan(MAX_FETCHES_PER_REQUESTER);
});

it(`holds at most ${MAX_FETCHES_PER_DESTINATION} connections to the one address of a wildcard record; the next name is busy with no connection, another address is fetched, and a failed connection holds no place`, async () => {
  const silent = await silentServer();
  const other = await httpsServer(tls, (_req, res) => {
    res.statusCode = 404;
    res.end();
  });
  listeners.push(silent, other);
  // Every name of the record answers DEAD first (refused at once) and WILD next.
  const answers: Record<string, string[]> = { 'other.example': [OTHER], 'dead.example': [DEAD], 'both.other.example': [WILD, OTHER] };
  const lookup = fakeResolver((hostname) => (hostname.endsWith('.wild.example') ? [DEAD, WILD] : (answers[hostname] ?? [])));
  const route = recordingRoute({ [WILD]: silent.port, [OTHER]: other.port, [DEAD]: REFUSING_PORT });
  const resolver = createClientIdMetadataResolver({ fetch: { lookup, testOnlyRoute: route, ca: tls.cert }, admission: { redirectSchemes: [] }, now: Date.now });
  const name = (i: number) => `https://n${i}.wild.example/client.json`;

  const held = Array.from({ length: MAX_FETCHES_PER_DESTINATION }, (_, i) => resolver.get(name(i), from(i)));
  await until(() => silent.connections === MAX_FETCHES_PER_DESTINATION, 'each name reached the silent server after DEAD refused');
  const dialled = route.seen.length;
  expect(route.seen.filter((t) => t.address === DEAD)).toHaveLength(MAX_FETCHES_PER_DESTINATION);

  const refused = await resolver.get(name(99), from(99));
  expect(refused).toMatchObject({ ok: false, reason: 'busy', fromCache: false });
  expect(lookup.lookups, 'its one lookup was made').toContain('n99.wild.example');
  expect(route.seen.slice(dialled).map((t) => t.address), 'DEAD was tried (its failed connections hold nothing), WILD was not dialled').toEqual([DEAD]);
  expect(silent.connections, 'no connection to the silent server').toBe(MAX_FETCHES_PER_DESTINATION);
  expect(resolver.entries().find((e) => e.url === name(99)), 'busy is neither remembered nor counted').toBeUndefined();

  // A name whose first address has no room is dialled at its next one.
  let seen = route.seen.length;
  expect(await resolver.get('https://both.other.example/client.json', from(102))).toMatchObject({ ok: false, reason: 'bad_status' });
  expect(route.seen.slice(seen).map((t) => t.address), 'WILD skipped, OTHER dialled').toEqual([OTHER]);
  expect(other.connections).toBe(1);

  // Another address is fetched at once; DEAD alone is dialled (its place was given back each time).
  expect(await resolver.get('https://other.example/client.json', from(100))).toMatchObject({ ok: false, reason: 'bad_status' });
  expect(other.connections).toBe(2);
  // A fetch that ended after its answer gives its place back: more than the bound, one after another, each reach it.
  for (let i = 1; i <= MAX_FETCHES_PER_DESTINATION; i++) expect(await resolver.get(`https://other.example/c${i}.json`, from(100)), `fetch ${i + 1}`).toMatchObject({ ok: false, reason: 'bad_status' });
  expect(other.connections).toBe(MAX_FETCHES_PER_DESTINATION + 2);
  expect(await resolver.get('https://dead.example/client.json', from(101))).toMatchObject({ ok: false, reason: 'connect_failed' });

  // The silent server goes away: its fetches end, their places are given back, the refused name is fetched.
  await silent.close();
  for (const result of await Promise.all(held)) expect(result.ok).toBe(false);
  seen = route.seen.length;
  expect(await resolver.get(name(99), from(99))).toMatchObject({ ok: false, reason: 'connect_failed' });
  expect(route.seen.slice(seen).map((t) => t.address), 'WILD dialled now').toEqual([DEAD, WILD]);
});

it('counts an IPv6 destination by its /64: distinct addresses of one /64 share the bound, the next /64 does not', async () => {
  const silent = await silentServer();
  listeners.push(silent);
  const sameNet = (i: number) => `2606:2800:220:1::${(i + 1).toString(16)}`; // 2606:2800:220:1::/64
  const nextNet = '2606:2800:220:2::1'; // the next /64 (the same /56)
  const { seen, resolver } = routedTo(silent, (hostname) => {
    const n = /^n(\d+)\.six\.example$/.exec(hostname)?.[1];
    return hostname === 'next.six.example' ? [nextNet] : n === undefined ? [] : [sameNet(Number(n))];
  });
  const held = Array.from({ length: MAX_FETCHES_PER_DESTINATION }, (_, i) => resolver.get(`https://n${i}.six.example/client.json`, from(i)));
  await until(() => silent.connections === MAX_FETCHES_PER_DESTINATION, 'each name reached the silent server');
  expect(new Set(seen).size, 'distinct addresses').toBe(MAX_FETCHES_PER_DESTINATION);

  expect(await resolver.get('https://n4000.six.example/client.json', from(99))).toMatchObject({ ok: false, reason: 'busy' });
  expect(seen, 'nothing dialled for it').not.toContain(sameNet(4000));
  const next = resolver.get('https://next.six.example/client.json', from(100));
  await until(() => silent.connections === MAX_FETCHES_PER_DESTINATION + 1, 'the next /64 is dialled');
  expect(seen.at(-1)).toBe(nextNet);

  await silent.close();
  await Promise.all([...held, next]);
});

it('counts an IPv4 carried in IPv6 (NAT64, mapped) as that IPv4: one budget with the IPv4 itself, another IPv4 apart', async () => {
  const silent = await silentServer();
  listeners.push(silent);
  const NAT64 = '64:ff9b::5db8:d822'; // 93.184.216.34 through a DNS64 resolver (RFC 6052)
  const answers: Record<string, string[]> = { 'mapped.example': [`::ffff:${WILD}`], 'plain.example': [WILD], 'google.example': ['64:ff9b::808:808'] };
  const { seen, resolver } = routedTo(silent, (hostname) => (hostname.endsWith('.nat64.example') ? [NAT64] : (answers[hostname] ?? [])));
  const held = Array.from({ length: MAX_FETCHES_PER_DESTINATION }, (_, i) => resolver.get(`https://n${i}.nat64.example/client.json`, from(i)));
  await until(() => silent.connections === MAX_FETCHES_PER_DESTINATION, 'each name reached the silent server');

  expect(await resolver.get('https://mapped.example/client.json', from(98))).toMatchObject({ ok: false, reason: 'busy' });
  expect(await resolver.get('https://plain.example/client.json', from(99))).toMatchObject({ ok: false, reason: 'busy' });
  expect(seen, 'neither dialled').toEqual(Array(MAX_FETCHES_PER_DESTINATION).fill(NAT64));
  const other = resolver.get('https://google.example/client.json', from(100));
  await until(() => silent.connections === MAX_FETCHES_PER_DESTINATION + 1, 'another IPv4 behind the same NAT64 prefix is dialled');

  await silent.close();
  await Promise.all([...held, other]);
});

it('gives back the place of a fetch that ended on its deadline', async () => {
  const silent = await silentServer();
  listeners.push(silent);
  const { seen, resolver } = routedTo(silent, () => [WILD], { timeoutMs: 300, maxFetchesPerDestination: 1 });
  const first = resolver.get('https://a.wild.example/client.json', from(1));
  await until(() => silent.connections === 1, 'the first fetch is connected');
  expect(await resolver.get('https://b.wild.example/client.json', from(2))).toMatchObject({ ok: false, reason: 'busy' });
  expect(await first).toMatchObject({ ok: false, reason: 'timeout' });
  const second = resolver.get('https://b.wild.example/client.json', from(2));
  await until(() => silent.connections === 2, 'the place came back with the deadline');
  expect(seen).toEqual([WILD, WILD]);
  expect(await second).toMatchObject({ ok: false, reason: 'timeout' });
});

/** A resolver whose every checked address is sent to `silent`, recording what it was handed. */
function routedTo(silent: Listener, answers: (hostname: string) => string[], extra: { timeoutMs?: number; maxFetchesPerDestination?: number } = {}) {
  const seen: string[] = [];
  const testOnlyRoute = (target: { address: string }) => {
    seen.push(target.address);
    return { address: '127.0.0.1', port: silent.port };
  };
  const resolver = createClientIdMetadataResolver({
    fetch: { lookup: fakeResolver(answers), testOnlyRoute, ca: tls.cert, ...(extra.timeoutMs ? { timeoutMs: extra.timeoutMs } : {}) },
    admission: { redirectSchemes: [] },
    now: Date.now,
    ...(extra.maxFetchesPerDestination ? { maxFetchesPerDestination: extra.maxFetchesPerDestination } : {}),
  });
  return { seen, resolver };
}
