/**
 * CIMD fetcher — which IP addresses P may connect to (issue 12, DESIGN §10; CIMD-05, AT-20). Pure.
 * The one module that decides whether a resolved address is public. Every address a client_id
 * host resolves to passes through `classifyAddress` before any connection (src/cimd/fetch.ts).
 *
 * Enforces (draft-ietf-oauth-client-id-metadata-document §6.5 "SSRF": an authorization server
 * MUST NOT fetch a URL that resolves to a special-use address of RFC 6890; MCP Security Best
 * Practices "SSRF against authorization servers"):
 * - Every block of the IANA IPv4 and IPv6 Special-Purpose Address Registries (RFC 6890 and its
 *   updates) is refused, whatever its "globally reachable" column says (AS112, AMT and the
 *   protocol-assignment blocks never serve a client's metadata document): loopback, unspecified,
 *   private, link-local (cloud metadata at 169.254.169.254), CGNAT, unique-local, multicast,
 *   broadcast and reserved, documentation and benchmarking ranges.
 * - IPv6 is an allowlist: only global unicast (2000::/3, RFC 4291 §2.4 / IANA IPv6 address
 *   space) minus the special blocks inside it; everything else (site-local fec0::/10, the
 *   discard prefix 100::/64, unassigned space…) is refused as `reserved`.
 * - IPv4 embedded in IPv6 is judged by the IPv4 it carries, so no refused IPv4 passes in
 *   disguise: IPv4-mapped `::ffff:a.b.c.d` (RFC 4291 §2.5.5.2; the socket reaches a.b.c.d),
 *   IPv4-translated `::ffff:0:a.b.c.d` (RFC 2765), IPv4-compatible `::a.b.c.d` (deprecated,
 *   RFC 4291 §2.5.5.1) and NAT64 `64:ff9b::a.b.c.d` (RFC 6052). A mapped or NAT64 form of a
 *   public IPv4 is public (it reaches that IPv4; DNS64 networks need NAT64). The translated and
 *   compatible forms are refused even around a public IPv4: neither is routable today.
 * - Decision (6to4 / Teredo / local NAT64): 2002::/16 (6to4, RFC 3056; relays deprecated by
 *   RFC 7526), 2001::/32 (Teredo, RFC 4380) and 64:ff9b:1::/48 (local-use NAT64, RFC 8215) are
 *   refused whole, not by their embedded IPv4: a Teredo address carries a client's obfuscated
 *   IPv4, a local-use NAT64 prefix can place the IPv4 at any of six offsets (RFC 6052 §2.2), and
 *   no metadata host is reachable only through them.
 * - Only strict textual forms are read: dotted-quad IPv4 without leading zeros, RFC 4291 IPv6
 *   without a zone id. Anything else (`0177.0.0.1`, `127.1`, `fe80::1%eth0`) is `invalid` —
 *   never guessed at. (`new URL()` already rewrites such hosts to canonical dotted quads; the
 *   client_id rule refuses the non-canonical spelling in src/cimd/client-id.ts.)
 *
 * Parsing is by hand (below, ~50 lines, on top of node:net's isIPv4/isIPv6) rather than with
 * ipaddr.js: the security decision is the table of ranges and reason codes, which a library's
 * range names do not map onto one to one, and node:net's BlockList cannot see IPv4 inside
 * translated, compatible or NAT64 forms. test/unit/cimd-address-policy.test.ts checks the
 * prefix matching against BlockList.
 */
import { isIPv4, isIPv6 } from 'node:net';

/** Why an address is not public; stable codes for audit rows (`cimd.refused` detail). */
export type AddressRefusal =
  | 'invalid'
  | 'unspecified'
  | 'loopback'
  | 'private'
  | 'link_local'
  | 'cgnat'
  | 'unique_local'
  | 'multicast'
  | 'broadcast'
  | 'reserved'
  | 'documentation'
  | 'benchmarking'
  | 'protocol_assignments'
  | 'special_purpose'
  | 'ipv4_translated'
  | 'ipv4_compatible'
  | 'nat64_local'
  | '6to4'
  | 'teredo';

/** How an IPv4 was embedded in the IPv6 address that was judged by it. */
export type EmbeddingForm = 'ipv4_mapped' | 'ipv4_translated' | 'ipv4_compatible' | 'nat64';

