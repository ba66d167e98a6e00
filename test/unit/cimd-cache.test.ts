/**
 * CIMD-06 metadata cache (src/cimd/cache.ts) and the fetch + validate glue (src/cimd/resolve.ts):
 * HTTP freshness within [60 s, 24 h], no-store, negative caching only without an HTTP response,
 * single flight, bounded size. Fake clock throughout; the last block runs the real fetcher against
 * a loopback document server under the test-only http allowance.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCimdCache, DEFAULT_TTL_MS, freshnessLifetimeMs, MAX_TTL_MS, MIN_TTL_MS, NEGATIVE_TTL_MS, type CachingHeaders, type LoadResult } from '../../src/cimd/cache.js';
import type { ClientIdMetadata } from '../../src/cimd/document.js';
import { createClientIdMetadataResolver, loadClientIdMetadata } from '../../src/cimd/resolve.js';
import { httpServer, type Listener } from '../helpers/cimd.js';

const T0 = Date.parse('2026-03-01T12:00:00Z');
const bounds = { minTtlMs: MIN_TTL_MS, maxTtlMs: MAX_TTL_MS, defaultTtlMs: DEFAULT_TTL_MS };
const S = 1000;
const httpDate = (ms: number) => new Date(ms).toUTCString();

describe('CIMD-06 freshness (RFC 9111 §4.2 within [60 s, 24 h])', () => {
  it.each<[string, CachingHeaders, number | null]>([
    ['no caching headers: the default (5 min)', {}, 5 * 60 * S],
    ['max-age=600', { cacheControl: 'max-age=600' }, 600 * S],
    ['public, max-age=3600', { cacheControl: 'public, max-age=3600' }, 3600 * S],
    ['MAX-AGE="600" (case, quotes)', { cacheControl: 'MAX-AGE="600"' }, 600 * S],
    ['max-age=0 → the 60 s floor', { cacheControl: 'max-age=0' }, MIN_TTL_MS],
    ['max-age=10 → the 60 s floor', { cacheControl: 'max-age=10' }, MIN_TTL_MS],
    ['max-age of a year → the 24 h ceiling', { cacheControl: 'max-age=31536000' }, MAX_TTL_MS],
    ['max-age=99999999999 (taken as 2^31 s) → ceiling', { cacheControl: 'max-age=99999999999' }, MAX_TTL_MS],
    ['max-age=600 with Age: 100', { cacheControl: 'max-age=600', age: '100' }, 500 * S],
    ['max-age=100 with Age: 90 → floor', { cacheControl: 'max-age=100', age: '90' }, MIN_TTL_MS],
    ['conflicting max-age twice → stale → floor', { cacheControl: 'max-age=600, max-age=60000' }, MIN_TTL_MS],
    ['the same max-age twice is fine', { cacheControl: 'max-age=600, max-age=600' }, 600 * S],
    ['max-age=abc → stale → floor', { cacheControl: 'max-age=abc' }, MIN_TTL_MS],
    ['max-age=-1 → stale → floor', { cacheControl: 'max-age=-1' }, MIN_TTL_MS],
    ['no-store', { cacheControl: 'no-store' }, null],
    ['max-age=600, no-store', { cacheControl: 'max-age=600, No-Store' }, null],
    ['no-cache (P does not revalidate)', { cacheControl: 'no-cache' }, null],
    ['Expires two hours after Date', { expires: httpDate(T0 + 2 * 3600 * S), date: httpDate(T0 - 10 * S) }, 2 * 3600 * S + 10 * S],
    ['Expires without Date: from the fetch time', { expires: httpDate(T0 + 600 * S) }, 600 * S],
    ['Expires in two days → ceiling', { expires: httpDate(T0 + 48 * 3600 * S) }, MAX_TTL_MS],
    ['Expires in the past → floor', { expires: httpDate(T0 - 3600 * S) }, MIN_TTL_MS],
    ['Expires: 0 (invalid = expired) → floor', { expires: '0' }, MIN_TTL_MS],
    ['max-age wins over Expires', { cacheControl: 'max-age=120', expires: httpDate(T0 + 3600 * S) }, 120 * S],
    ['an unknown directive alone: the default', { cacheControl: 'immutable' }, DEFAULT_TTL_MS],
  ])('%s', (_name, headers, expected) => {
    expect(freshnessLifetimeMs(headers, T0, bounds)).toBe(expected);
  });
});

// ---------------------------------------------------------------------------------------------

function clock(start = T0) {
  let now = start;
  return { now: () => now, advance: (ms: number) => (now += ms) };
}

const ok = (value: string, at: number, headers: CachingHeaders = {}): LoadResult<string> => ({ ok: true, value, fetchedAt: at, ...headers });
const fail = (reason: string, at: number): LoadResult<string> => ({ ok: false, reason, detail: `failed: ${reason}`, fetchedAt: at });

/** A cache whose loader answers from a queue of scripted results, counting loads per URL. */
function scripted(results: ((at: number) => LoadResult<string>)[], extra: { maxEntries?: number } = {}) {
  const time = clock();
  const loads: string[] = [];
  const cache = createCimdCache<string>({
    now: time.now,
    ...extra,
    load: async (url) => {
      loads.push(url);
      const next = results.shift();
      if (!next) throw new Error('no scripted result left');
      return next(time.now());
    },
  });
  return { cache, time, loads };
}

