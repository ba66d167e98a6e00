/**
 * GW-13, the redactor's boundary logic (src/gateway/redact.ts): a token split anywhere across
 * two or three chunks, overlapping partial matches, encoded forms, header values, and a
 * server-sent event passed on without waiting for the next chunk.
 */
import { describe, expect, it } from 'vitest';
import { BodyRedactor, MIN_SECRET_BYTES, NO_SECRETS, compileSecrets, encodedForms, headerNameLeaks, marker, redactHeaderValue, type Secrets } from '../../src/gateway/redact.js';

const ACCESS = 'gho_16C7e42F292c6912E7710c838347Ae178B4a';
const REFRESH = 'Rt+5Qz/9wK2=mP7xL4==';

/** Everything the redactor sends for these chunks, chunk by chunk (the last entry is `end()`). */
function run(secrets: Secrets, chunks: string[]): string[] {
  const r = new BodyRedactor(secrets);
  return [...chunks.map((c) => r.push(Buffer.from(c)).toString()), r.end().toString()];
}
const joined = (secrets: Secrets, chunks: string[]) => run(secrets, chunks).join('');

describe('GW-13 redactor › what it looks for', () => {
  it('compiles raw, URL-encoded (each special character encoded or not, either hex case) and JSON-escaped forms, deduplicated', () => {
    const forms = encodedForms('ab+cd/ef=gh');
    expect(forms).toContain('ab+cd/ef=gh');
    expect(forms).toContain('ab%2Bcd%2Fef%3Dgh'); // encodeURIComponent
    expect(forms).toContain('ab%2bcd%2fef%3dgh'); // lower-case hex
    expect(forms).toContain('ab%2Bcd/ef=gh'); // only `+` encoded
    expect(forms).toContain('ab+cd/ef%3Dgh'); // only `=` encoded
    expect(forms).toContain('ab+cd\\/ef=gh'); // JSON `\/`
    expect(new Set(forms).size).toBe(forms.length);
    expect(forms.length).toBeLessThanOrEqual(2 ** 3 * 2 + 1);
    // a `%` in the token is encoded once, not again inside the other escapes
    expect(encodedForms('ab%cd+ef')).toContain('ab%25cd%2Bef');
    expect(encodedForms('ab%cd+ef').some((f) => f.includes('%252B'))).toBe(false);
    // base64url (a JWT, GitHub's tokens): every encoding is the raw value — one pattern.
    expect(compileSecrets('eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.sig-_x').patterns).toHaveLength(1);
    expect(compileSecrets(ACCESS).patterns).toHaveLength(1);
    // the same value twice (access = refresh) is one set of patterns
    expect(compileSecrets(ACCESS, ACCESS).patterns).toHaveLength(1);
  });

  it(`ignores token values shorter than ${MIN_SECRET_BYTES} bytes (no work at all)`, () => {
    expect(compileSecrets('1234567')).toBe(NO_SECRETS);
    expect(compileSecrets(undefined, 'short')).toBe(NO_SECRETS);
    expect(compileSecrets('12345678').patterns).toHaveLength(1);
  });

  it('replaces with a marker exactly as long as the match', () => {
    expect(marker(8)).toBe('[redact]');
    expect(marker(9)).toBe('[redacte]');
    expect(marker(10)).toBe('[redacted]');
    expect(marker(14)).toBe('[redacted]****');
    for (const p of compileSecrets(ACCESS, REFRESH).patterns) expect(marker(p.length)).toHaveLength(p.length);
  });
});

