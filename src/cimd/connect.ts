/**
 * CIMD fetcher — the socket to a checked address (issue 12, DESIGN §10; CIMD-05, AT-20). Used
 * only by src/cimd/fetch.ts, whose module comment states the rules; this module implements its
 * step 3: "connect to the CHECKED address, never to the name".
 *
 * - undici gets `pinnedConnector` as its `connect` function: the socket is opened to the checked
 *   IP literal itself, with a `lookup` that refuses, so node:net makes no DNS query (no second
 *   lookup, no DNS-rebinding window). undici's own idea of the host (from the origin) is ignored.
 * - TLS verifies the certificate for the URL's host whatever address was dialled: SNI is the host
 *   name and the identity check is pinned to it (`checkServerIdentity(host, cert)`).
 * - Checked addresses are tried in resolver order, moving on only when a TCP connection fails, at
 *   most MAX_CONNECT_ATTEMPTS; the fetch deadline ends a connection in progress.
 * - A fetch dials an address only if the process's `DestinationGate` (src/cimd/resolve.ts,
 *   MAX_FETCHES_PER_DESTINATION) has a place for it; otherwise the next address is tried, and
 *   when none connected and one was skipped for want of a place, the fetch ends `busy`. The
 *   place is held while the connection is being made and while it is used, and given back when
 *   a TCP failure moves on to the next address and when the fetch ends (fetch.ts).
 * - The test seam `testOnlyRoute` (production leaves it unset) receives a target only after the
 *   policy passed it and must return an IP literal; see src/cimd/fetch.ts.
 */
import { connect as netConnect, isIP, type LookupFunction, type Socket } from 'node:net';
import { checkServerIdentity, connect as tlsConnect } from 'node:tls';

/** Bound on the addresses tried in turn when a TCP connection fails. */
const MAX_CONNECT_ATTEMPTS = 4;

/** An address that passed the policy, with the port to connect to. */
export interface CheckedTarget {
  address: string;
  family: 4 | 6;
  port: number;
}

export interface ConnectOptions {
  /** TLS trust anchors; default: Node's bundled CAs (tests pass their self-signed certificate) */
  ca?: string | Buffer | Array<string | Buffer>;
  /** TEST SEAM — production leaves it unset. See src/cimd/fetch.ts. */
  testOnlyRoute?: (target: CheckedTarget) => { address: string; port: number };
}

/**
 * Where the fetches of one process connect (src/cimd/resolve.ts): `enter` takes a place for a
 * connection to `address`, or says there is none; `leave` gives it back.
 */
export interface DestinationGate {
  enter(address: string): boolean;
  leave(address: string): void;
}

export interface ConnectState {
  failure?: { reason: 'connect_failed' | 'tls_failed' | 'busy'; detail: string; address?: string };
  connectedAddress?: string;
  sockets: Set<Socket>;
  /** the address whose place in the gate this fetch holds (given back by `leaveDestination`) */
  holding?: string;
  /** an address skipped because the gate had no place for it */
  full?: string;
}

/** Gives back the place a fetch holds in the gate, if any (once). */
export function leaveDestination(state: ConnectState, gate: DestinationGate | undefined): void {
  if (state.holding !== undefined) gate?.leave(state.holding);
  state.holding = undefined;
}

const noLookup: LookupFunction = (hostname, _options, callback) => {
  callback(Object.assign(new Error(`refused a DNS lookup of ${hostname} after the address check`), { code: 'ENOTFOUND' }), '', 4);
};

/** Bounded, printable text for `detail` (audit rows; DESIGN §9). */
export function printable(value: string, max = 100): string {
  const clean = value.replace(/[^\x20-\x7e]/g, '?');
  return clean.length > max ? `${clean.slice(0, max)}…` : clean;
}

export function errorCode(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? printable(code, 60) : printable(error instanceof Error ? error.name : 'error', 60);
}

type ConnectCallback = (...args: [null, Socket] | [Error, null]) => void;

interface Dial {
  targets: readonly CheckedTarget[];
  /** the URL host without a trailing dot: what the certificate must name */
  identity: string;
  secure: boolean;
  options: ConnectOptions;
  state: ConnectState;
  deadline: AbortSignal;
  gate: DestinationGate | undefined;
}