describe('CIMD-06 cache › successes', () => {
  it('reuses a document until its lifetime ends, then fetches again', async () => {
    const { cache, time, loads } = scripted([(at) => ok('v1', at, { cacheControl: 'max-age=600' }), (at) => ok('v2', at)]);
    expect(await cache.get('u')).toMatchObject({ ok: true, value: 'v1', fromCache: false, expiresAt: T0 + 600 * S });
    time.advance(599 * S);
    expect(await cache.get('u')).toMatchObject({ ok: true, value: 'v1', fromCache: true });
    time.advance(1 * S);
    expect(await cache.get('u')).toMatchObject({ ok: true, value: 'v2', fromCache: false });
    expect(loads).toEqual(['u', 'u']);
  });

  it('no-store: used for the request that fetched it, never reused', async () => {
    const { cache, loads } = scripted([(at) => ok('v1', at, { cacheControl: 'no-store' }), (at) => ok('v2', at, { cacheControl: 'no-store' })]);
    expect(await cache.get('u')).toMatchObject({ value: 'v1', fromCache: false, expiresAt: T0 });
    expect(await cache.get('u')).toMatchObject({ value: 'v2', fromCache: false });
    expect(loads).toHaveLength(2);
  });

  it('a failed re-fetch after expiry does not fall back to the stale document', async () => {
    const { cache, time } = scripted([(at) => ok('v1', at, { cacheControl: 'max-age=60' }), (at) => fail('bad_status', at)]);
    await cache.get('u');
    time.advance(61 * S);
    expect(await cache.get('u')).toMatchObject({ ok: false, reason: 'bad_status', fromCache: false });
  });
});

