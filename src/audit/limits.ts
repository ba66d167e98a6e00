/**
 * Hostile input at rest (DESIGN §9): every stored string that a request can put there — audit
 * row columns, every string inside an audit row's details, a client's user agent — is cut to
 * MAX_STORED_STRING characters. In audit rows, the userinfo of any URL is replaced first
 * (`withoutUserinfo`): a refused redirect URI or client_id may carry a password, and the audit
 * log keeps what it is given for ever. A cut string ends in `…` (and is then exactly that long).
 * U+0000, which PostgreSQL TEXT cannot hold (src/db/sql.ts refuses it on both engines), and lone
 * surrogates, which UTF-8 cannot hold, are stored as U+FFFD: the row hashed is the row stored, on
 * either engine (found by the fuzz suite: `client_id=%00` at /authorize answered 500).
 */

/** Longest request-derived string stored, in UTF-16 code units, the `…` mark included. */
export const MAX_STORED_STRING = 256;
export const CUT_MARK = '…';

/**
 * `value` unchanged when it fits, otherwise its first MAX_STORED_STRING - 1 code units and `…`.
 * Never splits a surrogate pair: a lone surrogate would not survive the round trip through the
 * database as UTF-8, and the audit chain hashes what it inserts.
 */
export function capString(raw: string, max = MAX_STORED_STRING): string {
  const value = storable(raw);
  if (value.length <= max) return value;
  let end = max - CUT_MARK.length;
  const last = value.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end -= 1;
  return `${value.slice(0, end)}${CUT_MARK}`;
}

/** capString for optional values. */
export function capOptional(value: string | null | undefined): string | null {
  return value === null || value === undefined ? null : capString(value);
}

/** `value` with U+0000 and lone surrogates replaced by U+FFFD (see the header). */
function storable(value: string): string {
  return UNSTORABLE.test(value) ? value.replace(UNSTORABLE_ALL, '\uFFFD') : value;
}
const LONE_OR_NUL = '\\u0000|[\\uD800-\\uDBFF](?![\\uDC00-\\uDFFF])|(?<![\\uD800-\\uDBFF])[\\uDC00-\\uDFFF]';
const UNSTORABLE = new RegExp(LONE_OR_NUL);
const UNSTORABLE_ALL = new RegExp(LONE_OR_NUL, 'g');

/**
 * `text` with the userinfo of every URL in it replaced: `https://alice:hunter2@app.example/cb` →
 * `https://***@app.example/cb`. Only a string with an `@` is searched (this runs for every string
 * of every audit row, gateway requests included). An authority is what follows a scheme and `//`
 * — or, for http(s), ws(s) and ftp, any number of slashes or backslashes, even none, as the WHATWG
 * parser reads them — up to its last `@` before a `/`, `?` or `#`. It errs towards hiding more:
 * whitespace, quotes and backslashes do not end it (the parser percent-encodes them into userinfo).
 */
export function withoutUserinfo(text: string): string {
  if (!text.includes('@')) return text;
  // Linear in the text (review 2026-12-08: a regex with `[^/?#]*@` after each scheme start took
  // quadratic time — 1 s for 64 KB of `http:` — on strings a client chooses): every scheme start is
  // found once, and the authority's end and its last `@` are computed once per authority, shared by
  // the scheme starts inside it.
  const scheme = new RegExp(SCHEME.source, 'gi');
  let out = '';
  let copied = 0;
  let spanStart = -1;
  let spanEnd = -1;
  let lastAt = -1;
  for (let m = scheme.exec(text); m !== null; m = scheme.exec(text)) {
    const start = m.index + m[0].length;
    if (start < spanStart || start > spanEnd) {
      spanStart = start;
      spanEnd = authorityEnd(text, start);
      lastAt = text.lastIndexOf('@', spanEnd - 1);
    }
    if (lastAt < start) continue;
    out += `${text.slice(copied, start)}***`;
    copied = lastAt;
    scheme.lastIndex = lastAt + 1;
  }
  return copied === 0 ? text : out + text.slice(copied);
}
const SCHEME = /(?<![a-z0-9+.-])(?:(?:https?|wss?|ftp):[/\\]*|[a-z][a-z0-9+.-]*:[/\\]{2,})/;

/** The index of the first `/`, `?` or `#` at or after `from` (the text's length if none). */
function authorityEnd(text: string, from: number): number {
  for (let i = from; i < text.length; i += 1) {
    const c = text.charCodeAt(i);
    if (c === 0x2f || c === 0x3f || c === 0x23) return i;
  }
  return text.length;
}
