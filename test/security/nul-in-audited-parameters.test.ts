/**
 * Found by the /authorize fuzz surface (test/fuzz/authorize.test.ts, seed 63928790, issue 13) once
 * the stores ran on the Sql driver: `client_id=%00` reached the audit row's client_id column, the
 * driver refused U+0000 (PostgreSQL TEXT cannot store it; src/db/sql.ts refuses it on both engines
 * alike) and the request answered 500 — first at the client lookup, then at the audit row. DESIGN
 * §9: no request, however malformed, yields a 5xx, and the refusal still writes its audit row. An
 * id with U+0000 now names nothing (src/provider/configuration.ts), and stored strings carry U+FFFD
 * for U+0000 and lone surrogates (src/audit/limits.ts), so the row hashed is the row stored and the
 * chain verifies.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditHead, auditRowsSince, rowCounts, CREDENTIAL_MODELS } from '../helpers/db-probe.js';
import { rawRequest } from '../helpers/raw-http.js';
import { startStack, type Stack } from '../helpers/stack.js';
import { capString } from '../../src/audit/limits.js';

let stack: Stack;
let port: number;
beforeAll(async () => {
  stack = await startStack();
  port = Number(new URL(stack.app.url).port);
});
afterAll(() => stack.close());

describe('NUL and lone surrogates in audited parameters', () => {
  for (const [label, value] of [
    ['U+0000', '%00'],
    ['U+0000 inside', 'abc%00def'],
    ['a lone surrogate (CESU-8 bytes)', '%ED%A0%80'],
  ] as const) {
    it(`GET /authorize?client_id=${value} (${label}): a 4xx page, no redirect, no credential row; its audit row verifies`, async () => {
      const before = await rowCounts(stack.app);
      const from = await auditHead(stack.app);
      const res = await rawRequest(port, `GET /authorize?client_id=${value}&response_type=code&scope=mcp%3Atools HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/html\r\nConnection: close\r\n\r\n`);
      expect(res.status, res.body.slice(0, 200)).toBeGreaterThanOrEqual(400);
      expect(res.status).toBeLessThan(500);
      expect(res.headers.location).toBeUndefined();
      const after = await rowCounts(stack.app);
      for (const model of CREDENTIAL_MODELS) expect(after[model], model).toBe(before[model]);
      const rows = await auditRowsSince(stack.app, from); // throws unless every row links and verifies
      expect(rows.map((r) => r.outcome)).toContain('deny');
    });
  }

  it('capString stores U+FFFD for U+0000 and lone surrogates, and keeps surrogate pairs', () => {
    expect(capString('a\u0000b')).toBe('a\uFFFDb');
    expect(capString('x\uD800y\uDC00')).toBe('x\uFFFDy\uFFFD');
    expect(capString('ok\u{1F600}')).toBe('ok\u{1F600}');
  });
});
