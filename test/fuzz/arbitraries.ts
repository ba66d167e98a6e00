/**
 * Generators shared by the fuzz surfaces: hostile strings, parameter lists (each parameter
 * missing, once or repeated) in odd encodings, form and JSON bodies, header sets.
 */
import fc from 'fast-check';

/** Strings that have broken parsers before: escapes, NULs, traversal, markup, schemes, numbers. */
export const NASTY = [
  '',
  ' ',
  '%',
  '%ZZ',
  '%00',
  '%E0%A4%A',
  '%C0%AF',
  '%FF%FE',
  '\u0000',
  '\uFEFF',
  '\uD800',
  '\u202E',
  '../../etc/passwd',
  '..%2f..%2f',
  '<script>alert(1)</script>',
  '"><img src=x onerror=alert(1)>',
  'javascript:alert(1)',
  'data:text/html,<b>x</b>',
  'http://evil.example/callback',
  'https://127.0.0.1:33418/callback',
  'http://127.0.0.1:33418/callback#frag',
  'http://127.0.0.1:33418/callback/../x',
  'HTTP://127.0.0.1:33418/callback',
  '__proto__',
  'constructor',
  'toString',
  '[]',
  '{}',
  'null',
  'true',
  '-1',
  '0',
  '1e309',
  'NaN',
  '99999999999999999999999',
  'S256',
  'plain',
  'code',
  'none',
  'openid',
  'offline_access',
  'mcp:tools',
];

/** Any string, from plausible to hostile, sometimes large. */
export const junk: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...NASTY) },
  { weight: 3, arbitrary: fc.string({ maxLength: 40 }) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 20 }) },
  { weight: 1, arbitrary: fc.webUrl({ withQueryParameters: true, withFragments: true }) },
  { weight: 1, arbitrary: fc.integer().map(String) },
  { weight: 1, arbitrary: fc.json({ maxDepth: 2 }) },
  { weight: 1, arbitrary: fc.integer({ min: 300, max: 6000 }).map((n) => 'a'.repeat(n)) },
);

/** How one value is written into a query or a form body. */
export const encoding = fc.constantFrom('component', 'raw', 'double', 'plus', 'latin1', 'broken');

/** encodeURIComponent over the UTF-8 bytes, so lone surrogates (U+FFFD on the wire) do not throw. */
export function pct(value: string): string {
  return [...Buffer.from(value, 'utf8')].map((b) => (/[A-Za-z0-9_.!~*'()-]/.test(String.fromCharCode(b)) ? String.fromCharCode(b) : `%${b.toString(16).padStart(2, '0').toUpperCase()}`)).join('');
}

export function encode(value: string, how: string): string {
  switch (how) {
    case 'raw':
      // as typed: only what would end the request line or the pair is escaped
      return value.replace(/[\s&#%]/g, (c) => pct(c));
    case 'double':
      return pct(pct(value));
    case 'plus':
      return pct(value).replace(/%20/g, '+');
    case 'latin1':
      return [...Buffer.from(value, 'latin1')].map((b) => `%${b.toString(16).padStart(2, '0').toUpperCase()}`).join('');
    case 'broken':
      return `${pct(value)}%${value.length % 2 ? 'Z' : ''}`;
    default:
      return pct(value);
  }
}

/**
 * A parameter list over `names`: each name missing, once, or repeated, its values drawn from
 * `value(name)`; plus stray names. Order shuffled.
 */
export function paramList(names: readonly string[], value: (name: string) => fc.Arbitrary<string>): fc.Arbitrary<[string, string][]> {
  const perName = names.map((name) =>
    fc.oneof(
      { weight: 2, arbitrary: fc.constant([] as [string, string][]) },
      { weight: 6, arbitrary: value(name).map((v) => [[name, v]] as [string, string][]) },
      { weight: 1, arbitrary: fc.array(value(name), { minLength: 2, maxLength: 3 }).map((vs) => vs.map((v) => [name, v] as [string, string])) },
    ),
  );
  const stray = fc.array(fc.tuple(fc.oneof(fc.constantFrom('__proto__', 'constructor[prototype]', 'a[b]', '', '%', 'x'), fc.string({ maxLength: 10 })), junk), { maxLength: 3 });
  return fc.tuple(fc.tuple(...perName), stray).chain(([lists, extra]) => fc.shuffledSubarray([...lists.flat(), ...extra], { minLength: lists.flat().length + extra.length }));
}

/** `name=value&…` with the i-th pair in encoding `hows[i % hows.length]` (values filled in after generation). */
export function encodeWith(pairs: [string, string][], hows: readonly string[]): string {
  return pairs.map(([k, v], i) => `${pct(k)}=${encode(v, hows[i % hows.length] ?? 'component')}`).join('&');
}

/** Encodings for `encodeWith`. */
export const encodings = fc.array(encoding, { minLength: 1, maxLength: 8 });

/** `name=value&…`, each pair in its own encoding. */
export function encodePairs(pairs: [string, string][]): fc.Arbitrary<string> {
  return fc.array(encoding, { minLength: pairs.length, maxLength: pairs.length }).map((hows) => pairs.map(([k, v], i) => `${pct(k)}=${encode(v, hows[i] as string)}`).join('&'));
}

export const FORM = 'application/x-www-form-urlencoded';

/** A Content-Type for a body: mostly the right one, sometimes wrong, odd or missing. */
export function contentType(right: string): fc.Arbitrary<string | undefined> {
  return fc.oneof(
    { weight: 8, arbitrary: fc.constant(right) },
    {
      weight: 2,
      arbitrary: fc.constantFrom(
        undefined,
        'text/plain',
        'application/json',
        FORM,
        `${right}; charset=utf-7`,
        `${right}; charset=latin1`,
        'multipart/form-data; boundary=x',
        `${right.toUpperCase()}`,
        'application/x-www-form-urlencoded;;',
        '',
      ),
    },
  );
}

/** Extra headers that change how a body or a request is read. */
export const oddHeaders: fc.Arbitrary<[string, string][]> = fc.oneof(
  { weight: 8, arbitrary: fc.constant([] as [string, string][]) },
  {
    weight: 2,
    arbitrary: fc.subarray([
      ['Content-Encoding', 'gzip'] as [string, string],
      ['Content-Encoding', 'x-unknown'] as [string, string],
      ['Accept', 'application/json'] as [string, string],
      ['Accept', 'text/html'] as [string, string],
      ['Accept-Language', 'zz;q=nope'] as [string, string],
      ['Origin', 'https://evil.example'] as [string, string],
      ['Sec-Fetch-Site', 'cross-site'] as [string, string],
      ['X-Forwarded-For', '203.0.113.7'] as [string, string],
    ]),
  },
);