/** Where to open the socket for a checked target: itself, or the test route's loopback stand-in. */
function routeOf(dial: Dial, checked: CheckedTarget): { address: string; port: number } {
  if (!dial.options.testOnlyRoute) return { address: checked.address, port: checked.port };
  const to = dial.options.testOnlyRoute(checked);
  if (isIP(to.address) === 0) throw new Error('the test route returned a host name, not an address');
  return to;
}

/** Open the socket to an IP literal: TLS bound to the URL's host name, or plain TCP (test allowance). */
function openSocket(dial: Dial, to: { address: string; port: number }): Socket {
  // RFC 6066 §3: SNI carries no trailing dot and no IP address.
  const servername = isIP(dial.identity) === 0 ? dial.identity : undefined;
  if (!dial.secure) return netConnect({ host: to.address, port: to.port, lookup: noLookup });
  return tlsConnect({
    host: to.address,
    port: to.port,
    lookup: noLookup,
    servername,
    ALPNProtocols: ['http/1.1'],
    rejectUnauthorized: true,
    ...(dial.options.ca !== undefined ? { ca: dial.options.ca } : {}),
    // The certificate must be valid for the URL's host, whatever address was dialled.
    checkServerIdentity: (_dialled, cert) => checkServerIdentity(dial.identity, cert),
  });
}

/** The fetch's failure once no target is left: `busy` when one was skipped for want of a place (a later try may find one). */
function fail(state: ConnectState, failure: ConnectState['failure'], error: Error, callback: ConnectCallback): void {
  state.failure =
    state.full !== undefined
      ? { reason: 'busy', detail: `client metadata documents are being fetched from ${state.full} already, as many as one address may serve at once`, address: state.full }
      : failure;
  callback(error, null);
}

/** One attempt on targets[index]; on a TCP failure, or no place in the gate, the next target is tried (bounded). */
function attempt(dial: Dial, index: number, callback: ConnectCallback): void {
  const { targets, secure, state, deadline } = dial;
  const checked = targets[index] as CheckedTarget;
  if (deadline.aborted) return callback(new Error('deadline passed before connecting'), null);
  const last = index + 1 >= Math.min(targets.length, MAX_CONNECT_ATTEMPTS);
  leaveDestination(state, dial.gate);
  if (dial.gate) {
    if (!dial.gate.enter(checked.address)) {
      state.full = checked.address;
      if (!last) return attempt(dial, index + 1, callback);
      return fail(state, undefined, new Error('no place for another connection to these addresses'), callback);
    }
    state.holding = checked.address;
  }
  let to: { address: string; port: number };
  try {
    to = routeOf(dial, checked);
  } catch (error) {
    state.failure = { reason: 'connect_failed', detail: `test route: ${errorCode(error)}`, address: checked.address };
    return callback(error instanceof Error ? error : new Error('test route failed'), null);
  }
  const socket = openSocket(dial, to);
  state.sockets.add(socket);
  let tcpConnected = false;
  socket.once('connect', () => (tcpConnected = true));
  let settled = false;
  const onError = (error: Error) => {
    if (settled) return;
    settled = true;
    deadline.removeEventListener('abort', onDeadline);
    socket.destroy();
    if (!tcpConnected && !deadline.aborted && !last) return attempt(dial, index + 1, callback);
    if (tcpConnected && secure) {
      state.failure = { reason: 'tls_failed', detail: `TLS with ${checked.address} failed: ${errorCode(error)}`, address: checked.address };
      return callback(error, null);
    }
    fail(state, { reason: 'connect_failed', detail: `connection to ${checked.address} port ${checked.port} failed: ${errorCode(error)}`, address: checked.address }, error, callback);
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
}

/**
 * undici `connect` function that opens the socket to the checked addresses only.
 * `hostname` is the URL's host (what TLS must verify), never dialled.
 */
export function pinnedConnector(
  targets: readonly CheckedTarget[],
  hostname: string,
  secure: boolean,
  options: ConnectOptions,
  state: ConnectState,
  deadline: AbortSignal,
  gate: DestinationGate | undefined,
) {
  const dial: Dial = { targets, identity: hostname.replace(/\.$/, ''), secure, options, state, deadline, gate };
  return (_undiciOptions: unknown, callback: ConnectCallback): void => attempt(dial, 0, callback);
}
