/**
 * The fuzz harness (issue 13 §1; DESIGN §9 "Hostile input"): one running stack per test file
 * (P in front of the fake U and R, test/helpers/stack.ts), fast-check properties whose cases are
 * raw HTTP requests (test/helpers/raw-http.ts, so bytes reach the server exactly as generated),
 * and the invariants checked after EVERY case:
 *   1. no 5xx, and an answer at all;
 *   2. the process stays up: no uncaught exception or unhandled rejection, no error-level log
 *      line, and /healthz still answers 200;
 *   3. a refusal (4xx) writes nothing but its audit row: no client, grant, code, token, consent,
 *      session or upstream transaction is created (row counts through test/helpers/db-probe.ts),
 *      U and R are not contacted unless the surface says so, and every audit row it appended is a
 *      refusal (outcome deny);
 *   4. no secret — P's tokens, codes and PKCE verifiers, U's tokens, states and nonces, the
 *      upstream client secret, SECRET_KEY and every key derived from it — appears in the
 *      response (status line, headers, body) or in a log line written meanwhile;
 *   5. the audit chain still verifies: the rows appended are checked link by link and MAC by MAC
 *      (db-probe `auditRowsSince`), and the whole chain with `audit verify` (the CLI) at the end
 *      of every property;
 *   6. a redirect leaves P only for U or a redirect URI registered exactly (AUTHZ-01/12).
 *
 * Runs: FUZZ_RUNS cases per property (default: the bounded CI number each file passes); the seed
 * is FUZZ_SEED or a fresh one, always printed; FUZZ_PATH replays one shrunk counterexample. A
 * failure prints the one command that reproduces it. `npm run fuzz` (test/fuzz/run.ts) sets these.
 */
import { appendFileSync } from 'node:fs';
import { randomInt } from 'node:crypto';
import { dirname } from 'node:path';
import { databaseEnv } from './engine.js';
import { expect } from 'vitest';
import fc from 'fast-check';
import { run } from '../../src/cli/index.js';
import { TEST_SECRET_KEY, type TestApp } from './app.js';
import { auditHead, auditRowsSince, rowCounts, CREDENTIAL_MODELS, type RowCounts } from './db-probe.js';
import { rawRequest, type RawResponse } from './raw-http.js';
import type { Stack } from './stack.js';

// ── runs, seed, reproduction ───────────────────────────────────────────────────────────────────

export interface FuzzSettings {
  runs: number;
  seed: number;
  path: string | undefined;
}

/** FUZZ_RUNS (per property), FUZZ_SEED and FUZZ_PATH, read here and nowhere else. */
export function fuzzSettings(ciRuns: number): FuzzSettings {
  const runs = process.env.FUZZ_RUNS ? Number(process.env.FUZZ_RUNS) : ciRuns;
  if (!Number.isInteger(runs) || runs < 1) throw new Error(`FUZZ_RUNS must be a positive integer, not ${process.env.FUZZ_RUNS}`);
  const seed = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : randomInt(2 ** 31 - 1);
  if (!Number.isInteger(seed)) throw new Error(`FUZZ_SEED must be an integer, not ${process.env.FUZZ_SEED}`);
  return { runs, seed, path: process.env.FUZZ_PATH || undefined };
}

/** Generous per-case time for vitest's timeout: the slowest surfaces take a few ms a case. */
export const fuzzTimeout = (ciRuns: number) => 120_000 + fuzzSettings(ciRuns).runs * 100;

export function reproduceCommand(file: string, name: string, seed: number, path?: string): string {
  const env = `FUZZ_SEED=${seed}${path ? ` FUZZ_PATH=${path}` : ''}`;
  return `${env} npx vitest run --config test/vitest.config.ts ${file} -t '${name.replace(/'/g, "'\\''")}'`;
}

/**
 * Run `property` over `arbitrary` with the settings above; print the seed and the statuses seen;
 * on failure throw fast-check's report with the command that replays the shrunk case.
 */
