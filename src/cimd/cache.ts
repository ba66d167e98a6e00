/**
 * CIMD — how long P reuses a fetched Client ID Metadata Document (issue 12, DESIGN §10; CIMD-06).
 * The one module that decides freshness. In memory, keyed by the client_id URL, with an
 * injectable clock; the loader (src/cimd/resolve.ts: fetch + validate) is injected too.
 *
 * Enforces:
 * - CIMD-06 (CIMD §4.4 "Metadata Caching"): HTTP caching headers (RFC 9111) are honoured within
 *   P's own bounds [MIN_TTL_MS, MAX_TTL_MS] = [60 s, 24 h]:
 *   `no-store` and `no-cache` ⇒ the document is used for the request that fetched it and not
 *   reused (P does not revalidate; a client that asks for this pays one fetch per authorization,
 *   merged while concurrent); else `max-age` minus `Age` (RFC 9111 §4.2.1, §4.2.3); else
 *   `Expires` minus `Date` (or the fetch time when Date is absent or invalid); else DEFAULT_TTL_MS
 *   (5 minutes). The result is clamped into the bounds: `max-age=0` is kept 60 s,
 *   `max-age=31536000` 24 h. A repeated `max-age` with different values, an unparsable one or
 *   an invalid `Expires` makes the response stale (RFC 9111 §4.2.1, §5.3) ⇒ the 60 s floor.
 * - CIMD-06 "MUST NOT cache error responses … invalid or malformed documents": a failure is
 *   remembered (negative caching, NEGATIVE_TTL_MS = 60 s) ONLY when no HTTP response was
 *   received — `dns_failed`, `not_public_address`, `connect_failed`, `tls_failed`, `timeout`
 *   (NEGATIVE_CACHE_REASONS). That keeps a dead or slow host from costing P a 5 s connection
 *   slot per request for the same URL (issue 12: "with negative caching"; distinct URLs on such a
 *   host are bounded by src/cimd/resolve.ts MAX_CONCURRENT_FETCHES) without ever caching an HTTP error
 *   status, a redirect, an oversized or malformed body or an invalid document: after a 500 the
 *   next attempt fetches again at once. Policy refusals made before any network use
 *   (scheme, host lists, URL shape) are cheap and not stored either.
 * - Concurrent lookups of one URL share one load (single flight): 10 simultaneous first
 *   authorizations make one fetch.
 * - Bounded: at most `maxEntries` URLs (default 1,000), least recently used evicted first; the
 *   in-flight map holds at most one promise per URL being loaded.
 * - A failed re-fetch does not fall back to a stale document (a client that withdrew its
 *   document is not kept alive by P).
 * - `entries()` reports, per URL: last fetch, cache expiry, consecutive failures and the last
 *   failure reason of this process's cache (the admin console shows the same facts as
 *   src/cimd/clients.ts records them in clients_meta, shared by every replica).
 */

export const MIN_TTL_MS = 60_000;
export const MAX_TTL_MS = 24 * 60 * 60_000;
export const DEFAULT_TTL_MS = 5 * 60_000;
export const NEGATIVE_TTL_MS = 60_000;
export const MAX_ENTRIES = 1_000;

/** Failures with no HTTP response behind them: the only ones remembered (CIMD-06). */
export const NEGATIVE_CACHE_REASONS: ReadonlySet<string> = new Set(['dns_failed', 'not_public_address', 'connect_failed', 'tls_failed', 'timeout']);

export interface CachingHeaders {
  cacheControl?: string;
  expires?: string;
  date?: string;
  age?: string;
}

export type LoadResult<T> = ({ ok: true; value: T; fetchedAt: number } & CachingHeaders) | { ok: false; reason: string; detail: string; fetchedAt: number };

export type CacheOutcome<T> = LoadResult<T> & {
  /** true when served from the cache without a load */
  fromCache: boolean;
  /** until when this outcome is served from the cache; equal to fetchedAt when it is not kept */
  expiresAt: number;
};

