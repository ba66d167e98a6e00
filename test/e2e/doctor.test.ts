/**
 * `mcp-consent-proxy doctor` against the in-process fakes (an OIDC upstream, a GitHub-shaped
 * one, the MCP server, small servers that answer wrongly or not at all): the all-pass case,
 * then each failure it names — one test per failure, each asserting the failing check, its fix,
 * and that the other checks are unaffected where they can be. Probes use short timeouts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, listenLoopback, startTestApp, TEST_SECRET_KEY, type TestApp } from '../helpers/app.js';
import { startFakeGithub, startFakeOidcUpstream, type FakeUpstream } from '../helpers/fake-upstream.js';
import { startFakeMcp, type FakeMcp } from '../helpers/fake-mcp.js';
import { changedMigrationDatabase, holdWriteLock, migratedDatabase, newerDatabase, notADatabase } from '../helpers/doctor-db.js';
import { runDoctor, type DoctorReport } from '../../src/cli/doctor/run.js';
import { run, type Io } from '../../src/cli/index.js';

const TIMEOUT_MS = 1500;
let app: TestApp;
let upstream: FakeUpstream;
let mcp: FakeMcp;
const servers: Server[] = [];
const scratch = mkdtempSync(join(tmpdir(), 'doctor-'));

/** The server's own settings (those startTestApp gave it), with the changes a test makes. */
function envOf(overrides: Record<string, string | undefined> = {}): Record<string, string | undefined> {
  // The server's database: on PostgreSQL (TEST_ENGINE=postgres) its DATABASE_URL — unless a test
  // points DATABASE_PATH at a SQLite file of its own (the SQLite database checks below).
  const engine = app.config.databaseUrl && !('DATABASE_PATH' in overrides) ? { DATABASE_URL: app.config.databaseUrl } : {};
  return {
    ...engine,
    PUBLIC_URL: app.url,
    PORT: String(app.config.port),
    DATABASE_PATH: app.config.databasePath,
    SECRET_KEY: TEST_SECRET_KEY,
    UPSTREAM_ISSUER: upstream.issuer,
    UPSTREAM_CLIENT_ID: upstream.clientId,
    UPSTREAM_CLIENT_SECRET: upstream.clientSecret,
    UPSTREAM_SCOPES: 'openid email',
    MCP_UPSTREAM_URL: mcp.url,
    ...overrides,
  };
}

const doctor = (overrides: Record<string, string | undefined> = {}, now = Date.now) => runDoctor(envOf(overrides), { timeoutMs: TIMEOUT_MS, now });
const check = (report: DoctorReport, id: string) => report.checks.find((c) => c.id === id) ?? expect.fail(`no check ${id}`);
const statuses = (report: DoctorReport) => Object.fromEntries(report.checks.map((c) => [c.id, c.status]));

