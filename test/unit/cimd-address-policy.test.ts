/**
 * CIMD-05 address policy (src/cimd/address-policy.ts): which resolved addresses count as public,
 * with reason codes; IPv4 inside IPv6 judged by the IPv4; strict parsing. The hand-written prefix
 * matching and IPv6 parsing are cross-checked against node:net (BlockList, URL serialisation) on
 * every range boundary and on seeded random addresses.
 */
import { BlockList } from 'node:net';
import { describe, expect, it } from 'vitest';
import { classifyAddress, destinationKey, IPV4_RULES, IPV6_RULES, isLoopbackAddress, isPublicAddress, parseIPv4, parseIPv6 } from '../../src/cimd/address-policy.js';

describe('CIMD-05 address policy › refused IPv4 ranges, each with its reason', () => {
  it.each([
    ['0.0.0.0', 'unspecified'], ['0.255.255.255', 'unspecified'],
    ['127.0.0.1', 'loopback'], ['127.255.255.254', 'loopback'],
    ['10.0.0.0', 'private'], ['10.255.255.255', 'private'],
    ['172.16.0.1', 'private'], ['172.31.255.255', 'private'],
    ['192.168.0.1', 'private'],
    ['169.254.169.254', 'link_local'], ['169.254.0.1', 'link_local'],
    ['100.64.0.0', 'cgnat'], ['100.127.255.255', 'cgnat'],
    ['224.0.0.1', 'multicast'], ['239.255.255.255', 'multicast'],
    ['240.0.0.1', 'reserved'], ['255.255.255.254', 'reserved'],
    ['255.255.255.255', 'broadcast'],
    ['192.0.2.1', 'documentation'], ['198.51.100.7', 'documentation'], ['203.0.113.200', 'documentation'],
    ['198.18.0.1', 'benchmarking'], ['198.19.255.255', 'benchmarking'],
    ['192.0.0.9', 'protocol_assignments'],
    ['192.88.99.1', 'special_purpose'], ['192.31.196.1', 'special_purpose'], ['192.52.193.1', 'special_purpose'], ['192.175.48.1', 'special_purpose'],
  ])('%s → %s', (address, reason) => {
    expect(classifyAddress(address)).toMatchObject({ public: false, reason });
  });

  it.each(['1.1.1.1', '8.8.8.8', '93.184.216.34', '172.15.255.255', '172.32.0.0', '100.63.255.255', '100.128.0.0', '169.253.255.255', '198.17.255.255', '198.20.0.0', '223.255.255.255', '11.0.0.0', '9.255.255.255', '192.0.1.255', '192.0.3.0'])(
    '%s is public (just outside the refused ranges)',
    (address) => {
      expect(classifyAddress(address)).toEqual({ public: true, address, family: 4 });
    },
  );
});

describe('CIMD-05 address policy › IPv6', () => {
  it.each([
    ['::', 'unspecified', undefined],
    ['::1', 'loopback', undefined],
    ['0:0:0:0:0:0:0:1', 'loopback', undefined],
    ['fe80::1', 'link_local', undefined], ['febf::1', 'link_local', undefined],
    ['fc00::1', 'unique_local', undefined], ['fdff:ffff::1', 'unique_local', undefined],
    ['ff02::1', 'multicast', undefined], ['ff0e::1', 'multicast', undefined],
    ['fec0::1', 'reserved', undefined], // site-local, deprecated
    ['100::1', 'special_purpose', undefined], // discard-only
    ['5f00::1', 'reserved', undefined], // outside 2000::/3
    ['4000::1', 'reserved', undefined],
    ['2001:db8::1', 'documentation', undefined], ['3fff:fff::1', 'documentation', undefined],
    ['2001:2::1', 'benchmarking', undefined],
    ['2001::1', 'teredo', undefined], ['2001:0:4136:e378:8000:63bf:3fff:fdd2', 'teredo', undefined],
    ['2001:10::1', 'protocol_assignments', undefined],
    ['2002:7f00:1::1', '6to4', undefined], ['2002:808:808::1', '6to4', undefined], // 6to4 of a public IPv4 too
    ['2620:4f:8000::1', 'special_purpose', undefined],
    ['64:ff9b:1::a00:1', 'nat64_local', undefined],
    // IPv4 inside IPv6, judged by the IPv4
    ['::ffff:127.0.0.1', 'loopback', 'ipv4_mapped'],
    ['::ffff:7f00:1', 'loopback', 'ipv4_mapped'],
    ['::FFFF:7F00:0001', 'loopback', 'ipv4_mapped'],
    ['0:0:0:0:0:ffff:a9fe:a9fe', 'link_local', 'ipv4_mapped'],
    ['::ffff:10.0.0.1', 'private', 'ipv4_mapped'],
    ['::ffff:0:7f00:1', 'loopback', 'ipv4_translated'],
    ['::ffff:0:10.0.0.1', 'private', 'ipv4_translated'],
    ['::ffff:0:8.8.8.8', 'ipv4_translated', 'ipv4_translated'], // not routable even around a public IPv4
    ['64:ff9b::7f00:1', 'loopback', 'nat64'],
    ['64:ff9b::127.0.0.1', 'loopback', 'nat64'],
    ['64:ff9b::a9fe:a9fe', 'link_local', 'nat64'],
    ['64:ff9b::c0a8:1', 'private', 'nat64'],
    ['::127.0.0.1', 'loopback', 'ipv4_compatible'],
    ['::a00:1', 'private', 'ipv4_compatible'],
    ['::8.8.8.8', 'ipv4_compatible', 'ipv4_compatible'], // deprecated form: refused even around a public IPv4
  ])('%s → %s', (address, reason, via) => {
    const verdict = classifyAddress(address);
    expect(verdict).toMatchObject({ public: false, reason });
    expect(verdict.via).toBe(via);
  });

  it.each([
    ['2606:4700:4700::1111', undefined],
    ['2001:4860:4860::8888', undefined],
    ['2a00:1450:4001:81c::200e', undefined],
    ['2001:200::1', undefined], // just above 2001::/23
    ['::ffff:8.8.8.8', 'ipv4_mapped'], // reaches 8.8.8.8
    ['::ffff:808:808', 'ipv4_mapped'],
    ['64:ff9b::8.8.8.8', 'nat64'], // DNS64 networks reach public IPv4 this way
  ])('%s is public', (address, via) => {
    const verdict = classifyAddress(address);
    expect(verdict).toMatchObject({ public: true, family: 6 });
    expect(verdict.via).toBe(via);
  });
});

