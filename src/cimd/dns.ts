/**
 * CIMD-05 — how P resolves the host of a client_id URL by default (src/cimd/fetch.ts, step 2, calls
 * it once per fetch; what it returns is then judged address by address there).
 *
 * Not `dns.lookup`: that is getaddrinfo(3) run on one of libuv's four thread-pool threads, and it
 * cannot be cancelled. A name whose DNS servers never answer held its thread for the system
 * resolver's whole timeout (resolv.conf: 5 s per attempt, per server), whatever the fetch's
 * deadline, so a few authorization requests naming such hosts (up to MAX_CONCURRENT_FETCHES at
 * once) took all four threads, and everything else P runs on the pool — file system calls (the
 * audit checkpoint file, static files), asynchronous crypto, zlib — waited behind them.
 *
 * Instead, c-ares (node:dns `Resolver`), which runs on the event loop's own sockets:
 * - A and AAAA are asked at once; the answer is the addresses of both. One that fails while the
 *   other has addresses is left out: only addresses that were returned are ever judged and
 *   connected to, so a missing family can only mean fewer targets. Every address in an answer is
 *   judged, so a resolver that adds records of other names can only cause refusals.
 * - Order (src/cimd/connect.ts tries at most four, in this order): the families interleaved
 *   (RFC 8305 §4), starting with IPv6 when this machine has a global IPv6 address and with IPv4
 *   otherwise — as getaddrinfo's RFC 6724 sorting would — so a host reaching only one family
 *   still tries it within four attempts (found by review: IPv4 first lost an IPv6-only host
 *   its attempts on a name with four A records).
 * - Each lookup has its own channel, cancelled (`Resolver.cancel`) when the fetch's deadline
 *   passes, so no query outlives its fetch; c-ares retries within it (PER_TRY_MS, TRIES).
 * - `localhost` and names under `.localhost.` are answered 127.0.0.1 and ::1 without a query
 *   (RFC 6761 §6.3), so the loopback test allowance works without /etc/hosts; everywhere else the
 *   address policy refuses them.
 * - The name servers are the system's (the `nameserver` lines of /etc/resolv.conf; no `search`
 *   list or `ndots`, and /etc/hosts is not read), so a host is judged by what its DNS says of it.
 *   `servers` replaces them (tests: a DNS server on 127.0.0.1).
 */
import { Resolver as DnsResolver } from 'node:dns/promises';
import { networkInterfaces } from 'node:os';

export interface ResolvedAddress {
  address: string;
  family?: number;
}

/** Resolves a host name to its addresses; called at most once per fetch (src/cimd/fetch.ts). `signal` aborts at the fetch's deadline. */
export type Resolver = (hostname: string, signal?: AbortSignal) => Promise<readonly ResolvedAddress[]>;

/** c-ares's first wait for an answer; it doubles on each retry. */
export const PER_TRY_MS = 1_000;
/** Queries per name and server before c-ares gives up (the fetch's deadline usually ends it first). */
export const TRIES = 3;

const LOCALHOST: readonly ResolvedAddress[] = [
  { address: '127.0.0.1', family: 4 },
  { address: '::1', family: 6 },
];
/** RFC 6761 §6.3: `localhost.` and every name below it. The URL parser has lowercased the host. */
const isLocalhostName = (hostname: string): boolean => /(?:^|\.)localhost\.?$/.test(hostname);

/** a, b, a, b, … and then the rest of the longer one */
function interleave<T>(first: readonly T[], second: readonly T[]): T[] {
  const out: T[] = [];
  for (let i = 0; i < Math.max(first.length, second.length); i++) {
    if (i < first.length) out.push(first[i] as T);
    if (i < second.length) out.push(second[i] as T);
  }
  return out;
}

/** Whether an interface of this machine has a global IPv6 address (not loopback, link-local or unique-local). */
export function hasGlobalIpv6(interfaces = networkInterfaces()): boolean {
  return Object.values(interfaces).some((list) => list?.some((a) => a.family === 'IPv6' && !a.internal && /^[23]/.test(a.address)));
}

export interface DnsResolverOptions {
  /** `ip` or `ip:port` of the DNS servers to ask instead of the system's */
  servers?: readonly string[];
  /** whether IPv6 addresses come first; default hasGlobalIpv6() at each lookup */
  preferIpv6?: () => boolean;
}

/** The default Resolver of src/cimd/fetch.ts (see the module comment). */
export function createDnsResolver(options: DnsResolverOptions = {}): Resolver {
  return async (hostname, signal) => {
    if (isLocalhostName(hostname)) return LOCALHOST;
    signal?.throwIfAborted();
    const channel = new DnsResolver({ timeout: PER_TRY_MS, tries: TRIES });
    if (options.servers) channel.setServers([...options.servers]);
    const cancel = () => channel.cancel();
    signal?.addEventListener('abort', cancel, { once: true });
    try {
      const [v4, v6] = await Promise.allSettled([channel.resolve4(hostname), channel.resolve6(hostname)]);
      const four = v4.status === 'fulfilled' ? v4.value.map((address) => ({ address, family: 4 })) : [];
      const six = v6.status === 'fulfilled' ? v6.value.map((address) => ({ address, family: 6 })) : [];
      if (four.length + six.length > 0) return (options.preferIpv6 ?? hasGlobalIpv6)() ? interleave(six, four) : interleave(four, six);
      // Neither family: the A query's failure says why (ENOTFOUND, ETIMEOUT, ECANCELLED, …).
      throw v4.status === 'rejected' ? v4.reason : v6.status === 'rejected' ? v6.reason : new Error('no address');
    } finally {
      signal?.removeEventListener('abort', cancel);
    }
  };
}
