/**
 * GW-13 (DESIGN §9, OAuth 2.1 §7.1.3.1): U's access and refresh tokens never reach the client,
 * even when R echoes them. This module is the one place that decides what counts as a token in
 * R's response and what replaces it; src/gateway/forward.ts applies it to every header of R's
 * response and to every body chunk, src/gateway/upstream-token.ts compiles it once per token.
 *
 * - What is looked for (`compileSecrets`): each token value raw, URL-encoded
 *   (`encodeURIComponent`, and every mix in which only some of its special characters — `+`, `/`,
 *   `=`, … — are percent-encoded, in upper- and lower-case hex) and JSON-escaped (`\/`), as
 *   UTF-8 bytes. The variants are deduplicated: a base64url token (a JWT, say) has no special
 *   characters, so all its encodings are the raw value and it costs one pattern.
 * - Tokens shorter than MIN_SECRET_BYTES are not looked for. RFC 6749 §10.10 asks for at least
 *   128 bits of guessing resistance, which no such string can carry, so it is not a credential
 *   worth the cost; and a pattern that short would match ordinary text (corrupting R's answers
 *   with false positives) and keep bytes held back on a good share of all chunks.
 * - What replaces a match (`marker`): `[redacted]`, padded with `*` to the exact byte length of
 *   the match (cut to `[redact]` / `[redacte]` for 8- and 9-byte matches). Same length, so R's
 *   `Content-Length` and `Content-Range` stay true, the response keeps its framing and streams
 *   without any decision before its first byte — no buffering, no switch to chunked encoding.
 *   The marker's bytes (`[`, `]`) are not token characters, so a replacement cannot combine
 *   with its neighbours into a token.
 * - Bodies (`BodyRedactor`): each chunk is searched with `Buffer.indexOf` for each pattern; no
 *   string conversion. Across chunk boundaries only the longest tail of a chunk that is a proper
 *   prefix of some pattern is held back, and released with the next chunk (or at the end of the
 *   body), so a server-sent event whose end (`\n\n`, never part of a token) has arrived is
 *   passed on at once.
 */

/** Token values shorter than this (in bytes) are not looked for; see above. */
export const MIN_SECRET_BYTES = 8;

const MARKER = '[redacted]';
const EMPTY = Buffer.alloc(0);

/** The compiled patterns of one grant's upstream tokens. */
export interface Secrets {
  /** byte patterns, longest first (the longest wins when two start at the same byte) */
  readonly patterns: readonly Buffer[];
  /** the same patterns as strings, for header values */
  readonly texts: readonly string[];
  /** and lower-cased, for header names (which arrive lower-cased) */
  readonly lowerTexts: readonly string[];
  /** the replacement of each pattern, byte for byte as long */
  readonly markers: readonly Buffer[];
  readonly markerTexts: readonly string[];
}

export const NO_SECRETS: Secrets = Object.freeze({ patterns: [], texts: [], lowerTexts: [], markers: [], markerTexts: [] });

/** The replacement for a match of `length` bytes: `[redacted]` padded or cut to that length. */
export function marker(length: number): string {
  return length >= MARKER.length ? MARKER + '*'.repeat(length - MARKER.length) : `${MARKER.slice(0, length - 1)}]`;
}

const pct = (char: string, lower: boolean) => {
  const encoded = encodeURIComponent(char) === char ? `%${char.charCodeAt(0).toString(16).padStart(2, '0').toUpperCase()}` : encodeURIComponent(char);
  return lower ? encoded.toLowerCase() : encoded;
};

/** Every form of one token value a response could carry it in (see the module comment). */
export function encodedForms(value: string): string[] {
  const forms = new Set<string>([value, encodeURIComponent(value), value.replaceAll('/', '\\/'), JSON.stringify(value).slice(1, -1)]);
  // Characters some encoder percent-encodes (unreserved ones never are, by any of them).
  const specials = [...new Set(value.replace(/[A-Za-z0-9._-]/g, ''))];
  // Every subset of them encoded (2^k forms) for the usual k ≤ 3 (base64's `+`, `/`, `=`); for
  // stranger tokens all of them or none. Bounded: at most 8 subsets × 2 hex cases.
  const subsets: string[][] = specials.length <= 3 ? Array.from({ length: 1 << specials.length }, (_, mask) => specials.filter((_c, i) => mask & (1 << i))) : [specials];
  for (const subset of subsets) {
    for (const lower of [false, true]) {
      // one pass, so a `%` in the token is not encoded twice
      forms.add([...value].map((char) => (subset.includes(char) ? pct(char, lower) : char)).join(''));
    }
  }
  return [...forms];
}