describe('CIMD-05 address policy › only strict textual forms are read', () => {
  it.each(['0177.0.0.1', '0x7f.0.0.1', '127.1', '2130706433', '127.0.0.01', '256.0.0.1', '1.2.3.4.5', ' 1.2.3.4', '1.2.3.4 ', '[::1]', 'fe80::1%eth0', 'fe80::1%25eth0', '1::2::3', '::ffff:127.1', '::ffff:0177.0.0.1', 'localhost', '', 'g::1', '12345::1'])(
    '%j is invalid (never guessed at)',
    (address) => {
      expect(classifyAddress(address)).toMatchObject({ public: false, reason: 'invalid' });
      expect(isPublicAddress(address)).toBe(false);
    },
  );

  it('isLoopbackAddress: 127/8, ::1 and ::ffff:127.x only — not the compatible or NAT64 forms, not a private address', () => {
    for (const yes of ['127.0.0.1', '127.9.9.9', '::1', '::ffff:127.0.0.1']) expect(isLoopbackAddress(yes), yes).toBe(true);
    for (const no of ['::127.0.0.1', '64:ff9b::7f00:1', '10.0.0.1', '8.8.8.8', '::', 'localhost']) expect(isLoopbackAddress(no), no).toBe(false);
  });
});

// ---------------------------------------------------------------------------------------------
// Cross-checks against node:net.

