/**
 * CIMD fetcher — how P fetches a Client ID Metadata Document without being turned against its own
 * network (issue 12, DESIGN §10; CIMD-05, CIMD-07, AT-20). The one module that makes an outbound
 * request for a client-supplied URL. Never throws for anything the remote side (DNS, network,
 * server) does: every failure is `{ ok: false, reason, detail }` with a stable reason code.
 *
 * Enforces, in this order:
 * 1. CIMD-01 and the trust policy, before any DNS lookup (src/cimd/client-id.ts): an https
 *    client_id in canonical form, allowed/denied hosts; http only under the test allowance.
 * 2. One resolution: an IP literal is used as is; a name is resolved ONCE (`lookup`, by default
 *    src/cimd/dns.ts: A and AAAA through c-ares, off libuv's thread pool, cancelled at the
 *    deadline). EVERY address returned must be public
 *    (src/cimd/address-policy.ts): decision "any ⇒ refuse" — one private address among public
 *    ones is refused, not filtered out, because a name that points inside is either an attack
 *    or a misconfiguration, and P must not guess which. Under the insecure-http test allowance
 *    every address must instead be loopback (127/8, ::1), and nothing else.
 * 3. Connect to the CHECKED address, never to the name (no second lookup, no DNS-rebinding
 *    window; src/cimd/connect.ts): undici gets a `connect` function of ours that opens the socket to the checked IP
 *    itself (an IP literal, so node:net does no lookup; a `lookup` that refuses is passed as well).
 *    TLS still verifies the certificate for the URL's host: SNI is the host name and the identity
 *    check is pinned to it (`checkServerIdentity(host, cert)`), so a certificate for another
 *    name fails even though the socket was opened to an IP. The Host header is the URL's host.
 *    Checked addresses are tried in resolver order, moving on only when a TCP connection fails.
 *    An address is dialled only while the process's `destinations` gate has a place for it
 *    (src/cimd/resolve.ts, MAX_FETCHES_PER_DESTINATION); else the next one is tried, and when
 *    none had room the fetch ends `busy`, unconnected.
 * 4. No redirects: undici's Client follows none, and any 3xx is a refusal (CIMD §4 "MUST NOT
 *    automatically follow HTTP redirects"; CIMD-05's "every redirect hop" is then moot).
 * 5. GET with `Accept: application/json` and `Accept-Encoding: identity`; the answer (src/cimd/response.ts) must be 200
 *    (CIMD §4 "MUST treat all other HTTP status codes as an error"), `application/json` or
 *    `application/<x>+json` (CIMD §4), charset absent or UTF-8 (RFC 8259 §8.1), no content coding.
 * 6. At most `maxBytes` (5 KiB, CIMD §6.6): refused at once when Content-Length says more, and
 *    the read stops as soon as more has arrived.
 * 7. At most `timeoutMs` (5 s) for everything — lookup, connect, TLS, headers and body — on one
 *    deadline, not an idle timer, so a server trickling a byte a second is cut off too.
 *
 * The test seam (`testOnlyRoute`): production leaves it unset. It receives each CHECKED target
 * (address, family, port) after the policy has passed it and returns the IP and port to open the
 * socket to. Tests map a fake public address to a listener on 127.0.0.1, so they can run the
 * real policy, pinning and TLS verification without the internet; the route is never given a
 * refused address, must return an IP literal (a name is refused, so it cannot cause a lookup),
 * and cannot change what the TLS identity check compares against.
 */
import { isIP } from 'node:net';
import { Client, errors as undiciErrors } from 'undici';
import { classifyAddress, isLoopbackAddress } from './address-policy.js';
import { createDnsResolver, type ResolvedAddress, type Resolver } from './dns.js';
import { checkClientIdUrl, type ClientIdRefusal, type HostTrustPolicy } from './client-id.js';
import { errorCode, leaveDestination, pinnedConnector, printable, type CheckedTarget, type ConnectOptions, type ConnectState, type DestinationGate } from './connect.js';
import { firstHeader, header, refuseHead, type Headers } from './response.js';

export type { CheckedTarget } from './connect.js';

/** CIMD §6.6: "The recommended maximum size to read is 5 kilobytes." */
export const MAX_DOCUMENT_BYTES = 5 * 1024;
/** Issue 12: at most 5 s for the whole fetch. */
export const FETCH_TIMEOUT_MS = 5_000;
/** Bound on the response header block (undici refuses more). */
const MAX_HEADER_BYTES = 16 * 1024;