describe('CIMD-06 cache › failures: negative caching only when no HTTP response came back', () => {
  it.each(['dns_failed', 'not_public_address', 'connect_failed', 'tls_failed', 'timeout'])('%s is remembered for 60 s', async (reason) => {
    const { cache, time, loads } = scripted([(at) => fail(reason, at), (at) => ok('v', at)]);
    expect(await cache.get('u')).toMatchObject({ ok: false, reason, fromCache: false, expiresAt: T0 + NEGATIVE_TTL_MS });
    time.advance(NEGATIVE_TTL_MS - 1);
    expect(await cache.get('u')).toMatchObject({ ok: false, reason, fromCache: true });
    expect(loads).toHaveLength(1);
    time.advance(1);
    expect(await cache.get('u')).toMatchObject({ ok: true, value: 'v' });
    expect(loads).toHaveLength(2);
  });

  it.each(['bad_status', 'redirect', 'too_large', 'bad_content_type', 'not_json', 'bad_response', 'client_id_mismatch', 'redirect_uri', 'scheme', 'host_denied'])(
    '%s is never cached: the next attempt fetches again at once (CIMD §4.4 MUST NOT cache errors or invalid documents)',
    async (reason) => {
      const { cache, loads } = scripted([(at) => fail(reason, at), (at) => ok('v', at)]);
      expect(await cache.get('u')).toMatchObject({ ok: false, reason, expiresAt: T0 });
      expect(await cache.get('u')).toMatchObject({ ok: true, value: 'v', fromCache: false });
      expect(loads).toHaveLength(2);
    },
  );

  it('entries() reports last fetch, expiry, consecutive failures and the last failure; a success resets the count', async () => {
    const { cache, time } = scripted([(at) => fail('bad_status', at), (at) => fail('timeout', at), (at) => ok('v', at, { cacheControl: 'max-age=300' })]);
    await cache.get('u');
    time.advance(S);
    await cache.get('u');
    expect(cache.entries()).toEqual([
      { url: 'u', ok: false, lastFetchAt: T0 + S, expiresAt: T0 + S + NEGATIVE_TTL_MS, failures: 2, lastFailure: { reason: 'timeout', detail: 'failed: timeout', at: T0 + S } },
    ]);
    time.advance(NEGATIVE_TTL_MS);
    await cache.get('u');
    expect(cache.entries()).toEqual([{ url: 'u', ok: true, lastFetchAt: T0 + S + NEGATIVE_TTL_MS, expiresAt: T0 + S + NEGATIVE_TTL_MS + 300 * S, failures: 0 }]);
  });
});

describe('CIMD-06 cache › single flight and bounds', () => {
  it('10 concurrent first lookups of one URL make one fetch; all get its answer', async () => {
    const time = clock();
    let release!: (result: LoadResult<string>) => void;
    let loads = 0;
    const cache = createCimdCache<string>({
      now: time.now,
      load: () => {
        loads += 1;
        return new Promise((resolve) => (release = resolve));
      },
    });
    const pending = Array.from({ length: 10 }, () => cache.get('https://client.example/c'));
    await Promise.resolve();
    await new Promise((resolve) => setImmediate(resolve));
    release(ok('v', time.now(), { cacheControl: 'max-age=600' }));
    const results = await Promise.all(pending);
    expect(loads).toBe(1);
    expect(results.every((r) => r.ok && r.value === 'v')).toBe(true);
    expect(await cache.get('https://client.example/c')).toMatchObject({ fromCache: true });
    expect(loads).toBe(1);
  });

  it('concurrent failures are merged too, and a loader that throws stores nothing', async () => {
    const time = clock();
    let loads = 0;
    const cache = createCimdCache<string>({
      now: time.now,
      load: async () => {
        loads += 1;
        throw new Error('bug');
      },
    });
    const results = await Promise.allSettled(Array.from({ length: 10 }, () => cache.get('u')));
    expect(results.every((r) => r.status === 'rejected')).toBe(true);
    expect(loads).toBe(1);
    expect(cache.size).toBe(0);
    await expect(cache.get('u')).rejects.toThrow('bug');
    expect(loads).toBe(2);
  });

  it('different URLs load independently', async () => {
    const { cache, loads } = scripted([(at) => ok('a', at), (at) => ok('b', at)]);
    const [a, b] = await Promise.all([cache.get('a'), cache.get('b')]);
    expect([a, b].map((r) => r.ok && r.value)).toEqual(['a', 'b']);
    expect(loads.sort()).toEqual(['a', 'b']);
  });

  it('holds at most maxEntries URLs, evicting the least recently used', async () => {
    const { cache, loads } = scripted(Array.from({ length: 6 }, (_, i) => (at: number) => ok(`v${i}`, at)), { maxEntries: 3 });
    for (const url of ['a', 'b', 'c']) await cache.get(url);
    await cache.get('a'); // a is now the most recently used
    await cache.get('d'); // evicts b
    expect(cache.size).toBe(3);
    expect(cache.entries().map((e) => e.url)).toEqual(['c', 'a', 'd']);
    await cache.get('a');
    expect(loads).toEqual(['a', 'b', 'c', 'd']);
    await cache.get('b');
    expect(loads).toEqual(['a', 'b', 'c', 'd', 'b']);
  });

  it('delete() during a load: the callers get their answer, the cache keeps nothing', async () => {
    const { cache, loads } = scripted([(at) => ok('v1', at), (at) => ok('v2', at)]);
    const pending = cache.get('u');
    cache.delete('u');
    expect(await pending).toMatchObject({ value: 'v1' });
    expect(cache.size).toBe(0);
    expect(await cache.get('u')).toMatchObject({ value: 'v2', fromCache: false });
    expect(loads).toHaveLength(2);
  });
});