export type AddressVerdict = { public: true; address: string; family: 4 | 6; via?: EmbeddingForm } | { public: false; address: string; reason: AddressRefusal; range: string; via?: EmbeddingForm };

interface Rule {
  cidr: string;
  reason: AddressRefusal;
  /** the rule it cites */
  source: string;
}

/** IANA IPv4 Special-Purpose Address Registry (RFC 6890 §2.2.2 and updates). First match wins. */
export const IPV4_RULES: readonly Rule[] = [
  { cidr: '0.0.0.0/8', reason: 'unspecified', source: 'RFC 791 "this network", RFC 6890' },
  { cidr: '10.0.0.0/8', reason: 'private', source: 'RFC 1918' },
  { cidr: '100.64.0.0/10', reason: 'cgnat', source: 'RFC 6598 shared address space' },
  { cidr: '127.0.0.0/8', reason: 'loopback', source: 'RFC 1122 §3.2.1.3' },
  { cidr: '169.254.0.0/16', reason: 'link_local', source: 'RFC 3927 (cloud metadata endpoints)' },
  { cidr: '172.16.0.0/12', reason: 'private', source: 'RFC 1918' },
  { cidr: '192.0.0.0/24', reason: 'protocol_assignments', source: 'RFC 6890 §2.2.2 IETF protocol assignments' },
  { cidr: '192.0.2.0/24', reason: 'documentation', source: 'RFC 5737 TEST-NET-1' },
  { cidr: '192.31.196.0/24', reason: 'special_purpose', source: 'RFC 7535 AS112-v4' },
  { cidr: '192.52.193.0/24', reason: 'special_purpose', source: 'RFC 7450 AMT' },
  { cidr: '192.88.99.0/24', reason: 'special_purpose', source: 'RFC 7526 deprecated 6to4 relay anycast' },
  { cidr: '192.168.0.0/16', reason: 'private', source: 'RFC 1918' },
  { cidr: '192.175.48.0/24', reason: 'special_purpose', source: 'RFC 7534 AS112 direct delegation' },
  { cidr: '198.18.0.0/15', reason: 'benchmarking', source: 'RFC 2544' },
  { cidr: '198.51.100.0/24', reason: 'documentation', source: 'RFC 5737 TEST-NET-2' },
  { cidr: '203.0.113.0/24', reason: 'documentation', source: 'RFC 5737 TEST-NET-3' },
  { cidr: '224.0.0.0/4', reason: 'multicast', source: 'RFC 5771' },
  { cidr: '255.255.255.255/32', reason: 'broadcast', source: 'RFC 919, RFC 8190' },
  { cidr: '240.0.0.0/4', reason: 'reserved', source: 'RFC 1112 §4' },
];

/** `::` and `::1`, judged before the embedding prefixes (both sit inside ::/96). */
export const IPV6_SINGLE_RULES: readonly Rule[] = [
  { cidr: '::/128', reason: 'unspecified', source: 'RFC 4291 §2.5.2' },
  { cidr: '::1/128', reason: 'loopback', source: 'RFC 4291 §2.5.3' },
];

/**
 * IANA IPv6 Special-Purpose Address Registry (RFC 6890 §2.2.3 and updates), first match wins.
 * The embedding prefixes (mapped, translated, compatible, NAT64 /96) are handled before these.
 */
export const IPV6_RULES: readonly Rule[] = [
  { cidr: '64:ff9b:1::/48', reason: 'nat64_local', source: 'RFC 8215 local-use IPv4/IPv6 translation' },
  { cidr: '100::/64', reason: 'special_purpose', source: 'RFC 6666 discard-only' },
  { cidr: 'fe80::/10', reason: 'link_local', source: 'RFC 4291 §2.5.6' },
  { cidr: 'fc00::/7', reason: 'unique_local', source: 'RFC 4193' },
  { cidr: 'ff00::/8', reason: 'multicast', source: 'RFC 4291 §2.7' },
  { cidr: '2001::/32', reason: 'teredo', source: 'RFC 4380' },
  { cidr: '2001:2::/48', reason: 'benchmarking', source: 'RFC 5180' },
  { cidr: '2001::/23', reason: 'protocol_assignments', source: 'RFC 2928 IETF protocol assignments' },
  { cidr: '2001:db8::/32', reason: 'documentation', source: 'RFC 3849' },
  { cidr: '2002::/16', reason: '6to4', source: 'RFC 3056, RFC 7526' },
  { cidr: '2620:4f:8000::/48', reason: 'special_purpose', source: 'RFC 7534 AS112 direct delegation' },
  { cidr: '3fff::/20', reason: 'documentation', source: 'RFC 9637' },
];