export type CimdFetchReason =
  | ClientIdRefusal
  /** the name did not resolve (or the resolver returned nothing usable) */
  | 'dns_failed'
  /** a resolved address (or the IP literal) is not public; detail names it and its range */
  | 'not_public_address'
  /** the insecure-http test allowance applies to loopback addresses only */
  | 'insecure_http_not_loopback'
  /** TCP connection refused, reset or unreachable */
  | 'connect_failed'
  /** TLS handshake or certificate verification failed */
  | 'tls_failed'
  | 'timeout'
  /** any 3xx; the Location was not followed */
  | 'redirect'
  /** any status but 200 */
  | 'bad_status'
  | 'bad_content_type'
  | 'too_large'
  /** malformed HTTP, oversized headers, a content coding, a connection cut mid-body */
  | 'bad_response'
  /** not UTF-8, or not JSON */
  | 'not_json'
  /** P's own bound: as many fetches as one address may serve at once were connected to that address already (`destinations`) */
  | 'busy';

export type { ResolvedAddress, Resolver } from './dns.js';

export interface CimdFetchOptions extends HostTrustPolicy, ConnectOptions {
  /** default: createDnsResolver() (src/cimd/dns.ts) */
  lookup?: Resolver;
  /** the DNS servers the default resolver asks (`ip` or `ip:port`) instead of the system's */
  dnsServers?: readonly string[];
  /** default FETCH_TIMEOUT_MS */
  timeoutMs?: number;
  /** default MAX_DOCUMENT_BYTES */
  maxBytes?: number;
  /** default Date.now */
  now?: () => number;
  userAgent?: string;
  /** the process's bound on fetches connected to one address (src/cimd/resolve.ts); none without it */
  destinations?: DestinationGate;
}

export type CimdFetchResult =
  | {
      ok: true;
      url: string;
      /** the parsed JSON, not yet validated (src/cimd/document.ts does that) */
      document: unknown;
      fetchedAt: number;
      /** the checked address the document came from */
      address: string;
      /** caching headers, raw, for src/cimd/cache.ts */
      cacheControl?: string;
      expires?: string;
      date?: string;
      age?: string;
    }
  | { ok: false; url: string; reason: CimdFetchReason; detail: string; fetchedAt: number; address?: string };

const defaultResolver: Resolver = createDnsResolver();

function raceDeadline<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}

type Refuse = (reason: CimdFetchReason, detail: string, address?: string) => CimdFetchResult & { ok: false };

/** Step 2: resolve once (an IP literal as is) and check every address; any refused ⇒ refusal. */
async function checkedTargets(
  hostname: string,
  port: number,
  insecureHttp: boolean,
  options: CimdFetchOptions,
  deadline: AbortSignal,
  refuse: Refuse,
): Promise<{ ok: true; targets: CheckedTarget[] } | (CimdFetchResult & { ok: false })> {
  const timeoutMs = options.timeoutMs ?? FETCH_TIMEOUT_MS;
  let resolved: readonly ResolvedAddress[];
  if (isIP(hostname) !== 0) {
    resolved = [{ address: hostname }];
  } else {
    try {
      const lookup = options.lookup ?? (options.dnsServers ? createDnsResolver({ servers: options.dnsServers }) : defaultResolver);
      resolved = await raceDeadline(lookup(hostname, deadline), deadline);
    } catch (error) {
      if (deadline.aborted) return refuse('timeout', `no answer from DNS for ${printable(hostname)} within ${timeoutMs} ms`);
      return refuse('dns_failed', `${printable(hostname)} did not resolve: ${errorCode(error)}`);
    }
    if (!Array.isArray(resolved) || resolved.length === 0) return refuse('dns_failed', `${printable(hostname)} resolved to no address`);
  }
  const targets: CheckedTarget[] = [];
  for (const entry of resolved) {
    const address = typeof entry?.address === 'string' ? entry.address : '';
    const family = isIP(address);
    if (family === 0) return refuse('dns_failed', `the resolver returned something that is not an address: ${printable(address)}`);
    if (insecureHttp) {
      if (!isLoopbackAddress(address)) return refuse('insecure_http_not_loopback', `${address}: plain http is allowed for loopback documents only`, address);
    } else {
      const verdict = classifyAddress(address);
      if (!verdict.public) return refuse('not_public_address', `${address} is ${verdict.reason} (${verdict.range})`, address);
    }
    targets.push({ address, family: family as 4 | 6, port });
  }
  return { ok: true, targets };
}

interface Body extends AsyncIterable<Buffer> {
  on(event: 'error', listener: () => void): unknown;
  destroy(): unknown;
}

