/**
 * CIMD — one call from a client_id URL to the metadata P may use (issue 12, DESIGN §10). Glue
 * only: the decisions live in src/cimd/fetch.ts (what is fetched and how), src/cimd/document.ts
 * (what is accepted and kept) and src/cimd/cache.ts (for how long). Used by src/cimd/clients.ts.
 *
 * - CIMD-07: any failure — fetch or document — is a refusal with one stable reason code
 *   (`CimdRefusal`), so the caller can stop the authorization request and audit why.
 * - CIMD-06: only a valid document is a success; an invalid one is never cached (the cache
 *   stores failures only for the reasons it lists, none of which is a document reason).
 */
import { addressKey } from '../http/client-address.js';
import { destinationKey } from './address-policy.js';
import { KeyedTally } from '../http/keyed-tally.js';
import type { AdmissionPolicy } from '../oauth/admission.js';
import { createCimdCache, type CimdCache, type CimdCacheOptions, type LoadResult } from './cache.js';
import { validateClientMetadataDocument, type ClientIdMetadata, type DocumentRefusal } from './document.js';
import type { DestinationGate } from './connect.js';
import { fetchClientMetadata, type CimdFetchOptions, type CimdFetchReason } from './fetch.js';

/** `busy`: MAX_CONCURRENT_FETCHES documents were being fetched already — or MAX_FETCHES_PER_REQUESTER for this address, MAX_FETCHES_PER_HOST on this host, MAX_FETCHES_PER_DESTINATION connected to the address the host resolved to (not cached: the next lookup tries again). */
export type CimdRefusal = CimdFetchReason | DocumentRefusal;

/**
 * At most this many documents fetched at once by one process. The cache remembers a failure per
 * URL, so distinct URLs on a silent host each held a connection for the whole 5 s deadline (found
 * by review, 2026-12-06: 30 at once from one address, 60 in a row under the rate limits); beyond
 * this bound a lookup is refused as `busy` at once, before any DNS lookup or connection.
 */
export const MAX_CONCURRENT_FETCHES = 32;
/**
 * And at most this many of them started by one requester — a client address, IPv6 by its /56 as
 * the rate limits count it (express-rate-limit `ipKeyGenerator`) — so that one address cannot take
 * every slot with a burst of new client_ids whose host or DNS never answers (its registration
 * budget allows 30 at once): beyond it that address's next lookup is `busy`, other addresses' are not.
 */
export const MAX_FETCHES_PER_REQUESTER = 4;

/**
 * And at most this many of them on one host name — whatever the port, with or without a final dot
 * — so that the documents of one silent or slow host, at distinct URLs and asked for from any
 * number of addresses, hold at most this many of the slots (review 2026-12-06). Lookups of one URL
 * share one fetch (src/cimd/cache.ts), so many users of one client count once. Not bounded by it:
 * distinct names that resolve to one server (a wildcard DNS record), which would need the
 * registrable domain (the public suffix list) or the resolved address to count by: the next bound.
 */
export const MAX_FETCHES_PER_HOST = 4;

/**
 * And at most this many of them connected to one destination — the address a fetch dials, IPv6 by
 * its /64, an IPv4 carried in IPv6 (mapped, NAT64) as that IPv4 (src/cimd/address-policy.ts
 * `destinationKey`) — so that distinct names resolving to one silent server (a wildcard DNS
 * record: `a.attacker.example`, `b.attacker.example`, …) hold at most this many of the slots,
 * whichever addresses ask. Counted when the address is
 * dialled (src/cimd/connect.ts), after the one lookup: an address without room is skipped for
 * the next one the name resolved to, and when none has room the fetch is `busy` with that lookup
 * made but no connection. A quarter of the slots, more than the other bounds, because
 * unrelated hosts share addresses (a CDN, a hosting provider's pages) and one host's fetch holds
 * its place for a few milliseconds only when its server answers. Not bounded by it: silent
 * servers on many addresses (as many as MAX_CONCURRENT_FETCHES / this, each a /64 or an IPv4
 * address of the attacker's) asked for from many addresses (MAX_FETCHES_PER_REQUESTER each). And
 * it costs something: an attacker whose silent server shares a destination with a document host
 * (a CDN terminating TLS for both, a neighbour in one /64) can keep that host's first fetches busy
 * from two client addresses, where filling every slot takes eight.
 */
export const MAX_FETCHES_PER_DESTINATION = 8;

/**
 * Who counts as one requester for MAX_FETCHES_PER_REQUESTER: the client address as every
 * per-address budget counts it (src/http/client-address.ts) — requests whose address is unknown
 * share one key, so that they are no way around the cap (review 2026-12-06).
 */