describe('GW-13 redactor › bodies across chunk boundaries', () => {
  const secrets = compileSecrets(ACCESS, REFRESH);
  const forms = [ACCESS, REFRESH, encodeURIComponent(REFRESH), REFRESH.replace('+', '%2B'), encodeURIComponent(REFRESH).replace(/%[0-9A-F]{2}/g, (h) => h.toLowerCase())];
  const before = 'data: {"jsonrpc":"2.0","result":{"echo":"';
  const after = '"}}\n\n';

  it('finds a token split at every byte position across two chunks, and sends the part before it at once', () => {
    for (const form of forms) {
      const expected = before + marker(form.length) + after;
      for (let i = 0; i <= form.length; i++) {
        const out = run(secrets, [before + form.slice(0, i), form.slice(i) + after]);
        expect(out.join('')).toBe(expected);
        // the first chunk's text before the token goes out immediately; only the token's start waits
        expect(out[0]).toBe(i === form.length ? before + marker(form.length) : before);
      }
    }
  });

  it('finds a token split at every pair of byte positions across three chunks', () => {
    for (const form of [ACCESS, encodeURIComponent(REFRESH)]) {
      const expected = before + marker(form.length) + after;
      for (let i = 0; i <= form.length; i++) {
        for (let j = i; j <= form.length; j++) {
          expect(joined(secrets, [before + form.slice(0, i), form.slice(i, j), form.slice(j) + after])).toBe(expected);
        }
      }
    }
  });

  it('handles overlapping partial matches (a repeated prefix), one byte per chunk', () => {
    const periodic = compileSecrets('abcabcabd-secret');
    const body = 'xxabcabcabcabd-secret!abcab';
    const out = run(periodic, [...body]);
    expect(out.join('')).toBe(`xxabc${marker(16)}!abcab`);
    const runs = compileSecrets('aaaaaaaab');
    expect(joined(runs, [...'aaaaaaaaaaaaab'])).toBe(`aaaaa${marker(9)}`);
    expect(joined(runs, ['aaaaaaa', 'aaaaaa', 'ab', 'aaaa'])).toBe(`aaaaaa${marker(9)}aaaa`);
    // a token start that turns out not to be one is released with the next chunk, or at the end
    expect(run(runs, ['zz aaaa', 'aaaa zz', 'aaa'])).toEqual(['zz ', 'aaaaaaaa zz', '', 'aaa']);
  });

  it('replaces every occurrence, adjacent ones and both tokens, keeping the byte count', () => {
    const body = `${ACCESS}${ACCESS} and ${REFRESH}&rt=${encodeURIComponent(REFRESH)}`;
    const out = joined(secrets, [body.slice(0, 50), body.slice(50)]);
    expect(out).toBe(`${marker(ACCESS.length)}${marker(ACCESS.length)} and ${marker(REFRESH.length)}&rt=${marker(encodeURIComponent(REFRESH).length)}`);
    expect(Buffer.byteLength(out)).toBe(Buffer.byteLength(body));
    expect(out).not.toContain(ACCESS);
    expect(out).not.toContain(REFRESH);
  });

  it('prefers the longest form when two start at the same byte (JSON-escaped vs raw prefix)', () => {
    const slashy = 'abcd/efgh/ijkl';
    const s = compileSecrets(slashy);
    expect(joined(s, ['{"t":"abcd\\/efgh\\/ijkl"}'])).toBe(`{"t":"${marker(16)}"}`);
  });

  it('passes a server-sent event on as soon as its end arrives, and a clean chunk without copying it', () => {
    const r = new BodyRedactor(secrets);
    const event = Buffer.from('event: message\ndata: {"progress":1}\n\n');
    expect(r.push(event)).toBe(event); // the same buffer: nothing held, nothing copied
    expect(r.push(Buffer.from(`data: {"t":"${ACCESS.slice(0, 7)}`)).toString()).toBe('data: {"t":"');
    expect(r.push(Buffer.from(`${ACCESS.slice(7)}"}\n\n`)).toString()).toBe(`${marker(ACCESS.length)}"}\n\n`);
    expect(r.push(Buffer.from('data: {"progress":2}\n\n')).toString()).toBe('data: {"progress":2}\n\n');
    expect(r.found).toBe(1);
    expect(r.end()).toHaveLength(0);
  });

  it('is a no-op without patterns', () => {
    const r = new BodyRedactor(NO_SECRETS);
    const chunk = Buffer.from(`${ACCESS} gho_`);
    expect(r.push(chunk)).toBe(chunk);
    expect(r.end()).toHaveLength(0);
  });
});

describe('GW-13 redactor › headers', () => {
  const secrets = compileSecrets(ACCESS, REFRESH);
  it('replaces tokens in header values, single and repeated, and leaves clean values untouched', () => {
    expect(redactHeaderValue(`Bearer ${ACCESS}`, secrets)).toBe(`Bearer ${marker(ACCESS.length)}`);
    expect(redactHeaderValue(`https://r.example/cb?rt=${encodeURIComponent(REFRESH)}`, secrets)).toBe(`https://r.example/cb?rt=${marker(encodeURIComponent(REFRESH).length)}`);
    const clean = ['a=1', 'b=2'];
    expect(redactHeaderValue(clean, secrets)).toBe(clean);
    expect(redactHeaderValue(['a=1', `t=${ACCESS}`], secrets)).toEqual(['a=1', `t=${marker(ACCESS.length)}`]);
    expect(redactHeaderValue('application/json', secrets)).toBe('application/json');
  });
  it('recognises a token in a header name (names arrive lower-cased)', () => {
    expect(headerNameLeaks(`x-${ACCESS.toLowerCase()}`, secrets)).toBe(true);
    expect(headerNameLeaks('x-request-id', secrets)).toBe(false);
  });
});
