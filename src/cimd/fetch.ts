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
 *    `dns.lookup` with `all: true`). EVERY address returned must be public
 *    (src/cimd/address-policy.ts): decision "any ⇒ refuse" — one private address among public
 *    ones is refused, not filtered out, because a name that points inside is either an attack
 *    or a misconfiguration, and P must not guess which. Under the insecure-http test allowance
 *    every address must instead be loopback (127/8, ::1), and nothing else.
 * 3. Connect to the CHECKED address, never to the name (no second lookup, no DNS-rebinding
 *    window): undici gets a `connect` function of ours that opens the socket to the checked IP
 *    itself (an IP literal, so node:net does no lookup; a `lookup` that refuses is passed as well).
 *    TLS still verifies the certificate for the URL's host: SNI is the host name and the identity
 *    check is pinned to it (`checkServerIdentity(host, cert)`), so a certificate for another
 *    name fails even though the socket was opened to an IP. The Host header is the URL's host.
 *    Checked addresses are tried in resolver order, moving on only when a TCP connection fails.
 * 4. No redirects: undici's Client follows none, and any 3xx is a refusal (CIMD §4 "MUST NOT
 *    automatically follow HTTP redirects"; CIMD-05's "every redirect hop" is then moot).
 * 5. GET with `Accept: application/json` and `Accept-Encoding: identity`; the answer must be 200
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
import { lookup as dnsLookup } from 'node:dns/promises';
import { connect as netConnect, isIP, type LookupFunction, type Socket } from 'node:net';
import { checkServerIdentity, connect as tlsConnect } from 'node:tls';
import { Client, errors as undiciErrors } from 'undici';
import { classifyAddress, isLoopbackAddress } from './address-policy.js';
import { checkClientIdUrl, type ClientIdRefusal, type HostTrustPolicy } from './client-id.js';

/** CIMD §6.6: "The recommended maximum size to read is 5 kilobytes." */
export const MAX_DOCUMENT_BYTES = 5 * 1024;
/** Issue 12: at most 5 s for the whole fetch. */
export const FETCH_TIMEOUT_MS = 5_000;
/** Bound on the addresses tried in turn when a TCP connection fails. */
const MAX_CONNECT_ATTEMPTS = 4;
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
  | 'not_json';

export interface ResolvedAddress {
  address: string;
  family?: number;
}

/** Resolves a host name to its addresses; called at most once per fetch. */
export type Resolver = (hostname: string) => Promise<readonly ResolvedAddress[]>;

/** An address that passed the policy, with the port to connect to. */
export interface CheckedTarget {
  address: string;
  family: 4 | 6;
  port: number;
}