// ---------------------------------------------------------------------------------------------
// fetch + validate + cache, against a loopback document server (the test-only http allowance).

describe('CIMD resolver › real fetches under the test allowance', () => {
  let server: Listener;
  let mode: 'valid' | 'mismatch' | 'error' = 'valid';
  beforeAll(async () => {
    server = await httpServer((req, res) => {
      const url = `http://127.0.0.1:${server.port}${req.url}`;
      if (mode === 'error') {
        res.statusCode = 500;
        return res.end();
      }
      res.setHeader('content-type', 'application/json');
      res.setHeader('cache-control', 'max-age=120');
      res.end(JSON.stringify({ client_id: mode === 'valid' ? url : `${url}x`, client_name: 'Loopback client', redirect_uris: ['http://127.0.0.1:9/cb'] }));
    });
  });
  afterAll(() => server.close());

  const options = () => ({
    fetch: { dangerouslyAllowInsecureHttp: true, allowedHosts: [`127.0.0.1:${server.port}`] },
    admission: { redirectSchemes: [] },
  });

  it('10 concurrent resolutions: one request to the server; the validated metadata is cached by its max-age', async () => {
    const time = clock(Date.now());
    const resolver = createClientIdMetadataResolver({ ...options(), now: time.now, fetch: { ...options().fetch, now: time.now } });
    const url = `http://127.0.0.1:${server.port}/single-flight.json`;
    const before = server.requests.length;
    const results = await Promise.all(Array.from({ length: 10 }, () => resolver.get(url)));
    expect(server.requests.length - before).toBe(1);
    for (const result of results) {
      expect(result).toMatchObject({ ok: true, expiresAt: time.now() + 120 * S });
      if (result.ok) expect(result.value satisfies ClientIdMetadata).toMatchObject({ client_id: url, client_name: 'Loopback client', application_type: 'native' });
    }
    expect(await resolver.get(url)).toMatchObject({ fromCache: true });
    expect(server.requests.length - before).toBe(1);
  });

  it('an invalid document and a 500 are not cached: served 500, then a mismatching client_id, then a valid one — each attempt fetches', async () => {
    const resolver = createClientIdMetadataResolver(options());
    const url = `http://127.0.0.1:${server.port}/recovering.json`;
    const before = server.requests.length;
    mode = 'error';
    expect(await resolver.get(url)).toMatchObject({ ok: false, reason: 'bad_status' });
    mode = 'mismatch';
    expect(await resolver.get(url)).toMatchObject({ ok: false, reason: 'client_id_mismatch' });
    mode = 'valid';
    expect(await resolver.get(url)).toMatchObject({ ok: true, fromCache: false });
    expect(server.requests.length - before).toBe(3);
  });

  it('loadClientIdMetadata names the admission rule when a redirect URI is refused', async () => {
    const fetcher = async (url: string) => ({ ok: true as const, url, document: { client_id: url, client_name: 'x', redirect_uris: ['http://evil.example/cb'] }, fetchedAt: T0, address: '93.184.216.34' });
    expect(await loadClientIdMetadata('https://c.example/c', { ...options(), fetcher })).toMatchObject({ ok: false, reason: 'redirect_uri', detail: expect.stringContaining('[http_not_loopback]') });
  });
});