export const requesterOf = addressKey;
const UNRECORDED: ReadonlySet<string> = new Set(['busy']);

export interface ResolveOptions {
  fetch: CimdFetchOptions;
  admission: Pick<AdmissionPolicy, 'redirectSchemes'>;
  /** default fetchClientMetadata */
  fetcher?: typeof fetchClientMetadata;
  /** default MAX_CONCURRENT_FETCHES */
  maxConcurrentFetches?: number;
  /** default MAX_FETCHES_PER_REQUESTER */
  maxFetchesPerRequester?: number;
  /** default MAX_FETCHES_PER_HOST */
  maxFetchesPerHost?: number;
  /** default MAX_FETCHES_PER_DESTINATION */
  maxFetchesPerDestination?: number;
}

/** The host name a client_id names, without its port or a final dot (already checked by src/cimd/client-id.ts; the URL parser lowercases it). */
const hostOf = (url: string): string => {
  try {
    return new URL(url).hostname.replace(/\.$/, '');
  } catch {
    return url;
  }
};

/** Fetch and validate; a LoadResult for the cache. Never rejects for remote behaviour. */
export async function loadClientIdMetadata(url: string, options: ResolveOptions): Promise<LoadResult<ClientIdMetadata>> {
  const fetched = await (options.fetcher ?? fetchClientMetadata)(url, options.fetch);
  if (!fetched.ok) return { ok: false, reason: fetched.reason, detail: fetched.detail, fetchedAt: fetched.fetchedAt };
  const check = validateClientMetadataDocument(fetched.document, url, options.admission);
  if (!check.ok) {
    return { ok: false, reason: check.reason, detail: check.rule ? `${check.detail} [${check.rule}]` : check.detail, fetchedAt: fetched.fetchedAt };
  }
  const { cacheControl, expires, date, age } = fetched;
  return {
    ok: true,
    value: check.metadata,
    fetchedAt: fetched.fetchedAt,
    ...(cacheControl !== undefined ? { cacheControl } : {}),
    ...(expires !== undefined ? { expires } : {}),
    ...(date !== undefined ? { date } : {}),
    ...(age !== undefined ? { age } : {}),
  };
}

/** A cache of validated CIMD client metadata, loading through fetch + document validation. */
export function createClientIdMetadataResolver(options: ResolveOptions & Omit<CimdCacheOptions<ClientIdMetadata>, 'load'>): CimdCache<ClientIdMetadata> {
  const {
    fetch,
    admission,
    fetcher,
    maxConcurrentFetches = MAX_CONCURRENT_FETCHES,
    maxFetchesPerRequester = MAX_FETCHES_PER_REQUESTER,
    maxFetchesPerHost = MAX_FETCHES_PER_HOST,
    maxFetchesPerDestination = MAX_FETCHES_PER_DESTINATION,
    ...cacheOptions
  } = options;
  let fetching = 0;
  const byRequester = new KeyedTally();
  const byHost = new KeyedTally();
  const byDestination = new KeyedTally();
  const destinations: DestinationGate = {
    enter(address) {
      const key = destinationKey(address);
      if (byDestination.get(key) >= maxFetchesPerDestination) return false;
      byDestination.add(key);
      return true;
    },
    leave: (address) => byDestination.remove(destinationKey(address)),
  };
  const busy = (detail: string): LoadResult<ClientIdMetadata> => ({ ok: false, reason: 'busy', detail: `${detail}; try again in a moment`, fetchedAt: (fetch.now ?? Date.now)() });
  const load = async (url: string, requester?: string): Promise<LoadResult<ClientIdMetadata>> => {
    if (fetching >= maxConcurrentFetches) return busy(`${maxConcurrentFetches} client metadata documents are being fetched already`);
    if (requester !== undefined && byRequester.get(requester) >= maxFetchesPerRequester)
      return busy(`${maxFetchesPerRequester} client metadata documents asked for from this address are being fetched already`);
    const host = hostOf(url);
    if (byHost.get(host) >= maxFetchesPerHost) return busy(`${maxFetchesPerHost} client metadata documents on ${host} are being fetched already`);
    fetching += 1;
    if (requester !== undefined) byRequester.add(requester);
    byHost.add(host);
    try {
      return await loadClientIdMetadata(url, { fetch: { ...fetch, destinations }, admission, ...(fetcher ? { fetcher } : {}) });
    } finally {
      fetching -= 1;
      if (requester !== undefined) byRequester.remove(requester);
      byHost.remove(host);
    }
  };
  return createCimdCache({ ...cacheOptions, load, unrecordedReasons: UNRECORDED });
}