export interface CacheEntryInfo {
  url: string;
  ok: boolean;
  lastFetchAt: number;
  expiresAt: number;
  /** consecutive failed loads since the last success */
  failures: number;
  lastFailure?: { reason: string; detail: string; at: number };
}

export interface CimdCacheOptions<T> {
  /** `requester`: who asked for the load that starts (passed through from `get`) */
  load: (url: string, requester?: string) => Promise<LoadResult<T>>;
  now?: () => number;
  maxEntries?: number;
  minTtlMs?: number;
  maxTtlMs?: number;
  defaultTtlMs?: number;
  negativeTtlMs?: number;
  negativeReasons?: ReadonlySet<string>;
  /** failures that say nothing about the URL (P's own overload: src/cimd/resolve.ts `busy`): neither remembered nor counted */
  unrecordedReasons?: ReadonlySet<string>;
}

export interface FreshnessBounds {
  minTtlMs: number;
  maxTtlMs: number;
  defaultTtlMs: number;
}

/** Parsed Cache-Control directives (lower-case names; `true` for a directive without value). */
function directives(header: string): Map<string, (string | true)[]> {
  const parsed = new Map<string, (string | true)[]>();
  for (const part of header.split(',')) {
    const [rawName, ...rest] = part.split('=');
    const name = (rawName ?? '').trim().toLowerCase();
    if (!name) continue;
    const value: string | true = rest.length
      ? rest
          .join('=')
          .trim()
          .replace(/^"(.*)"$/, '$1')
      : true;
    parsed.set(name, [...(parsed.get(name) ?? []), value]);
  }
  return parsed;
}

const DELTA_SECONDS = /^\d+$/;
/** RFC 9111 §1.2.2: a delta-seconds value above 2^31 is taken as 2^31. */
const seconds = (text: string) => Math.min(Number(text), 2 ** 31);

/**
 * How long a successful response may be reused, in ms, or `null` for "do not store". Pure.
 * RFC 9111 §4.2.1 within P's bounds (see the module comment).
 */
export function freshnessLifetimeMs(headers: CachingHeaders, fetchedAt: number, bounds: FreshnessBounds): number | null {
  const clamp = (ms: number) => Math.min(bounds.maxTtlMs, Math.max(bounds.minTtlMs, ms));
  const cc = directives(headers.cacheControl ?? '');
  if (cc.has('no-store') || cc.has('no-cache')) return null;

  const maxAge = cc.get('max-age');
  if (maxAge !== undefined) {
    const distinct = new Set(maxAge);
    const only = [...distinct][0];
    if (distinct.size !== 1 || typeof only !== 'string' || !DELTA_SECONDS.test(only)) return clamp(0); // stale
    const age = headers.age !== undefined && DELTA_SECONDS.test(headers.age.trim()) ? seconds(headers.age.trim()) : 0;
    return clamp((seconds(only) - age) * 1000);
  }
  if (headers.expires !== undefined) {
    const expires = Date.parse(headers.expires);
    if (Number.isNaN(expires)) return clamp(0); // RFC 9111 §5.3: an invalid Expires means already expired
    const date = headers.date !== undefined ? Date.parse(headers.date) : Number.NaN;
    return clamp(expires - (Number.isNaN(date) ? fetchedAt : date));
  }
  return clamp(bounds.defaultTtlMs);
}

interface Entry<T> {
  outcome?: LoadResult<T>;
  /** the outcome is served until then */
  expiresAt: number;
  lastFetchAt: number;
  failures: number;
  lastFailure?: { reason: string; detail: string; at: number };
}

export interface CimdCache<T> {
  /** The outcome for `url`: cached while fresh, else loaded (one load per URL at a time; a lookup that starts one names its `requester`). */
  get(url: string, requester?: string): Promise<CacheOutcome<T>>;
  /** Forget `url` (a load in flight still answers its callers but is not stored). */
  delete(url: string): void;
  entries(): CacheEntryInfo[];
  readonly size: number;
}

