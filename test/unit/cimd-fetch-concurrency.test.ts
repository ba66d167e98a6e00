/**
 * At most MAX_CONCURRENT_FETCHES client metadata documents are fetched at once
 * (src/cimd/resolve.ts): the cache remembers failures per URL, so distinct URLs on a silent host
 * each held a connection for the whole 5 s deadline (found by review, 2026-12-06). Beyond the
 * bound a lookup is refused as `busy` at once — the fetcher is not called — and `busy` is not
 * cached: once a fetch ends, the next lookup of that URL fetches. And at most
 * MAX_FETCHES_PER_REQUESTER of them started by one client address (IPv6 by its /56), so that one
 * address cannot take every slot with a burst of new client_ids; and at most MAX_FETCHES_PER_HOST
 * on one host, whatever the addresses asking, so that one silent host cannot either.
 */
import { expect, it } from 'vitest';
import { createClientIdMetadataResolver, MAX_CONCURRENT_FETCHES, MAX_FETCHES_PER_HOST, MAX_FETCHES_PER_REQUESTER, requesterOf } from '../../src/cimd/resolve.js';
import type { CimdFetchResult, fetchClientMetadata } from '../../src/cimd/fetch.js';

/** A resolver whose fetches start (recorded in `started`) and end only when the test resolves them (`pending`). */
function gatedResolver() {
  const pending: ((result: CimdFetchResult) => void)[] = [];
  const started: string[] = [];
  const fetcher = ((url: string) =>
    new Promise<CimdFetchResult>((resolve) => {
      started.push(url);
      pending.push(resolve);
    })) as typeof fetchClientMetadata;
  return { pending, started, resolver: createClientIdMetadataResolver({ fetch: { now: () => 0 }, admission: { redirectSchemes: [] }, fetcher, now: () => 0 }) };
}

it(`fetches at most ${MAX_CONCURRENT_FETCHES} documents at once; the next is busy without a fetch, and busy is not remembered`, async () => {
  const { pending, started, resolver } = gatedResolver();
  const url = (i: number) => `https://silent-${i}.example/c`; // a host each: MAX_FETCHES_PER_HOST is tested below
  const lookups = Array.from({ length: MAX_CONCURRENT_FETCHES }, (_, i) => resolver.get(url(i)));
  await new Promise((resolve) => setImmediate(resolve));
  expect(started).toHaveLength(MAX_CONCURRENT_FETCHES);

  const refused = await resolver.get(url(MAX_CONCURRENT_FETCHES));
  expect(refused).toMatchObject({ ok: false, reason: 'busy', fromCache: false });
  expect(started, 'the fetcher was not called').toHaveLength(MAX_CONCURRENT_FETCHES);
  expect(
    resolver.entries().find((e) => e.url === url(MAX_CONCURRENT_FETCHES)),
    'busy is neither remembered nor counted as a failure of that URL',
  ).toBeUndefined();

  (pending.shift() as (result: CimdFetchResult) => void)({ ok: false, url: url(0), reason: 'timeout', detail: 'silent', fetchedAt: 0 });
  await lookups[0];
  const retried = resolver.get(url(MAX_CONCURRENT_FETCHES));
  await new Promise((resolve) => setImmediate(resolve));
  expect(started.at(-1), 'busy was not cached: the URL is fetched now').toBe(url(MAX_CONCURRENT_FETCHES));
  for (const resolve of pending.splice(0)) resolve({ ok: false, url: '', reason: 'timeout', detail: 'silent', fetchedAt: 0 });
  await Promise.all([...lookups, retried]);
});

it(`fetches at most ${MAX_FETCHES_PER_REQUESTER} documents at once for one requester; other requesters still fetch; a slot freed is usable again`, async () => {
  const { pending, started, resolver } = gatedResolver();
  const url = (who: string, i: number) => `https://${who}-${i}.silent.example/c`;
  const a = requesterOf('203.0.113.7');
  const mine = Array.from({ length: MAX_FETCHES_PER_REQUESTER }, (_, i) => resolver.get(url('a', i), a));
  await new Promise((resolve) => setImmediate(resolve));
  expect(started).toHaveLength(MAX_FETCHES_PER_REQUESTER);

  const refused = await resolver.get(url('a', 99), a);
  expect(refused).toMatchObject({ ok: false, reason: 'busy', fromCache: false });
  expect(refused.ok === false && refused.detail).toContain('from this address');
  expect(started, 'the fetcher was not called').toHaveLength(MAX_FETCHES_PER_REQUESTER);
  expect(resolver.entries().find((e) => e.url === url('a', 99))).toBeUndefined();

  // Another address fetches at once, and so does a request whose address is unknown (its own key).
  const other = resolver.get(url('b', 0), requesterOf('198.51.100.9'));
  const unknown = resolver.get(url('c', 0), requesterOf(undefined));
  await new Promise((resolve) => setImmediate(resolve));
  expect(started.slice(-2)).toEqual([url('b', 0), url('c', 0)]);

  // One of a's fetches ends: a may start exactly one more.
  (pending.shift() as (result: CimdFetchResult) => void)({ ok: false, url: url('a', 0), reason: 'timeout', detail: 'silent', fetchedAt: 0 });
  await mine[0];
  const again = resolver.get(url('a', 99), a);
  await new Promise((resolve) => setImmediate(resolve));
  expect(started.at(-1)).toBe(url('a', 99));
  expect(await resolver.get(url('a', 100), a), 'the freed slot is taken again').toMatchObject({ ok: false, reason: 'busy' });
  for (const resolve of pending.splice(0)) resolve({ ok: false, url: '', reason: 'timeout', detail: 'silent', fetchedAt: 0 });
  await Promise.all([...mine, other, unknown, again]);
});