/** Steps 5–6: judge the answer and read at most maxBytes of JSON. */
async function readDocument(
  response: { statusCode: number; headers: Headers; body: Body },
  clientId: string,
  address: string | undefined,
  options: CimdFetchOptions,
  refuse: Refuse,
): Promise<CimdFetchResult> {
  const maxBytes = options.maxBytes ?? MAX_DOCUMENT_BYTES;
  const { statusCode, headers, body } = response;
  // Destroying the body is how a refusal stops reading; undici then emits an abort error.
  body.on('error', () => undefined);
  const head = refuseHead(statusCode, headers, maxBytes);
  if (head) {
    body.destroy();
    return refuse(head.reason, head.detail, address);
  }
  const chunks: Buffer[] = [];
  let received = 0;
  for await (const chunk of body) {
    received += chunk.length;
    if (received > maxBytes) {
      body.destroy();
      return refuse('too_large', `the document exceeds ${maxBytes} bytes`, address);
    }
    chunks.push(chunk);
  }
  let document: unknown;
  try {
    document = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(Buffer.concat(chunks)));
  } catch (error) {
    return refuse('not_json', `the body is not UTF-8 JSON: ${error instanceof SyntaxError ? 'syntax error' : 'invalid UTF-8'}`, address);
  }
  const caching = { cacheControl: header(headers, 'cache-control'), expires: firstHeader(headers, 'expires'), date: firstHeader(headers, 'date'), age: firstHeader(headers, 'age') };
  return {
    ok: true,
    url: clientId,
    document,
    fetchedAt: (options.now ?? Date.now)(),
    address: address ?? '',
    ...Object.fromEntries(Object.entries(caching).filter(([, value]) => value !== undefined)),
  };
}

/** What a thrown error during steps 3–7 means, as a refusal. */
function failureOf(error: unknown, state: ConnectState, responseStarted: boolean, deadline: AbortSignal, timeoutMs: number, refuse: Refuse): CimdFetchResult {
  const address = state.connectedAddress;
  if (deadline.aborted) return refuse('timeout', `no complete document within ${timeoutMs} ms`, address);
  if (error instanceof undiciErrors.HeadersTimeoutError || error instanceof undiciErrors.BodyTimeoutError || error instanceof undiciErrors.ConnectTimeoutError) {
    return refuse('timeout', `no complete document within ${timeoutMs} ms`, address);
  }
  if (!responseStarted && state.failure) return refuse(state.failure.reason, state.failure.detail, state.failure.address);
  if (error instanceof undiciErrors.HeadersOverflowError) return refuse('bad_response', `response headers exceed ${MAX_HEADER_BYTES} bytes`, address);
  if (responseStarted || error instanceof undiciErrors.HTTPParserError) return refuse('bad_response', `the response broke off or is not HTTP: ${errorCode(error)}`, address);
  if (address !== undefined) return refuse('bad_response', `the server closed the connection without an answer: ${errorCode(error)}`, address);
  return refuse('connect_failed', `could not connect: ${errorCode(error)}`);
}

/**
 * Fetch the Client ID Metadata Document at `clientId` (the raw client_id string). Resolves to
 * the parsed JSON or a refusal; never rejects because of DNS, the network or the server.
 */
export async function fetchClientMetadata(clientId: string, options: CimdFetchOptions = {}): Promise<CimdFetchResult> {
  const now = options.now ?? Date.now;
  const timeoutMs = options.timeoutMs ?? FETCH_TIMEOUT_MS;
  const refuse: Refuse = (reason, detail, address) => ({ ok: false, url: clientId, reason, detail, fetchedAt: now(), ...(address !== undefined ? { address } : {}) });

  // 1. URL shape and trust policy: no DNS, no connection yet.
  const check = checkClientIdUrl(clientId, options);
  if (!check.ok) return refuse(check.reason, check.detail);
  const { url, hostname, port, insecureHttp } = check;

  const deadline = new AbortController();
  const timer = setTimeout(() => deadline.abort(new Error('deadline')), timeoutMs);
  timer.unref();
  const state: ConnectState = { sockets: new Set() };
  let client: Client | undefined;
  let responseStarted = false;
  try {
    // 2. Resolve once and check every address.
    const checked = await checkedTargets(hostname, port, insecureHttp, options, deadline.signal, refuse);
    if (!checked.ok) return checked;
    // 3–7. Connect to the checked address, one GET, within the deadline and the size limit.
    client = new Client(url.origin, {
      connect: pinnedConnector(checked.targets, hostname, url.protocol === 'https:', options, state, deadline.signal, options.destinations),
      allowH2: false,
      pipelining: 1,
      maxHeaderSize: MAX_HEADER_BYTES,
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
    });
    const response = await client.request({
      path: `${url.pathname}${url.search}`,
      method: 'GET',
      headers: { accept: 'application/json', 'accept-encoding': 'identity', 'user-agent': options.userAgent ?? 'mcp-consent-proxy (client-id-metadata-document fetcher)' },
      signal: deadline.signal,
    });
    responseStarted = true;
    return await readDocument(response as unknown as { statusCode: number; headers: Headers; body: Body }, clientId, state.connectedAddress, options, refuse);
  } catch (error) {
    return failureOf(error, state, responseStarted, deadline.signal, timeoutMs, refuse);
  } finally {
    clearTimeout(timer);
    for (const socket of state.sockets) socket.destroy();
    leaveDestination(state, options.destinations);
    if (client) await client.destroy().catch(() => undefined);
  }
}