export async function fuzz<T>(file: string, name: string, ciRuns: number, target: FuzzTarget, arbitrary: fc.Arbitrary<T>, property: (value: T) => Promise<void>): Promise<void> {
  const settings = fuzzSettings(ciRuns);
  const started = Date.now();
  target.statuses.clear();
  console.log(`[fuzz] ${file} › ${name}: ${settings.runs} cases, seed ${settings.seed}${settings.path ? `, path ${settings.path}` : ''}`);
  const details = await fc.check(fc.asyncProperty(arbitrary, property), { numRuns: settings.runs, seed: settings.seed, path: settings.path, endOnFailure: false });
  const ms = Date.now() - started;
  const statuses = Object.fromEntries([...target.statuses].sort(([a], [b]) => a - b));
  console.log(`[fuzz] ${file} › ${name}: ${details.numRuns} cases in ${ms} ms, ${details.failed ? 'FAILED' : 'held'}; statuses ${JSON.stringify(statuses)}`);
  if (process.env.FUZZ_REPORT) appendFileSync(process.env.FUZZ_REPORT, `${JSON.stringify({ file, name, cases: details.numRuns, ms, seed: settings.seed, failed: details.failed, statuses })}\n`);
  if (details.failed) {
    const path = details.counterexamplePath ?? undefined;
    const cause = details.errorInstance instanceof Error ? details.errorInstance.message : String(details.errorInstance);
    throw new Error(`${fc.defaultReportMessage(details)}\n\n${cause}\n\nReproduce with:\n  ${reproduceCommand(file, name, details.seed, path)}\n`);
  }
  await target.verifyWholeChain();
}

// ── raw requests ───────────────────────────────────────────────────────────────────────────────

export interface RawReq {
  method: string;
  /** path and query exactly as sent */
  path: string;
  headers?: [string, string][];
  body?: string | Buffer;
}