/** Global unicast: the only IPv6 space P connects to (RFC 4291 §2.4, IANA IPv6 address space). */
const GLOBAL_UNICAST = '2000::/3';

const IPV4_MAPPED = '::ffff:0:0/96';
const IPV4_TRANSLATED = '::ffff:0:0:0/96';
const NAT64 = '64:ff9b::/96';
const IPV4_COMPATIBLE = '::/96';

// ---------------------------------------------------------------------------------------------
// Strict parsing.

const DOTTED_QUAD = /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;

/** Dotted-quad IPv4 → 32-bit integer, or null (leading zeros, short forms, octal, hex: null). */
export function parseIPv4(text: string): number | null {
  if (!DOTTED_QUAD.test(text) || !isIPv4(text)) return null;
  return text.split('.').reduce((acc, part) => acc * 256 + Number(part), 0);
}

/** RFC 4291 §2.2 text → 128-bit integer, or null (zone ids, brackets, anything isIPv6 refuses). */
export function parseIPv6(text: string): bigint | null {
  if (text.includes('%') || !isIPv6(text)) return null;
  let head = text;
  let low32: number | null = null;
  const lastColon = text.lastIndexOf(':');
  if (text.indexOf('.', lastColon) !== -1) {
    low32 = parseIPv4(text.slice(lastColon + 1));
    if (low32 === null) return null;
    head = `${text.slice(0, lastColon + 1)}0:0`; // the dotted quad is the last two groups
  }
  const halves = head.split('::');
  if (halves.length > 2) return null;
  const groupsOf = (half: string | undefined) => (half ? half.split(':') : []);
  const left = groupsOf(halves[0]);
  const right = groupsOf(halves[1]);
  const missing = 8 - left.length - right.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return null;
  const groups = [...left, ...Array<string>(halves.length === 2 ? missing : 0).fill('0'), ...right];
  let value = 0n;
  for (const group of groups) {
    if (!/^[0-9a-fA-F]{1,4}$/.test(group)) return null;
    value = (value << 16n) | BigInt(parseInt(group, 16));
  }
  if (low32 !== null) value = (value & ~0xffffffffn) | BigInt(low32);
  return value;
}

interface Prefix {
  value: bigint;
  bits: number;
}

function prefixOf(cidr: string, width: 32 | 128): Prefix {
  const [text, bits] = cidr.split('/') as [string, string];
  const value = width === 32 ? parseIPv4(text) : parseIPv6(text);
  if (value === null) throw new Error(`bad CIDR in the address policy: ${cidr}`);
  return { value: BigInt(value), bits: Number(bits) };
}

function within(address: bigint, prefix: Prefix, width: 32 | 128): boolean {
  const shift = BigInt(width - prefix.bits);
  return address >> shift === prefix.value >> shift;
}

const V4_TABLE = IPV4_RULES.map((rule) => ({ rule, prefix: prefixOf(rule.cidr, 32) }));
const V6_SINGLE = IPV6_SINGLE_RULES.map((rule) => ({ rule, prefix: prefixOf(rule.cidr, 128) }));
const V6_TABLE = IPV6_RULES.map((rule) => ({ rule, prefix: prefixOf(rule.cidr, 128) }));
const EMBEDDINGS: readonly { form: EmbeddingForm; cidr: string; prefix: Prefix }[] = [
  { form: 'ipv4_mapped', cidr: IPV4_MAPPED, prefix: prefixOf(IPV4_MAPPED, 128) },
  { form: 'ipv4_translated', cidr: IPV4_TRANSLATED, prefix: prefixOf(IPV4_TRANSLATED, 128) },
  { form: 'nat64', cidr: NAT64, prefix: prefixOf(NAT64, 128) },
];
const COMPATIBLE = prefixOf(IPV4_COMPATIBLE, 128);
const GLOBAL = prefixOf(GLOBAL_UNICAST, 128);