/** The cache's memory: entries in recency order, bounded, and what a load outcome does to them. */
class Entries<T> {
  readonly map = new Map<string, Entry<T>>();

  constructor(
    private readonly maxEntries: number,
    private readonly bounds: FreshnessBounds,
    private readonly negativeTtlMs: number,
    private readonly negativeReasons: ReadonlySet<string>,
  ) {}

  touch(url: string, entry: Entry<T>): void {
    this.map.delete(url);
    this.map.set(url, entry); // Map order = recency
    while (this.map.size > this.maxEntries) this.map.delete(this.map.keys().next().value as string);
  }

  /** Store a load's outcome (a success for its freshness, a failure only for the listed reasons). */
  record(url: string, result: LoadResult<T>): CacheOutcome<T> {
    const previous = this.map.get(url);
    const at = result.fetchedAt;
    let expiresAt = at;
    if (result.ok) {
      const lifetime = freshnessLifetimeMs(result, at, this.bounds);
      if (lifetime !== null) expiresAt = at + lifetime;
      this.touch(url, { outcome: result, expiresAt, lastFetchAt: at, failures: 0 });
    } else {
      if (this.negativeReasons.has(result.reason)) expiresAt = at + this.negativeTtlMs;
      this.touch(url, {
        outcome: result,
        expiresAt,
        lastFetchAt: at,
        failures: (previous?.failures ?? 0) + 1,
        lastFailure: { reason: result.reason, detail: result.detail, at },
      });
    }
    return { ...result, fromCache: false, expiresAt };
  }

  info(): CacheEntryInfo[] {
    return [...this.map.entries()].map(([url, entry]) => ({
      url,
      ok: entry.outcome?.ok ?? false,
      lastFetchAt: entry.lastFetchAt,
      expiresAt: entry.expiresAt,
      failures: entry.failures,
      ...(entry.lastFailure ? { lastFailure: entry.lastFailure } : {}),
    }));
  }
}

export function createCimdCache<T>(options: CimdCacheOptions<T>): CimdCache<T> {
  const now = options.now ?? Date.now;
  const bounds: FreshnessBounds = {
    minTtlMs: options.minTtlMs ?? MIN_TTL_MS,
    maxTtlMs: options.maxTtlMs ?? MAX_TTL_MS,
    defaultTtlMs: options.defaultTtlMs ?? DEFAULT_TTL_MS,
  };
  const store = new Entries<T>(options.maxEntries ?? MAX_ENTRIES, bounds, options.negativeTtlMs ?? NEGATIVE_TTL_MS, options.negativeReasons ?? NEGATIVE_CACHE_REASONS);
  const inflight = new Map<string, Promise<CacheOutcome<T>>>();

  return {
    get(url, requester) {
      const entry = store.map.get(url);
      if (entry?.outcome && now() < entry.expiresAt) {
        store.touch(url, entry);
        return Promise.resolve({ ...entry.outcome, fromCache: true, expiresAt: entry.expiresAt });
      }
      const running = inflight.get(url);
      if (running) return running;
      // The load starts on a later tick, so `loading` is assigned before any callback reads it.
      const loading: Promise<CacheOutcome<T>> = Promise.resolve()
        .then(() => options.load(url, requester))
        .then((result) =>
          inflight.get(url) === loading && (result.ok || !options.unrecordedReasons?.has(result.reason)) ? store.record(url, result) : { ...result, fromCache: false, expiresAt: result.fetchedAt },
        )
        .finally(() => {
          if (inflight.get(url) === loading) inflight.delete(url);
        });
      inflight.set(url, loading);
      return loading;
    },
    delete(url) {
      store.map.delete(url);
      inflight.delete(url);
    },
    entries: () => store.info(),
    get size() {
      return store.map.size;
    },
  };
}