/** A loopback server answering every request with `handler`. */
async function serveWith(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<string> {
  const server = createServer(handler);
  servers.push(server);
  return `http://127.0.0.1:${await listenLoopback(server)}`;
}

/**
 * An OIDC discovery document at `<url>/.well-known/openid-configuration`, issuer its own URL, with
 * `change` applied; `/auth` and `/token` answer as `answer` says (by default 404 and `{}`).
 */
async function discoveryServer(change: (doc: Record<string, unknown>) => void, answer: { auth?: (res: ServerResponse) => void; token?: (res: ServerResponse) => void } = {}): Promise<string> {
  let issuer = '';
  issuer = await serveWith((req, res) => {
    const doc: Record<string, unknown> = { issuer, authorization_endpoint: `${issuer}/auth`, token_endpoint: `${issuer}/token`, code_challenge_methods_supported: ['S256'] };
    change(doc);
    const path = req.url?.split('?')[0];
    if (path === '/auth' && answer.auth) return answer.auth(res);
    if (path === '/token' && answer.token) return answer.token(res);
    res.setHeader('content-type', 'application/json');
    res.end(path === '/.well-known/openid-configuration' ? JSON.stringify(doc) : '{}');
  });
  return issuer;
}

beforeAll(async () => {
  const port = await freePort();
  upstream = await startFakeOidcUpstream({ callbackUrl: `http://127.0.0.1:${port}/upstream/callback` });
  mcp = await startFakeMcp();
  app = await startTestApp({ port, env: { UPSTREAM_ISSUER: upstream.issuer, UPSTREAM_CLIENT_ID: upstream.clientId, UPSTREAM_CLIENT_SECRET: upstream.clientSecret, UPSTREAM_SCOPES: 'openid email', MCP_UPSTREAM_URL: mcp.url } });
});

afterAll(async () => {
  for (const server of servers) server.closeAllConnections();
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  await app.close();
  await upstream.close();
  await mcp.close();
});

describe('doctor › all pass', () => {
  it('passes every check against a working OIDC upstream, MCP server and database; exit 0', async () => {
    const report = await doctor();
    expect(report.checks.filter((c) => c.status !== 'pass')).toEqual([]);
    expect(statuses(report)).toEqual({
      config: 'pass',
      'public-url': 'pass',
      proxy: 'pass',
      'upstream-discovery': 'pass',
      'upstream-pkce': 'pass',
      'upstream-client': 'pass',
      'upstream-secret': 'pass',
      clock: 'pass',
      'mcp-upstream': 'pass',
      database: 'pass',
    });
    expect(report).toMatchObject({ ok: true, callbackUrl: `${app.url}/upstream/callback` });
    // the probes sent nothing that signs anyone in or grants anything
    expect(upstream.issued).toEqual([]);
  });

  it('the command prints the checklist and the callback URL to register, and exits 0; --json for machines', async () => {
    const io: Io & { stdout: string[] } = { stdout: [], env: envOf(), out: (t) => io.stdout.push(t), err: () => undefined };
    expect(await run(['doctor', '--timeout', '2'], io)).toBe(0);
    expect(io.stdout.join('\n')).toContain(`Callback URL to register at the upstream: ${app.url}/upstream/callback`);
    expect(io.stdout.join('\n')).toMatch(/all checks passed$/);
    expect(io.stdout.join('\n')).not.toContain(upstream.clientSecret);
    const json: Io & { stdout: string[] } = { stdout: [], env: envOf(), out: (t) => json.stdout.push(t), err: () => undefined };
    expect(await run(['doctor', '--json'], json)).toBe(0);
    expect(JSON.parse(json.stdout[0] as string)).toMatchObject({ ok: true, checks: expect.arrayContaining([expect.objectContaining({ id: 'database', status: 'pass' })]) });
  });

  it('passes against a GitHub-shaped upstream (no metadata: PKCE cannot be checked, and says so)', async () => {
    const github = await startFakeGithub({ callbackUrl: `${app.url}/upstream/callback` });
    try {
      const report = await doctor({ UPSTREAM_PRESET: 'github', UPSTREAM_ISSUER: github.issuer, UPSTREAM_CLIENT_ID: github.clientId, UPSTREAM_CLIENT_SECRET: github.clientSecret, UPSTREAM_SCOPES: 'read:user' });
      expect(report.ok).toBe(true);
      expect(statuses(report)).toMatchObject({ 'upstream-discovery': 'pass', 'upstream-pkce': 'unchecked', 'upstream-client': 'pass', 'upstream-secret': 'pass', clock: 'pass' });
      const wrong = await doctor({ UPSTREAM_PRESET: 'github', UPSTREAM_ISSUER: github.issuer, UPSTREAM_CLIENT_ID: github.clientId, UPSTREAM_CLIENT_SECRET: 'wrong', UPSTREAM_SCOPES: 'read:user' });
      expect(check(wrong, 'upstream-secret')).toMatchObject({ status: 'fail', detail: expect.stringContaining('incorrect_client_credentials') });
    } finally {
      await github.close();
    }
  });
});

describe('doctor › configuration', () => {
  it('an invalid configuration fails "config" listing every problem, skips the rest, exit 1', async () => {
    const report = await doctor({ PUBLIC_URL: 'nope', UPSTREAM_CLIENT_ID: undefined });
    expect(check(report, 'config')).toMatchObject({ status: 'fail', detail: expect.stringMatching(/PUBLIC_URL: must be an absolute URL.*UPSTREAM_CLIENT_ID: required/), fix: expect.any(String) });
    expect(report.checks.filter((c) => c.id !== 'config').every((c) => c.status === 'skipped')).toBe(true);
    const io: Io = { env: envOf({ PUBLIC_URL: 'nope' }), out: () => undefined, err: () => undefined };
    expect(await run(['doctor'], io)).toBe(1);
  });

  it('a bad --timeout is bad usage (exit 2)', async () => {
    const io: Io = { env: envOf(), out: () => undefined, err: () => undefined };
    expect(await run(['doctor', '--timeout', 'soon'], io)).toBe(2);
  });
});

describe('doctor › PUBLIC_URL', () => {
  it('not reachable from this host: fails, with the fix to start the server and route PUBLIC_URL to it', async () => {
    const port = await freePort();
    const report = await doctor({ PUBLIC_URL: `http://127.0.0.1:${port}`, PORT: String(port) });
    expect(check(report, 'public-url')).toMatchObject({ status: 'fail', detail: expect.stringContaining('connection refused'), fix: expect.stringContaining('mcp-consent-proxy serve') });
    expect(check(report, 'proxy').status).toBe('skipped');
    expect(report.ok).toBe(false);
  });

  it('answered by something that is not this proxy: fails', async () => {
    const report = await doctor({ PUBLIC_URL: new URL(mcp.url).origin });
    expect(check(report, 'public-url')).toMatchObject({ status: 'fail', detail: expect.stringContaining("not this proxy's metadata"), fix: expect.stringContaining('/.well-known/') });
  });

  it('answered by this proxy under another issuer (localhost vs 127.0.0.1): fails naming both', async () => {
    const other = `http://localhost:${app.config.port}`;
    const report = await doctor({ PUBLIC_URL: other });
    expect(check(report, 'public-url')).toMatchObject({ status: 'fail', detail: `${other}/.well-known/oauth-authorization-server answers as issuer ${app.url}, not ${other}` });
  });
});

describe('doctor › upstream', () => {
  it('discovery unreachable: fails with the fix, and the checks that need it are skipped', async () => {
    const report = await doctor({ UPSTREAM_ISSUER: `http://127.0.0.1:${await freePort()}` });
    expect(check(report, 'upstream-discovery')).toMatchObject({ status: 'fail', detail: expect.stringContaining('connection refused'), fix: expect.stringContaining('UPSTREAM_ISSUER') });
    expect(statuses(report)).toMatchObject({ 'upstream-pkce': 'skipped', 'upstream-client': 'skipped', 'upstream-secret': 'skipped', clock: 'skipped' });
  });

  it('no answer within the timeout: fails after the timeout, not later', async () => {
    const silent = await serveWith(() => undefined); // accepts, never answers
    const started = Date.now();
    const report = await runDoctor(envOf({ UPSTREAM_ISSUER: silent }), { timeoutMs: 300, now: Date.now });
    expect(check(report, 'upstream-discovery')).toMatchObject({ status: 'fail', detail: expect.stringContaining('no answer in time') });
    expect(Date.now() - started).toBeLessThan(3000);
  });

  it('issuer mismatch (UP-06): fails naming the issuer U names', async () => {
    const dialed = upstream.issuer.replace('localhost', '127.0.0.1');
    const report = await doctor({ UPSTREAM_ISSUER: dialed });
    expect(check(report, 'upstream-discovery')).toMatchObject({ status: 'fail', detail: expect.stringContaining(`names issuer "${upstream.issuer}"`), fix: `Set UPSTREAM_ISSUER=${upstream.issuer} — exactly the issuer U names (scheme, host, port, path, trailing slash); the server refuses a provider whose document names another.` });
  });

  it('a discovery document without a token endpoint: fails', async () => {
    const report = await doctor({ UPSTREAM_ISSUER: await discoveryServer((doc) => delete doc.token_endpoint) });
    expect(check(report, 'upstream-discovery')).toMatchObject({ status: 'fail', detail: expect.stringContaining('has no token_endpoint') });
  });

  it('PKCE without S256 (UP-02): fails', async () => {
    const report = await doctor({ UPSTREAM_ISSUER: await discoveryServer((doc) => (doc.code_challenge_methods_supported = ['plain'])) });
    expect(check(report, 'upstream-discovery').status).toBe('pass');
    expect(check(report, 'upstream-pkce')).toMatchObject({ status: 'fail', fix: expect.stringContaining('S256') });
  });

  it('an unknown client id: the authorization request is refused (invalid_client), and so is the token request', async () => {
    const report = await doctor({ UPSTREAM_CLIENT_ID: 'no-such-client' });
    expect(check(report, 'upstream-client')).toMatchObject({ status: 'fail', detail: expect.stringContaining('invalid_client'), fix: expect.stringContaining('UPSTREAM_CLIENT_ID') });
    expect(check(report, 'upstream-secret').status).toBe('fail');
  });

  it('the callback URL not registered at the upstream: fails with the exact URL to register', async () => {
    const elsewhere = await startFakeOidcUpstream({ callbackUrl: 'https://old.example.com/upstream/callback' });
    try {
      const report = await doctor({ UPSTREAM_ISSUER: elsewhere.issuer, UPSTREAM_CLIENT_ID: elsewhere.clientId, UPSTREAM_CLIENT_SECRET: elsewhere.clientSecret });
      expect(check(report, 'upstream-client')).toMatchObject({ status: 'fail', fix: `Register exactly ${app.url}/upstream/callback as the callback (redirect) URL of client ${elsewhere.clientId} at the upstream.` });
      expect(check(report, 'upstream-secret').status).toBe('pass');
    } finally {
      await elsewhere.close();
    }
  });

  it('the upstream sends the authorization request back to the callback with an error (as GitHub does for redirect_uri_mismatch): fails', async () => {
    const issuer = await discoveryServer(() => undefined, { auth: (res) => res.writeHead(302, { location: `${app.url}/upstream/callback?error=redirect_uri_mismatch&state=x` }).end() });
    const report = await doctor({ UPSTREAM_ISSUER: issuer });
    expect(check(report, 'upstream-client')).toMatchObject({ status: 'fail', detail: expect.stringContaining('error=redirect_uri_mismatch'), fix: expect.stringContaining(`Register exactly ${app.url}/upstream/callback`) });
  });

  it('a client not allowed the authorization code grant (unauthorized_client): fails', async () => {
    const issuer = await discoveryServer(() => undefined, { token: (res) => res.writeHead(400, { 'content-type': 'application/json' }).end('{"error":"unauthorized_client"}') });
    const report = await doctor({ UPSTREAM_ISSUER: issuer });
    expect(check(report, 'upstream-secret')).toMatchObject({ status: 'fail', fix: expect.stringContaining('authorization code grant') });
  });

  it('a token endpoint whose answer says nothing about the client: cannot be checked, said so, not a failure', async () => {
    const issuer = await discoveryServer(() => undefined, { token: (res) => res.writeHead(400, { 'content-type': 'application/json' }).end('{"error":"invalid_request"}') });
    const report = await doctor({ UPSTREAM_ISSUER: issuer });
    expect(check(report, 'upstream-secret')).toMatchObject({ status: 'unchecked', detail: expect.stringContaining('does not say whether it accepted the client') });
  });

  it('a wrong client secret: the token endpoint refuses the client (invalid_client); the secret is never printed', async () => {
    const report = await doctor({ UPSTREAM_CLIENT_SECRET: 'wrong-secret-value' });
    expect(check(report, 'upstream-secret')).toMatchObject({ status: 'fail', detail: 'the token endpoint refused the client: invalid_client', fix: expect.stringContaining('UPSTREAM_CLIENT_SECRET') });
    expect(check(report, 'upstream-client').status).toBe('pass');
    expect(JSON.stringify(report)).not.toContain('wrong-secret-value');
    expect(upstream.issued).toEqual([]);
  });

  it("clock skew beyond 30 s against the upstream's Date: fails with NTP as the fix", async () => {
    const report = await doctor({}, () => Date.now() + 120_000);
    expect(check(report, 'clock')).toMatchObject({ status: 'fail', detail: expect.stringMatching(/clock is 1(19|20|21) s ahead of the upstream's Date/), fix: expect.stringContaining('NTP') });
    const behind = await doctor({}, () => Date.now() - 45_000);
    expect(check(behind, 'clock')).toMatchObject({ status: 'fail', detail: expect.stringContaining('behind') });
  });
});

describe('doctor › MCP server', () => {
  it('unreachable: fails', async () => {
    const report = await doctor({ MCP_UPSTREAM_URL: `http://127.0.0.1:${await freePort()}/mcp` });
    expect(check(report, 'mcp-upstream')).toMatchObject({ status: 'fail', detail: expect.stringContaining('connection refused'), fix: expect.stringContaining('MCP_UPSTREAM_URL') });
  });

  it('reachable but not speaking MCP: fails', async () => {
    const report = await doctor({ MCP_UPSTREAM_URL: `${app.url}/healthz` });
    expect(check(report, 'mcp-upstream')).toMatchObject({ status: 'fail', detail: expect.stringContaining('not an MCP initialize result'), fix: expect.stringContaining('Streamable HTTP endpoint') });
  });

  it('asks for a token: cannot be checked from here, said so, and not a failure', async () => {
    const guarded = await serveWith((_req, res) => res.writeHead(401, { 'www-authenticate': 'Bearer resource_metadata="x"' }).end());
    const report = await doctor({ MCP_UPSTREAM_URL: `${guarded}/mcp` });
    expect(check(report, 'mcp-upstream')).toMatchObject({ status: 'unchecked', detail: expect.stringContaining('cannot be checked from here') });
    expect(report.ok).toBe(true);
  });
});

describe('doctor › database', () => {
  const path = (name: string) => join(scratch, name);

  it('missing: fails with migrate as the fix, and creates nothing', async () => {
    const report = await doctor({ DATABASE_PATH: path('none/proxy.db') });
    expect(check(report, 'database')).toMatchObject({ status: 'fail', detail: `no database at ${path('none/proxy.db')}`, fix: expect.stringContaining('mcp-consent-proxy migrate') });
    expect(existsSync(path('none'))).toBe(false);
  });

  it('not migrated: fails naming the next migration', async () => {
    writeFileSync(path('empty.db'), '');
    const report = await doctor({ DATABASE_PATH: path('empty.db') });
    expect(check(report, 'database')).toMatchObject({ status: 'fail', detail: expect.stringMatching(/0 of \d+ migrations applied \(next: 0001-oidc-models\.sql\)/), fix: expect.stringContaining('migrate') });
  });

  it('migrated by a newer version: fails', async () => {
    newerDatabase(path('newer.db'));
    const report = await doctor({ DATABASE_PATH: path('newer.db') });
    expect(check(report, 'database')).toMatchObject({ status: 'fail', detail: expect.stringContaining('was migrated by a newer version (0999-from-the-future.sql') });
  });

  it('a migration changed after it was applied: fails', async () => {
    changedMigrationDatabase(path('changed.db'));
    const report = await doctor({ DATABASE_PATH: path('changed.db') });
    expect(check(report, 'database')).toMatchObject({ status: 'fail', detail: expect.stringContaining('differs from the file it was applied from') });
  });

  it('not a database: fails', async () => {
    notADatabase(path('text.db'));
    const report = await doctor({ DATABASE_PATH: path('text.db') });
    expect(check(report, 'database')).toMatchObject({ status: 'fail', detail: expect.stringContaining('cannot be opened') });
  });

  it('not writable (its write lock held elsewhere): fails within the timeout', async () => {
    migratedDatabase(path('locked.db'));
    const lock = holdWriteLock(path('locked.db'));
    try {
      const report = await runDoctor(envOf({ DATABASE_PATH: path('locked.db') }), { timeoutMs: 200, now: Date.now });
      expect(check(report, 'database')).toMatchObject({ status: 'fail', detail: expect.stringContaining('cannot take the write lock'), fix: expect.stringContaining('write') });
    } finally {
      lock.release();
    }
  });
});

describe('doctor › TRUST_PROXY', () => {
  /** P behind a loopback reverse proxy that adds X-Forwarded-For: PUBLIC_URL is the proxy's. */
  async function behindProxy(trustProxy: string) {
    const port = await freePort();
    const front = createServer((req, res) => {
      const upstreamReq = request({ host: '127.0.0.1', port, path: req.url, method: req.method, headers: { ...req.headers, 'x-forwarded-for': '203.0.113.7' } }, (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
      });
      req.pipe(upstreamReq);
    });
    servers.push(front);
    const publicUrl = `http://127.0.0.1:${await listenLoopback(front)}`;
    const behind = await startTestApp({ port, env: { PUBLIC_URL: publicUrl, TRUST_PROXY: trustProxy, UPSTREAM_ISSUER: upstream.issuer, UPSTREAM_CLIENT_ID: upstream.clientId, UPSTREAM_CLIENT_SECRET: upstream.clientSecret, MCP_UPSTREAM_URL: mcp.url } });
    const env = { PUBLIC_URL: publicUrl, PORT: String(port), TRUST_PROXY: trustProxy, DATABASE_PATH: behind.config.databasePath };
    return { behind, env };
  }

  it('behind a proxy while TRUST_PROXY=false: fails (every client would share the proxy’s rate-limit budget)', async () => {
    const { behind, env } = await behindProxy('false');
    try {
      const report = await doctor(env);
      expect(check(report, 'public-url').status).toBe('pass');
      expect(check(report, 'proxy')).toMatchObject({ status: 'fail', detail: expect.stringContaining(`PUBLIC_URL's port`), fix: expect.stringContaining('TRUST_PROXY=1') });
    } finally {
      await behind.close();
    }
  });

  it('behind a proxy with TRUST_PROXY=1: passes', async () => {
    const { behind, env } = await behindProxy('1');
    try {
      expect(check(await doctor(env), 'proxy')).toMatchObject({ status: 'pass', detail: expect.stringContaining('behind a proxy') });
    } finally {
      await behind.close();
    }
  });

  it('reached directly while TRUST_PROXY=1: fails (any client would pick its own address)', async () => {
    const report = await doctor({ TRUST_PROXY: '1' });
    expect(check(report, 'proxy')).toMatchObject({ status: 'fail', detail: expect.stringContaining('clients reach the server directly'), fix: expect.stringContaining('TRUST_PROXY=false') });
  });

  it('TRUST_PROXY=true: fails wherever it runs', async () => {
    const report = await doctor({ TRUST_PROXY: 'true' });
    expect(check(report, 'proxy')).toMatchObject({ status: 'fail', detail: expect.stringContaining('client-supplied first one') });
  });
});