/** Deterministic PRNG (mulberry32), so a failure can be replayed. */
function prng(seed: number) {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const v4Text = (n: bigint) => [24n, 16n, 8n, 0n].map((s) => Number((n >> s) & 0xffn)).join('.');
const v6Full = (n: bigint) => Array.from({ length: 8 }, (_, i) => ((n >> BigInt(112 - 16 * i)) & 0xffffn).toString(16)).join(':');
/** Node's own compressed serialisation of an IPv6 address. */
const v6Compressed = (n: bigint) => new URL(`http://[${v6Full(n)}]/`).hostname.slice(1, -1);

function boundaries(cidr: string, width: 32 | 128): bigint[] {
  const [text, bitsText] = cidr.split('/') as [string, string];
  const start = width === 32 ? BigInt(parseIPv4(text) as number) : (parseIPv6(text) as bigint);
  const size = 1n << BigInt(width - Number(bitsText));
  const max = (1n << BigInt(width)) - 1n;
  return [start - 1n, start, start + 1n, start + size / 2n, start + size - 1n, start + size].filter((n) => n >= 0n && n <= max);
}

describe('CIMD-05 address policy › cross-checked against node:net', () => {
  it('IPv4: refused ⇔ in one of the rules, per BlockList, on every boundary and 20,000 random addresses', () => {
    const blocked = new BlockList();
    for (const rule of IPV4_RULES) {
      const [net, bits] = rule.cidr.split('/') as [string, string];
      blocked.addSubnet(net, Number(bits), 'ipv4');
    }
    const random = prng(20);
    const samples = [
      ...IPV4_RULES.flatMap((rule) => boundaries(rule.cidr, 32)),
      ...Array.from({ length: 20_000 }, () => BigInt(Math.floor(random() * 2 ** 32))),
    ];
    for (const n of samples) {
      const address = v4Text(n);
      expect(parseIPv4(address), address).toBe(Number(n));
      expect(isPublicAddress(address), address).toBe(!blocked.check(address, 'ipv4'));
    }
  });

  it('IPv6: parsing agrees with Node on full, compressed and upper-case spellings; refused ⇔ outside 2000::/3 or in a rule, per BlockList', () => {
    const rulesInGlobal = new BlockList();
    for (const rule of IPV6_RULES) {
      const [net, bits] = rule.cidr.split('/') as [string, string];
      rulesInGlobal.addSubnet(net, Number(bits), 'ipv6');
    }
    const global = new BlockList();
    global.addSubnet('2000::', 3, 'ipv6');
    const random = prng(6);
    const randomV6 = (prefix: bigint, bits: number) => {
      let n = 0n;
      for (let i = 0; i < 4; i++) n = (n << 32n) | BigInt(Math.floor(random() * 2 ** 32));
      const hostMask = (1n << BigInt(128 - bits)) - 1n;
      return (prefix & ~hostMask) | (n & hostMask);
    };
    const samples = [
      ...IPV6_RULES.flatMap((rule) => boundaries(rule.cidr, 128)),
      ...boundaries('2000::/3', 128),
      ...Array.from({ length: 5_000 }, () => randomV6(0x2000n << 112n, 3)), // global unicast
      ...Array.from({ length: 2_000 }, () => randomV6(0n, 0)), // anywhere
      ...Array.from({ length: 1_000 }, () => randomV6(0x20010000n << 96n, 16)), // near 2001::/23 and Teredo
    ];
    for (const n of samples) {
      for (const spelling of [v6Full(n), v6Compressed(n), v6Full(n).toUpperCase()]) {
        expect(parseIPv6(spelling), spelling).toBe(n);
      }
      const address = v6Compressed(n);
      // The embedding prefixes (::/96, ::ffff:0:0/96, ::ffff:0:0:0/96, 64:ff9b::/96) sit outside
      // 2000::/3; their own tests are above.
      const embedded = n >> 32n === 0n || n >> 32n === 0xffffn || n >> 32n === 0xffff0000n || n >> 32n === 0x64ff9b0000000000000000n;
      if (embedded) continue;
      const expected = global.check(address, 'ipv6') && !rulesInGlobal.check(address, 'ipv6');
      expect(isPublicAddress(address), address).toBe(expected);
    }
  });

  it('IPv4-mapped forms agree with BlockList, which applies IPv4 rules to them', () => {
    const blocked = new BlockList();
    for (const rule of IPV4_RULES) {
      const [net, bits] = rule.cidr.split('/') as [string, string];
      blocked.addSubnet(net, Number(bits), 'ipv4');
    }
    const random = prng(46);
    for (let i = 0; i < 5_000; i++) {
      const v4 = v4Text(BigInt(Math.floor(random() * 2 ** 32)));
      const mapped = `::ffff:${v4}`;
      expect(isPublicAddress(mapped), mapped).toBe(!blocked.check(mapped, 'ipv6'));
      expect(isPublicAddress(mapped), mapped).toBe(isPublicAddress(v4));
      expect(isPublicAddress(`64:ff9b::${v4}`), `64:ff9b::${v4}`).toBe(isPublicAddress(v4));
    }
  });
});

describe('destinationKey (what the CIMD fetches connected at once are counted by, src/cimd/resolve.ts)', () => {
  it('is an IPv4 address itself, and the IPv4 a mapped or NAT64 address carries', () => {
    expect(destinationKey('93.184.216.34')).toBe('93.184.216.34');
    expect(destinationKey('::ffff:93.184.216.34')).toBe('93.184.216.34');
    expect(destinationKey('::ffff:5db8:d822')).toBe('93.184.216.34');
    expect(destinationKey('64:ff9b::5db8:d822')).toBe('93.184.216.34');
    expect(destinationKey('64:ff9b::93.184.216.34')).toBe('93.184.216.34');
    expect(destinationKey('64:ff9b::808:808')).toBe('8.8.8.8');
  });

  it('is the /64 of any other IPv6 address, however it is written', () => {
    expect(destinationKey('2606:2800:220:1:248:1893:25c8:1946')).toBe('2606:2800:220:1::/64');
    expect(destinationKey('2606:2800:0220:0001::1')).toBe('2606:2800:220:1::/64');
    expect(destinationKey('2606:2800:220:1::')).toBe('2606:2800:220:1::/64');
    expect(destinationKey('2606:2800:220:2::1')).toBe('2606:2800:220:2::/64');
    expect(destinationKey('2001:db8::1')).toBe('2001:db8:0:0::/64');
  });
});