/** Compile the patterns for a grant's upstream tokens (once per token, not per request). */
export function compileSecrets(...values: (string | undefined)[]): Secrets {
  const texts = new Set<string>();
  for (const value of values) {
    if (value === undefined || Buffer.byteLength(value) < MIN_SECRET_BYTES) continue;
    for (const form of encodedForms(value)) texts.add(form);
  }
  if (texts.size === 0) return NO_SECRETS;
  const sorted = [...texts].sort((a, b) => Buffer.byteLength(b) - Buffer.byteLength(a));
  const patterns = sorted.map((text) => Buffer.from(text, 'utf8'));
  const markerTexts = patterns.map((p) => marker(p.length));
  return { patterns, texts: sorted, lowerTexts: sorted.map((t) => t.toLowerCase()), markers: markerTexts.map((m) => Buffer.from(m, 'latin1')), markerTexts };
}

/**
 * A header value of R with every pattern replaced; the same reference when there is none.
 * Header values are short, so this works on strings.
 */
export function redactHeaderValue<V extends string | string[]>(value: V, secrets: Secrets): V {
  if (Array.isArray(value)) {
    let out: string[] | undefined;
    value.forEach((v, i) => {
      const clean = redactHeaderValue(v, secrets);
      if (clean !== v) (out ??= [...value])[i] = clean;
    });
    return (out ?? value) as V;
  }
  let out = value as string;
  for (let i = 0; i < secrets.texts.length; i++) {
    const text = secrets.texts[i] as string;
    if (out.includes(text)) out = out.replaceAll(text, secrets.markerTexts[i] as string);
  }
  return (out === value ? value : out) as V;
}

/** Does a header name (lower-cased by the HTTP parser) carry a token? Such a header is dropped. */
export function headerNameLeaks(name: string, secrets: Secrets): boolean {
  for (const text of secrets.lowerTexts) if (name.includes(text)) return true;
  return false;
}

/** Does `buf[at..]` equal the first `buf.length - at` bytes of `pattern`? */
function isPrefixAt(buf: Buffer, at: number, pattern: Buffer): boolean {
  for (let i = at, j = 0; i < buf.length; i++, j++) if (buf[i] !== pattern[j]) return false;
  return true;
}

/**
 * Length of the longest tail of `buf` (starting at or after `from`) that is a proper prefix of a
 * pattern: the bytes that might be the start of a token whose rest is in the next chunk.
 */
function pendingTail(buf: Buffer, from: number, patterns: readonly Buffer[]): number {
  let best = 0;
  const end = buf.length;
  for (const pattern of patterns) {
    // Only a tail shorter than the pattern, longer than the best so far, can matter.
    let at = buf.indexOf(pattern[0] as number, Math.max(from, end - pattern.length + 1));
    while (at !== -1 && at < end - best) {
      if (isPrefixAt(buf, at, pattern)) {
        best = end - at;
        break;
      }
      at = buf.indexOf(pattern[0] as number, at + 1);
    }
  }
  return best;
}

/**
 * Redacts one body as it streams: `push` each chunk and send what it returns, then send what
 * `end` returns. Output bytes = input bytes, in order, with every token replaced by its marker.
 */
export class BodyRedactor {
  /** tokens replaced so far */
  found = 0;
  private held: Buffer | undefined;

  constructor(private readonly secrets: Secrets) {}

  /** What can be sent now of everything received so far. */
  push(chunk: Buffer): Buffer {
    const buf = this.held ? Buffer.concat([this.held, chunk]) : chunk;
    this.held = undefined;
    const { patterns, markers } = this.secrets;

    // The usual case: no token in the chunk — one indexOf per pattern, no copy.
    let any = false;
    for (const pattern of patterns) {
      if (buf.indexOf(pattern) !== -1) {
        any = true;
        break;
      }
    }
    let parts: Buffer[] | undefined;
    let pos = 0;
    if (any) {
      // Leftmost match first; at the same position the longest (patterns are sorted so). Each
      // round moves `pos` forward by a whole pattern (≥ MIN_SECRET_BYTES), so it ends.
      parts = [];
      const next = patterns.map((p) => buf.indexOf(p));
      for (;;) {
        let best = -1;
        for (let i = 0; i < next.length; i++) {
          const at = next[i] as number;
          if (at !== -1 && (best === -1 || at < (next[best] as number))) best = i;
        }
        if (best === -1) break;
        const at = next[best] as number;
        parts.push(buf.subarray(pos, at), markers[best] as Buffer);
        pos = at + (patterns[best] as Buffer).length;
        this.found++;
        for (let i = 0; i < next.length; i++) if ((next[i] as number) !== -1 && (next[i] as number) < pos) next[i] = buf.indexOf(patterns[i] as Buffer, pos);
      }
    }

    const hold = pendingTail(buf, pos, patterns);
    if (hold > 0) this.held = Buffer.from(buf.subarray(buf.length - hold)); // a copy: R's chunk is not ours to keep
    const rest = hold > 0 || pos > 0 ? buf.subarray(pos, buf.length - hold) : buf;
    if (!parts) return rest;
    parts.push(rest);
    return Buffer.concat(parts);
  }

  /** The body has ended: the held bytes were not a token after all. */
  end(): Buffer {
    const held = this.held ?? EMPTY;
    this.held = undefined;
    return held;
  }
}