export interface CimdFetchOptions extends HostTrustPolicy {
  /** default: dns.lookup(host, { all: true, verbatim: true }) */
  lookup?: Resolver;
  /** default FETCH_TIMEOUT_MS */
  timeoutMs?: number;
  /** default MAX_DOCUMENT_BYTES */
  maxBytes?: number;
  /** default Date.now */
  now?: () => number;
  /** TLS trust anchors; default: Node's bundled CAs (tests pass their self-signed certificate) */
  ca?: string | Buffer | Array<string | Buffer>;
  userAgent?: string;
  /** TEST SEAM — production leaves it unset. See the module comment. */
  testOnlyRoute?: (target: CheckedTarget) => { address: string; port: number };
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

const noLookup: LookupFunction = (hostname, _options, callback) => {
  callback(Object.assign(new Error(`refused a DNS lookup of ${hostname} after the address check`), { code: 'ENOTFOUND' }), '', 4);
};

const defaultResolver: Resolver = (hostname) => dnsLookup(hostname, { all: true, verbatim: true });

/** Bounded, printable text for `detail` (audit rows; DESIGN §9). */
function printable(value: string, max = 100): string {
  const clean = value.replace(/[^\x20-\x7e]/g, '?');
  return clean.length > max ? `${clean.slice(0, max)}…` : clean;
}

function header(headers: Record<string, string | string[] | undefined>, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value.join(', ') : value;
}

function firstHeader(headers: Record<string, string | string[] | undefined>, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** CIMD §4: application/json or application/<x>+json; charset absent or UTF-8 (RFC 8259 §8.1). */
function jsonContentType(value: string | string[] | undefined): { ok: true } | { ok: false; detail: string } {
  if (value === undefined) return { ok: false, detail: 'no Content-Type' };
  if (Array.isArray(value)) return { ok: false, detail: 'more than one Content-Type' };
  const [type, ...params] = value.split(';');
  const media = (type as string).trim().toLowerCase();
  if (media !== 'application/json' && !/^application\/[a-z0-9!#$&^_.+-]+\+json$/.test(media)) {
    return { ok: false, detail: `Content-Type ${printable(value)} is not JSON` };
  }
  for (const param of params) {
    const [name, raw] = param.split('=').map((s) => s.trim());
    if (name?.toLowerCase() === 'charset' && !/^"?utf-?8"?$/i.test(raw ?? '')) {
      return { ok: false, detail: `charset ${printable(raw ?? '')} is not UTF-8` };
    }
  }
  return { ok: true };
}

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

interface ConnectState {
  failure?: { reason: 'connect_failed' | 'tls_failed'; detail: string; address?: string };
  connectedAddress?: string;
  sockets: Set<Socket>;
}

function errorCode(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? printable(code, 60) : printable(error instanceof Error ? error.name : 'error', 60);
}

/**
 * undici `connect` function that opens the socket to the checked addresses only (step 3).
 * undici's own idea of the host (from the origin) is ignored.
 */
function pinnedConnector(
  targets: readonly CheckedTarget[],
  hostname: string,
  secure: boolean,
  options: CimdFetchOptions,
  state: ConnectState,
  deadline: AbortSignal,
) {
  // The name the certificate must carry: the URL host without a trailing dot (RFC 6066 §3: SNI
  // carries no trailing dot and no IP address).
  const identity = hostname.replace(/\.$/, '');
  const servername = isIP(identity) === 0 ? identity : undefined;
  return (_undiciOptions: unknown, callback: (...args: [null, Socket] | [Error, null]) => void): void => {
    let index = 0;
    const attempt = (): void => {
      const checked = targets[index] as CheckedTarget;
      if (deadline.aborted) {
        callback(new Error('deadline passed before connecting'), null);
        return;
      }
      let to: { address: string; port: number } = { address: checked.address, port: checked.port };
      if (options.testOnlyRoute) {
        try {
          to = options.testOnlyRoute(checked);
          if (isIP(to.address) === 0) throw new Error('the test route returned a host name, not an address');
        } catch (error) {
          state.failure = { reason: 'connect_failed', detail: `test route: ${errorCode(error)}`, address: checked.address };
          callback(error instanceof Error ? error : new Error('test route failed'), null);
          return;
        }
      }
      let tcpConnected = false;
      const socket: Socket = secure
        ? tlsConnect({
            host: to.address,
            port: to.port,
            lookup: noLookup,
            servername,
            ALPNProtocols: ['http/1.1'],
            rejectUnauthorized: true,
            ...(options.ca !== undefined ? { ca: options.ca } : {}),
            // The certificate must be valid for the URL's host, whatever address was dialled.
            checkServerIdentity: (_dialled, cert) => checkServerIdentity(identity, cert),
          })
        : netConnect({ host: to.address, port: to.port, lookup: noLookup });
      state.sockets.add(socket);
      socket.once('connect', () => {
        tcpConnected = true;
      });
      let settled = false;
      const onError = (error: Error) => {
        if (settled) return;
        settled = true;
        deadline.removeEventListener('abort', onDeadline);
        socket.destroy();
        if (!tcpConnected && !deadline.aborted && index + 1 < Math.min(targets.length, MAX_CONNECT_ATTEMPTS)) {
          index += 1;
          attempt();
          return;
        }
        state.failure = tcpConnected && secure
          ? { reason: 'tls_failed', detail: `TLS with ${checked.address} failed: ${errorCode(error)}`, address: checked.address }
          : { reason: 'connect_failed', detail: `connection to ${checked.address} port ${checked.port} failed: ${errorCode(error)}`, address: checked.address };
        callback(error, null);
      };
      // undici does not give up on a connection in progress when the request is aborted: the
      // deadline ends it here. A socket closed without an error must be reported as well.
      const onClose = () => onError(new Error('socket closed before the connection was ready'));
      const onDeadline = () => socket.destroy();
      socket.once('error', onError);
      socket.once('close', onClose);
      deadline.addEventListener('abort', onDeadline, { once: true });
      socket.once(secure ? 'secureConnect' : 'connect', () => {
        socket.off('error', onError);
        socket.off('close', onClose);
        deadline.removeEventListener('abort', onDeadline);
        state.connectedAddress = checked.address;
        callback(null, socket);
      });
    };
    attempt();
  };
}

/**
 * Fetch the Client ID Metadata Document at `clientId` (the raw client_id string). Resolves to
 * the parsed JSON or a refusal; never rejects because of DNS, the network or the server.
 */
export async function fetchClientMetadata(clientId: string, options: CimdFetchOptions = {}): Promise<CimdFetchResult> {
  const now = options.now ?? Date.now;
  const timeoutMs = options.timeoutMs ?? FETCH_TIMEOUT_MS;
  const maxBytes = options.maxBytes ?? MAX_DOCUMENT_BYTES;
  const refuse = (reason: CimdFetchReason, detail: string, address?: string): CimdFetchResult => ({
    ok: false,
    url: clientId,
    reason,
    detail,
    fetchedAt: now(),
    ...(address !== undefined ? { address } : {}),
  });

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
    let resolved: readonly ResolvedAddress[];
    if (isIP(hostname) !== 0) {
      resolved = [{ address: hostname }];
    } else {
      try {
        resolved = await raceDeadline((options.lookup ?? defaultResolver)(hostname), deadline.signal);
      } catch (error) {
        if (deadline.signal.aborted) return refuse('timeout', `no answer from DNS for ${printable(hostname)} within ${timeoutMs} ms`);
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
        if (!isLoopbackAddress(address)) {
          return refuse('insecure_http_not_loopback', `${address}: plain http is allowed for loopback documents only`, address);
        }
      } else {
        const verdict = classifyAddress(address);
        if (!verdict.public) return refuse('not_public_address', `${address} is ${verdict.reason} (${verdict.range})`, address);
      }
      targets.push({ address, family: family as 4 | 6, port });
    }

    // 3–7. Connect to the checked address, one GET, within the deadline and the size limit.
    client = new Client(url.origin, {
      connect: pinnedConnector(targets, hostname, url.protocol === 'https:', options, state, deadline.signal),
      allowH2: false,
      pipelining: 1,
      maxHeaderSize: MAX_HEADER_BYTES,
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
    });
    const response = await client.request({
      path: `${url.pathname}${url.search}`,
      method: 'GET',
      headers: {
        accept: 'application/json',
        'accept-encoding': 'identity',
        'user-agent': options.userAgent ?? 'mcp-consent-proxy (client-id-metadata-document fetcher)',
      },
      signal: deadline.signal,
    });
    responseStarted = true;
    const address = state.connectedAddress;
    const { statusCode: status, headers } = response;
    // Destroying the body is how a refusal stops reading; undici then emits an abort error.
    response.body.on('error', () => undefined);
    const discard = () => response.body.destroy();
    if (status >= 300 && status < 400) {
      discard();
      return refuse('redirect', `HTTP ${status}: redirects are not followed (CIMD §4)`, address);
    }
    if (status !== 200) {
      discard();
      return refuse('bad_status', `HTTP ${status}: a metadata document must be served with 200 (CIMD §4)`, address);
    }
    const type = jsonContentType(headers['content-type']);
    if (!type.ok) {
      discard();
      return refuse('bad_content_type', type.detail, address);
    }
    const coding = header(headers, 'content-encoding');
    if (coding !== undefined && coding.trim().toLowerCase() !== 'identity') {
      discard();
      return refuse('bad_response', `Content-Encoding ${printable(coding)} was not asked for`, address);
    }
    const declared = header(headers, 'content-length');
    if (declared !== undefined && Number(declared) > maxBytes) {
      discard();
      return refuse('too_large', `Content-Length ${printable(declared, 20)} exceeds ${maxBytes} bytes`, address);
    }
    const chunks: Buffer[] = [];
    let received = 0;
    for await (const chunk of response.body as AsyncIterable<Buffer>) {
      received += chunk.length;
      if (received > maxBytes) {
        discard();
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
    const caching = {
      cacheControl: header(headers, 'cache-control'),
      expires: firstHeader(headers, 'expires'),
      date: firstHeader(headers, 'date'),
      age: firstHeader(headers, 'age'),
    };
    return {
      ok: true,
      url: clientId,
      document,
      fetchedAt: now(),
      address: address ?? '',
      ...Object.fromEntries(Object.entries(caching).filter(([, value]) => value !== undefined)),
    };
  } catch (error) {
    const address = state.connectedAddress;
    if (deadline.signal.aborted) return refuse('timeout', `no complete document within ${timeoutMs} ms`, address);
    if (error instanceof undiciErrors.HeadersTimeoutError || error instanceof undiciErrors.BodyTimeoutError || error instanceof undiciErrors.ConnectTimeoutError) {
      return refuse('timeout', `no complete document within ${timeoutMs} ms`, address);
    }
    if (!responseStarted && state.failure) return refuse(state.failure.reason, state.failure.detail, state.failure.address);
    if (error instanceof undiciErrors.HeadersOverflowError) return refuse('bad_response', `response headers exceed ${MAX_HEADER_BYTES} bytes`, address);
    if (responseStarted || error instanceof undiciErrors.HTTPParserError) return refuse('bad_response', `the response broke off or is not HTTP: ${errorCode(error)}`, address);
    if (address !== undefined) return refuse('bad_response', `the server closed the connection without an answer: ${errorCode(error)}`, address);
    return refuse('connect_failed', `could not connect: ${errorCode(error)}`);
  } finally {
    clearTimeout(timer);
    for (const socket of state.sockets) socket.destroy();
    if (client) await client.destroy().catch(() => undefined);
  }
}
