/**
 * At most MAX_CONCURRENT_FETCHES client metadata documents are fetched at once
 * (src/cimd/resolve.ts): the cache remembers failures per URL, so distinct URLs on a silent host
 * each held a connection for the whole 5 s deadline (found by review, 2026-12-06). Beyond the
 * bound a lookup is refused as `busy` at once — the fetcher is not called — and `busy` is not
 * cached: once a fetch ends, the next lookup of that URL fetches.
 */
import { expect, it } from 'vitest';
import { createClientIdMetadataResolver, MAX_CONCURRENT_FETCHES } from '../../src/cimd/resolve.js';
import type { CimdFetchResult, fetchClientMetadata } from '../../src/cimd/fetch.js';

it(`fetches at most ${MAX_CONCURRENT_FETCHES} documents at once; the next is busy without a fetch, and busy is not remembered`, async () => {
  const pending: ((result: CimdFetchResult) => void)[] = [];
  const started: string[] = [];
  const fetcher = ((url: string) =>
    new Promise<CimdFetchResult>((resolve) => {
      started.push(url);
      pending.push(resolve);
    })) as typeof fetchClientMetadata;
  const resolver = createClientIdMetadataResolver({ fetch: { now: () => 0 }, admission: { redirectSchemes: [] }, fetcher, now: () => 0 });
  const url = (i: number) => `https://silent.example/c/${i}`;
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
