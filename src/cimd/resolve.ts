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
import type { AdmissionPolicy } from '../oauth/admission.js';
import { createCimdCache, type CimdCache, type CimdCacheOptions, type LoadResult } from './cache.js';
import { validateClientMetadataDocument, type ClientIdMetadata, type DocumentRefusal } from './document.js';
import { fetchClientMetadata, type CimdFetchOptions, type CimdFetchReason } from './fetch.js';

export type CimdRefusal = CimdFetchReason | DocumentRefusal;

export interface ResolveOptions {
  fetch: CimdFetchOptions;
  admission: Pick<AdmissionPolicy, 'redirectSchemes'>;
  /** default fetchClientMetadata */
  fetcher?: typeof fetchClientMetadata;
}

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
  const { fetch, admission, fetcher, ...cacheOptions } = options;
  return createCimdCache({ ...cacheOptions, load: (url) => loadClientIdMetadata(url, { fetch, admission, ...(fetcher ? { fetcher } : {}) }) });
}