export function buildRaw({ method, path, headers = [], body }: RawReq): Buffer {
  const lines = [`${method} ${path} HTTP/1.1`, 'Host: 127.0.0.1', 'Connection: close'];
  for (const [name, value] of headers) lines.push(`${name}: ${value}`);
  const payload = body === undefined ? Buffer.alloc(0) : Buffer.isBuffer(body) ? body : Buffer.from(body);
  if (body !== undefined && !headers.some(([h]) => /^(content-length|transfer-encoding)$/i.test(h))) lines.push(`Content-Length: ${payload.length}`);
  return Buffer.concat([Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1'), payload]);
}

// ── the invariants ─────────────────────────────────────────────────────────────────────────────

/** What a surface may change when P does not refuse (2xx/3xx), beyond audit rows. */
export interface CaseRules {
  /** row kinds (db-probe names) that may grow on success */
  successMayAdd?: readonly string[];
  /** row kinds that may shrink (a revocation, a consumed transaction, a burned grant) */
  mayRemove?: readonly string[];
  /** external effects allowed even on a refusal: 'U' (U's token endpoint), 'R' (forwarded to R) */
  external?: readonly ('U' | 'R')[];
  /** a documented 5xx this case may get (the callback's 502 when U refuses the code, UP-09) */
  allow5xx?: readonly number[];
  /** audit events other than refusals a refusal may append (a replay's revocation cascade) */
  cascadeEvents?: readonly string[];
  /** the response was written by R, not P (the gateway forwarded it): P's refusal rules do not apply */
  forwarded?: boolean;
}

interface Before {
  counts: RowCounts;
  head: { seq: number; hash: string };
  logLines: number;
  uncaught: number;
  u: { authorizations: number; tokens: number; revocations: number };
  r: number;
}

/** The stack under fuzzing and the state the invariants compare against. */
export class FuzzTarget {
  readonly app: TestApp;
  readonly port: number;
  readonly statuses = new Map<number, number>();
  private readonly secrets = new Map<string, string>();
  private readonly uncaught: unknown[] = [];
  private seenUpstreamAuthorizations = 0;
  private seenUpstreamTokens = 0;
  /** redirect targets outside P that are allowed: U's origin, the registered redirect URIs */
  readonly allowedRedirects = new Set<string>();
  /** a loopback redirect URI registered by a native client: any port (RFC 8252 §7.3) */
  readonly allowedLoopbackRedirects = new Set<string>();

  constructor(readonly stack: Stack) {
    this.app = stack.app;
    this.port = Number(new URL(this.app.url).port);
    process.on('uncaughtException', (err) => this.uncaught.push(err));
    process.on('unhandledRejection', (err) => this.uncaught.push(err));
    const keys = this.app.runtime.keys.current;
    this.addSecret('SECRET_KEY', TEST_SECRET_KEY);
    this.addSecret('SECRET_KEY (hex)', Buffer.from(TEST_SECRET_KEY, 'base64').toString('hex'));
    for (const [purpose, key] of Object.entries(keys.keys)) {
      for (const encoding of ['base64', 'base64url', 'hex'] as const) this.addSecret(`${purpose} key (${encoding})`, key.toString(encoding).replace(/=+$/, ''));
    }
    this.addSecret('upstream client secret', stack.upstream.clientSecret);
    this.allowedRedirects.add(new URL(stack.upstream.issuer).origin);
    this.learnUpstream();
  }

  addSecret(name: string, value: string | undefined): void {
    // Short values (a 6-character code) would match by chance; every real secret here is longer.
    if (value && value.length >= 16) this.secrets.set(value, name);
  }

  /** U's states, nonces and tokens issued since the last look: secrets from now on. */
  private learnUpstream(): void {
    const { authorizations, issued } = this.stack.upstream;
    for (const a of authorizations.slice(this.seenUpstreamAuthorizations)) {
      this.addSecret('upstream state', a.query.state);
      this.addSecret('upstream nonce', a.query.nonce);
      this.addSecret('upstream PKCE challenge', a.query.code_challenge);
    }
    this.seenUpstreamAuthorizations = authorizations.length;
    for (const t of issued.slice(this.seenUpstreamTokens)) this.addSecret('upstream access token', t.token);
    this.seenUpstreamTokens = issued.length;
  }

  /** Take note of credentials a successful response handed out: secrets for every later response and log line. */
  private learnFrom(res: RawResponse): void {
    if (res.status >= 200 && res.status < 300 && /json/.test(res.headers['content-type'] ?? '')) {
      try {
        const body = JSON.parse(res.body) as Record<string, unknown>;
        for (const name of ['access_token', 'refresh_token', 'id_token', 'client_secret', 'registration_access_token']) {
          if (typeof body[name] === 'string') this.addSecret(name, body[name]);
        }
      } catch {
        // not JSON after all: nothing handed out
      }
    }
    const location = res.headers.location;
    if (location) {
      const params = new URL(location, this.app.url).searchParams;
      this.addSecret('authorization code', params.get('code') ?? undefined);
    }
    this.learnUpstream();
  }

  async before(): Promise<Before> {
    const { upstream, mcp } = this.stack;
    return {
      counts: await rowCounts(this.app),
      head: await auditHead(this.app),
      logLines: this.app.logLines.length,
      uncaught: this.uncaught.length,
      u: { authorizations: upstream.authorizations.length, tokens: upstream.tokenRequests.length, revocations: upstream.revocations.length },
      r: mcp.received.length,
    };
  }

  send(req: RawReq): Promise<RawResponse> {
    return rawRequest(this.port, buildRaw(req));
  }

  /** One case: snapshot, request, every invariant. Returns the response for surface-specific checks. */
  async case(req: RawReq, rules: CaseRules | ((res: RawResponse) => CaseRules) = {}): Promise<RawResponse> {
    const before = await this.before();
    const res = await this.send(req);
    await this.check(before, res, `${req.method} ${req.path.slice(0, 200)}`, typeof rules === 'function' ? rules(res) : rules);
    return res;
  }

  async check(before: Before, res: RawResponse, label: string, rules: CaseRules): Promise<void> {
    this.statuses.set(res.status, (this.statuses.get(res.status) ?? 0) + 1);
    const where = `${label} → ${res.status} ${res.body.slice(0, 300)}`;
    // 1. an answer, and no 5xx
    expect(res.status, where).toBeGreaterThanOrEqual(100);
    if (!rules.allow5xx?.includes(res.status)) expect(res.status, where).toBeLessThan(500);
    // 2. the process is up and well
    expect(this.uncaught.slice(before.uncaught), where).toEqual([]);
    const newLines = this.app.logLines.slice(before.logLines);
    expect(
      newLines.filter((l) => /"level":(50|60)/.test(l)),
      where,
    ).toEqual([]);
    const health = await fetch(`${this.app.url}/healthz`);
    expect(health.status, `${where}: /healthz after it`).toBe(200);
    await health.arrayBuffer();
    // 3. side effects
    const rows = await auditRowsSince(this.app, before.head); // 5. (throws on a broken link or MAC)
    const after = await rowCounts(this.app);
    const refused = res.status >= 400 && !rules.forwarded;
    const mayAdd = new Set(refused ? [] : (rules.successMayAdd ?? []));
    const mayRemove = new Set(rules.mayRemove ?? []);
    for (const kind of new Set([...Object.keys(before.counts), ...Object.keys(after)])) {
      const was = before.counts[kind] ?? 0;
      const now = after[kind] ?? 0;
      if (now > was) expect(mayAdd.has(kind), `${where}: ${kind} ${was} → ${now}${CREDENTIAL_MODELS.includes(kind as never) ? ' (a credential)' : ''}`).toBe(true);
      if (now < was) expect(mayRemove.has(kind), `${where}: ${kind} ${was} → ${now}`).toBe(true);
    }
    if (refused) {
      for (const row of rows) {
        if (!rules.cascadeEvents?.includes(row.event)) expect(row.outcome, `${where}: audit row ${row.event} ${row.reason ?? ''}`).toBe('deny');
      }
      const { upstream, mcp } = this.stack;
      if (!rules.external?.includes('U')) expect(upstream.tokenRequests.length, `${where}: U's token endpoint was called`).toBe(before.u.tokens);
      expect(upstream.authorizations.length, `${where}: the browser was sent to U`).toBe(before.u.authorizations);
      if (!rules.external?.includes('R')) expect(mcp.received.length, `${where}: R was contacted`).toBe(before.r);
    }
    // 4. no secret in the response or the logs
    const text = `${res.status}\n${Object.entries(res.headers)
      .map(([k, v]) => `${k}: ${v}`)
      .join('\n')}\n${res.body}`;
    for (const [value, name] of this.secrets) {
      expect(text.includes(value), `${where}: the response contains the ${name}`).toBe(false);
      for (const line of newLines) expect(line.includes(value), `${label}: a log line contains the ${name}: ${line.slice(0, 300)}`).toBe(false);
    }
    // 6. redirects
    const location = res.headers.location;
    if (location && /^[a-z][a-z0-9+.-]*:/i.test(location)) {
      const url = new URL(location);
      const registered = (r: string) => location === r || location.startsWith(`${r}?`) || location.startsWith(`${r}#`);
      const anyPort = new URL(location);
      anyPort.port = '';
      const ok =
        url.origin === new URL(this.app.url).origin ||
        this.allowedRedirects.has(url.origin) ||
        [...this.allowedRedirects].some(registered) ||
        [...this.allowedLoopbackRedirects].some((r) => anyPort.href === r || anyPort.href.startsWith(`${r}?`) || anyPort.href.startsWith(`${r}#`));
      expect(ok, `${where}: redirect to ${location}`).toBe(true);
    }
    this.learnFrom(res);
  }

  /** `audit verify` through the CLI: the whole chain and the checkpoint file (DESIGN §9). */
  async verifyWholeChain(): Promise<void> {
    await this.app.runtime.audit.flush();
    const out: string[] = [];
    const err: string[] = [];
    const env = { ...(await databaseEnv(dirname(this.app.config.databasePath))), SECRET_KEY: TEST_SECRET_KEY };
    const code = await run(['audit', 'verify'], { out: (t) => out.push(t), err: (t) => err.push(t), env });
    expect({ code, out, err }).toMatchObject({ code: 0 });
  }
}