it(`fetches at most ${MAX_FETCHES_PER_HOST} documents at once on one host name, whoever asks, whatever the port or a final dot; another name still fetches; a slot freed is usable again`, async () => {
  const { pending, started, resolver } = gatedResolver();
  const on = (host: string, i: number) => `https://${host}/client-${i}.json`;
  const address = (i: number) => requesterOf(`203.0.113.${i + 1}`); // a new address each time: the requester cap never applies
  const spellings = ['silent.example', 'silent.example.', 'silent.example:8443', 'silent.example.:1'];
  const held = Array.from({ length: MAX_FETCHES_PER_HOST }, (_, i) => resolver.get(on(spellings[i % spellings.length] as string, i), address(i)));
  await new Promise((resolve) => setImmediate(resolve));
  expect(started).toHaveLength(MAX_FETCHES_PER_HOST);

  for (const [i, host] of spellings.entries()) {
    const refused = await resolver.get(on(host, 90 + i), address(50 + i));
    expect(refused, host).toMatchObject({ ok: false, reason: 'busy', fromCache: false });
    expect(refused.ok === false && refused.detail).toContain('on silent.example are being fetched already');
    expect(resolver.entries().find((e) => e.url === on(host, 90 + i)), 'busy is not remembered').toBeUndefined();
  }
  expect(started, 'the fetcher was not called').toHaveLength(MAX_FETCHES_PER_HOST);

  const elsewhere = [resolver.get(on('other.example', 0), address(60)), resolver.get(on('a.silent.example', 0), address(61))];
  await new Promise((resolve) => setImmediate(resolve));
  expect(started.slice(-2)).toEqual([on('other.example', 0), on('a.silent.example', 0)]);

  (pending.shift() as (result: CimdFetchResult) => void)({ ok: false, url: on('silent.example', 0), reason: 'timeout', detail: 'silent', fetchedAt: 0 });
  await held[0];
  const again = resolver.get(on('silent.example', 99), address(70));
  await new Promise((resolve) => setImmediate(resolve));
  expect(started.at(-1)).toBe(on('silent.example', 99));
  expect(await resolver.get(on('silent.example:444', 100), address(71)), 'the freed slot is taken again').toMatchObject({ ok: false, reason: 'busy' });
  for (const resolve of pending.splice(0)) resolve({ ok: false, url: '', reason: 'timeout', detail: 'silent', fetchedAt: 0 });
  await Promise.all([...held, ...elsewhere, again]);
});

it('a fetch that fails by throwing frees its slots too', async () => {
  const fetcher = (async () => {
    throw new Error('fetcher broke');
  }) as unknown as typeof fetchClientMetadata;
  const resolver = createClientIdMetadataResolver({ fetch: { now: () => 0 }, admission: { redirectSchemes: [] }, fetcher, now: () => 0, maxConcurrentFetches: MAX_FETCHES_PER_REQUESTER });
  const a = requesterOf('203.0.113.7');
  for (let round = 0; round < 3; round++) {
    const results = await Promise.allSettled(Array.from({ length: MAX_FETCHES_PER_REQUESTER }, (_, i) => resolver.get(`https://broken.example/${round}/${i}`, a)));
    expect(
      results.every((r) => r.status === 'rejected'),
      `round ${round}: each load ran (none refused as busy)`,
    ).toBe(true);
  }
});

it('counts a requester as the rate limits do: an IPv4 address, IPv4-mapped IPv6 as its IPv4, IPv6 by its /56', () => {
  expect(requesterOf('203.0.113.7')).toBe('203.0.113.7');
  expect(requesterOf('::ffff:203.0.113.7')).toBe('203.0.113.7');
  expect(requesterOf('2001:db8:1:2a::1')).toBe(requesterOf('2001:db8:1:ff:ffff::9'));
  expect(requesterOf('2001:db8:1:2a::1')).not.toBe(requesterOf('2001:db8:1:100::1'));
  // No address (the client hung up before it was read; review 2026-12-06): one shared key, not a way around the cap.
  expect(requesterOf(undefined)).toBe('unknown');
});
