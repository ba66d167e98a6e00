/**
 * The logger every process uses (src/log/logger.ts `createLogger`): an error under `err` is logged
 * by an allow-list (type, message, stack, its code as `errorCode`, a numeric HTTP status, Error
 * causes the same way), never what else it carries — oauth4webapi's ResponseBodyError keeps U's
 * whole JSON error body as `cause` and its `error_description`, WWWAuthenticateChallengeError the
 * challenge's parameters, and path redaction (`*.x`) never reached `err.cause.*`. Library error
 * codes stay readable while an authorization code under `code` is still redacted; the "request
 * refused" line names the OAuth error as `error`.
 */
import { describe, expect, it } from 'vitest';
import * as client from 'openid-client';
import type { Request, Response } from 'express';
import { createLogger } from '../../src/log/logger.js';
import { errorHandler } from '../../src/errors/render.js';
import { ERRORS } from '../../src/errors/oauth-error.js';
import type { Views } from '../../src/views/render.js';
import { jsonAnswer, revocationError } from '../helpers/upstream-errors.js';

const MARKER = 'tok-marker-0123456789abcdef';

function capture() {
  const lines: string[] = [];
  const log = createLogger('debug', { write: (line: string) => void lines.push(line) });
  return { log, lines, parsed: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>) };
}

describe('errors in the log', () => {
  it("U's error body and error_description (a ResponseBodyError) are not logged; its type, message and HTTP status are", async () => {
    const err = await revocationError(jsonAnswer(400, { error: 'invalid_request', error_description: `bad token ${MARKER}`, token: MARKER, nested: { echo: MARKER } }));
    expect(err).toBeInstanceOf(client.ResponseBodyError);
    const { log, lines, parsed } = capture();
    log.error({ err }, 'revocation failed');
    log.warn(err, 'as the first argument');
    expect(lines.join('\n')).not.toContain(MARKER);
    for (const line of parsed()) {
      expect(line.err).toMatchObject({ type: 'ResponseBodyError', message: 'server responded with an error in the response body', status: 400, errorCode: 'OAUTH_RESPONSE_BODY_ERROR' });
      expect(line.err).not.toHaveProperty('cause');
      expect(line.err).not.toHaveProperty('error_description');
    }
  });

  it("a WWW-Authenticate challenge's parameters (WWWAuthenticateChallengeError) are not logged", async () => {
    const err = await revocationError(jsonAnswer(401, { error: 'invalid_client' }, { 'www-authenticate': `Bearer error="invalid_token", error_description="${MARKER}"` }));
    expect(err).toBeInstanceOf(client.WWWAuthenticateChallengeError);
    const { log, lines, parsed } = capture();
    log.error({ err }, 'revocation failed');
    expect(lines.join('\n')).not.toContain(MARKER);
    expect(parsed()[0]?.err).toMatchObject({ type: 'WWWAuthenticateChallengeError', status: 401 });
  });

  it('an Error cause is logged the same way, to a bounded depth; other members are not', () => {
    const inner = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED', body: MARKER, headers: { authorization: MARKER } });
    const outer = Object.assign(new TypeError('fetch failed', { cause: inner }), { input: MARKER, response: { MARKER }, parameters: MARKER });
    let deep: Error = outer;
    for (let i = 0; i < 20; i++) deep = new Error(`level ${i}`, { cause: deep });
    const { log, lines, parsed } = capture();
    log.error({ err: outer }, 'fetch failed');
    log.error({ err: deep }, 'deep');
    expect(lines.join('\n')).not.toContain(MARKER);
    expect(parsed()[0]?.err).toMatchObject({ type: 'TypeError', message: 'fetch failed', cause: { type: 'Error', errorCode: 'ECONNREFUSED', message: 'connect ECONNREFUSED 127.0.0.1:5432' } });
    expect(lines[1]!.match(/"message":"level/g)!.length).toBeLessThanOrEqual(5);
  });

  it('library error codes stay readable; an authorization code under `code` is still redacted', () => {
    const { log, lines, parsed } = capture();
    log.error({ err: Object.assign(new Error('x'), { code: 'ECONNREFUSED' }) }, 'network');
    log.error({ err: Object.assign(new Error('deadlock detected'), { code: '40P01' }) }, 'pg');
    log.info({ code: 'an-authorization-code', nested: { code: 'another-authorization-code' } }, 'code');
    const [network, pg, code] = parsed();
    expect(network?.err).toMatchObject({ errorCode: 'ECONNREFUSED' });
    expect(pg?.err).toMatchObject({ errorCode: '40P01' });
    expect(code).toMatchObject({ code: '[redacted]', nested: { code: '[redacted]' } });
    expect(lines.join('\n')).not.toContain('authorization-code');
  });

  it('a message string under `err` is logged as it is', () => {
    const { log, parsed } = capture();
    log.warn({ err: 'U unreachable (HTTP 503)' }, 'revocation failed');
    expect(parsed()[0]?.err).toBe('U unreachable (HTTP 503)');
  });

  it('"request refused" names the OAuth error as `error` (not `code`, which is redacted)', () => {
    const { log, parsed } = capture();
    const res = { headersSent: false, status: () => res, setHeader: () => res, json: () => res, type: () => res, send: () => res } as unknown as Response;
    const req = { id: 'req-1', path: '/x', accepts: () => 'json' } as unknown as Request;
    errorHandler({} as Views, log)(ERRORS.invalidRequest('no'), req, res, () => undefined);
    expect(parsed()[0]).toMatchObject({ msg: 'request refused', error: 'invalid_request', status: 400 });
  });
});