/** The rule an IPv4 falls under, or null when it is public. */
function ipv4Rule(value: number): Rule | null {
  const v = BigInt(value);
  return V4_TABLE.find((entry) => within(v, entry.prefix, 32))?.rule ?? null;
}

/** The dotted quad of a 32-bit value. */
function dotted(value: number): string {
  return [24, 16, 8, 0].map((shift) => (value >>> shift) & 0xff).join('.');
}

/**
 * Judge one address as a resolver or a URL host gives it (IPv6 without brackets). Pure.
 * Public ⇔ no rule above refuses it.
 */
export function classifyAddress(address: string): AddressVerdict {
  const v4 = parseIPv4(address);
  if (v4 !== null) {
    const rule = ipv4Rule(v4);
    return rule ? { public: false, address, reason: rule.reason, range: rule.cidr } : { public: true, address, family: 4 };
  }
  const v6 = parseIPv6(address);
  if (v6 === null) return { public: false, address, reason: 'invalid', range: 'not an IPv4 dotted quad or an RFC 4291 IPv6 address' };

  for (const { rule, prefix } of V6_SINGLE) {
    if (within(v6, prefix, 128)) return { public: false, address, reason: rule.reason, range: rule.cidr };
  }
  const low = Number(v6 & 0xffffffffn);
  for (const embedding of EMBEDDINGS) {
    if (!within(v6, embedding.prefix, 128)) continue;
    const rule = ipv4Rule(low);
    if (rule) return { public: false, address, reason: rule.reason, range: `${rule.cidr} as ${embedding.cidr}`, via: embedding.form };
    if (embedding.form === 'ipv4_translated') {
      return { public: false, address, reason: 'ipv4_translated', range: `${embedding.cidr} (${dotted(low)})`, via: embedding.form };
    }
    return { public: true, address, family: 6, via: embedding.form };
  }
  if (within(v6, COMPATIBLE, 128)) {
    const rule = ipv4Rule(low);
    if (rule) return { public: false, address, reason: rule.reason, range: `${rule.cidr} as ${IPV4_COMPATIBLE}`, via: 'ipv4_compatible' };
    return { public: false, address, reason: 'ipv4_compatible', range: `${IPV4_COMPATIBLE} (${dotted(low)})`, via: 'ipv4_compatible' };
  }
  for (const { rule, prefix } of V6_TABLE) {
    if (within(v6, prefix, 128)) return { public: false, address, reason: rule.reason, range: rule.cidr };
  }
  if (!within(v6, GLOBAL, 128)) return { public: false, address, reason: 'reserved', range: `outside ${GLOBAL_UNICAST}` };
  return { public: true, address, family: 6 };
}

/**
 * Which destination an address counts under for the CIMD fetches connected at once
 * (src/cimd/resolve.ts MAX_FETCHES_PER_DESTINATION): an IPv4 address itself; an IPv4 carried in
 * IPv6 (mapped, NAT64 — the forms the policy lets through) as that IPv4, since that is the host
 * reached (review 2026-12-07: keyed by their IPv6 prefix, every IPv4-only host behind a DNS64
 * resolver shared one budget); any other IPv6 address by its /64, the smallest prefix a network
 * is given (RFC 7421), so that neighbours in a provider's larger prefix are not counted together.
 */
export function destinationKey(address: string): string {
  const v4 = parseIPv4(address);
  if (v4 !== null) return dotted(v4);
  const v6 = parseIPv6(address);
  if (v6 === null) return address;
  if (EMBEDDINGS.some((embedding) => within(v6, embedding.prefix, 128))) return dotted(Number(v6 & 0xffffffffn));
  const groups = Array.from({ length: 4 }, (_, i) => ((v6 >> BigInt(112 - 16 * i)) & 0xffffn).toString(16));
  return `${groups.join(':')}::/64`;
}

/** Convenience: is this address one P may connect to for a metadata document? */
export function isPublicAddress(address: string): boolean {
  return classifyAddress(address).public;
}

/**
 * Loopback only — 127/8, ::1 and ::ffff:127.x.y.z, which all reach this host (not the
 * compatible or NAT64 forms, which do not): the test-only insecure-http allowance.
 */
export function isLoopbackAddress(address: string): boolean {
  const verdict = classifyAddress(address);
  return !verdict.public && verdict.reason === 'loopback' && (verdict.via === undefined || verdict.via === 'ipv4_mapped');
}
