import { describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, loadConfig } from '../../src/config/load.js';
import { renderConfigReference, SCHEMA } from '../../src/config/schema.js';
import { requestDeadlines } from '../../src/http/server-limits.js';

const UPSTREAM = {
  UPSTREAM_ISSUER: 'https://idp.example.com',
  UPSTREAM_CLIENT_ID: 'proxy',
  UPSTREAM_CLIENT_SECRET: 'shh-upstream-secret',
  MCP_UPSTREAM_URL: 'https://mcp.internal.example.com/mcp',
};

function problemsOf(env: Record<string, string | undefined>): string[] {
  try {
    loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
  return [];
}

describe('config › loadConfig', () => {
  it('applies documented defaults', () => {
    const config = loadConfig({ ...UPSTREAM });
    expect(config.port).toBe(8080);
    expect(config.host).toBe('127.0.0.1');
    expect(config.urls.issuer).toBe('http://localhost:8080');
    expect(config.urls.mcpResource).toBe('http://localhost:8080/mcp');
    expect(config.mcpScopes).toEqual(['mcp:tools']);
    expect(config.ttl.consent).toBe(90 * 86_400);
    expect(config.rateLimits.register).toEqual({ limit: 30, windowMs: 60_000 });
    expect(config.upstream?.scopes).toEqual(['openid']);
    expect(config.demo).toBe(false);
    expect(Object.isFrozen(config)).toBe(true);
  });

  it('derives every URL from PUBLIC_URL, including a base path', () => {
    const config = loadConfig({ ...UPSTREAM, PUBLIC_URL: 'https://Proxy.Example.com/mcp-auth/' });
    expect(config.urls.issuer).toBe('https://proxy.example.com/mcp-auth');
    expect(config.urls.mcpResource).toBe('https://proxy.example.com/mcp-auth/mcp');
    expect(config.urls.mcpResourceMetadata).toBe('https://proxy.example.com/.well-known/oauth-protected-resource/mcp-auth/mcp');
    expect(config.urls.upstreamCallback).toBe('https://proxy.example.com/mcp-auth/upstream/callback');
  });

  it('accepts a base path of unreserved characters, / between segments, and a trailing slash', () => {
    for (const publicUrl of ['https://x/mcp-proxy', 'https://x/mcp-proxy/', 'https://x/A.b_c~d/e-f/0', 'https://x', 'https://x/']) {
      expect(problemsOf({ ...UPSTREAM, PUBLIC_URL: publicUrl }), publicUrl).toEqual([]);
    }
    expect(loadConfig({ ...UPSTREAM, PUBLIC_URL: 'https://x/mcp-proxy' }).urls.basePath).toBe('/mcp-proxy');
  });

  it('runs in demo mode when no upstream issuer is configured', () => {
    const config = loadConfig({});
    expect(config.demo).toBe(true);
    expect(config.upstream).toBeUndefined();
  });

  it('lists every problem at once', () => {
    const problems = problemsOf({
      ...UPSTREAM,
      PORT: '99999',
      CONSENT_TTL: 'forever',
      RATE_LIMIT_TOKEN: 'lots',
      MCP_SCOPES: 'mcp:tools offline_access',
      UPSTREAM_PRESET: 'facebook',
      DATABASE_SYNCHRONOUS: 'OFF',
      LOG_LEVEL: 'chatty',
      TRUST_PROXY: 'my-proxy',
      REDIRECT_SCHEMES: 'cursor javascript',
      GATEWAY_MAX_BODY: 'huge',
      DANGEROUSLY_ALLOW_INSECURE_HTTP: 'maybe',
    });
    expect(problems).toEqual([
      'PORT: must be a port number between 0 and 65535 (got "99999")',
      'TRUST_PROXY: has entries that are neither addresses nor subnets: my-proxy (got "my-proxy")',
      'DATABASE_SYNCHRONOUS: must be NORMAL or FULL (got "OFF")',
      'UPSTREAM_PRESET: must be oidc, github or google (got "facebook")',
      'MCP_SCOPES: must not contain offline_access (always offered by the authorization server) (got "mcp:tools offline_access")',
      'CONSENT_TTL: must be a duration such as 30s, 10m, 12h or 90d (got "forever")',
      'REDIRECT_SCHEMES: has schemes that cannot be allowed: javascript (got "cursor javascript")',
      'RATE_LIMIT_TOKEN: must be a budget such as 30/1m (30 requests per minute) (got "lots")',
      'GATEWAY_MAX_BODY: must be a size such as 512kb or 4mb (got "huge")',
      'LOG_LEVEL: must be one of trace, debug, info, warn, error, fatal, silent (got "chatty")',
      'DANGEROUSLY_ALLOW_INSECURE_HTTP: must be true or false (got "maybe")',
    ]);
  });

  it.each([
    ['PUBLIC_URL', 'not a url', 'PUBLIC_URL: must be an absolute URL such as https://mcp.example.com (got "not a url")'],
    ['PUBLIC_URL', 'ftp://example.com', 'PUBLIC_URL: must use https (or http on a loopback host) (got "ftp://example.com")'],
    ['PUBLIC_URL', 'https://user:pw@example.com', 'PUBLIC_URL: must not contain a user name or password (got "https://user:pw@example.com")'],
    ['PUBLIC_URL', 'https://example.com/?x=1', 'PUBLIC_URL: must not contain a query or fragment (got "https://example.com/?x=1")'],
    // The base path becomes an express route pattern (src/runtime/app.ts): "(" crashed the start, ":" and "*" mounted a parameter or a wildcard.
    ['PUBLIC_URL', 'https://x/a(b)', 'PUBLIC_URL: must not contain "(" in its path: only letters, digits, - . _ ~ and / between segments (the base path becomes a route pattern) (got "https://x/a(b)")'],
    ['PUBLIC_URL', 'https://x/t:tenant', 'PUBLIC_URL: must not contain ":" in its path: only letters, digits, - . _ ~ and / between segments (the base path becomes a route pattern) (got "https://x/t:tenant")'],
    ['PUBLIC_URL', 'https://x/x*y', 'PUBLIC_URL: must not contain "*" in its path: only letters, digits, - . _ ~ and / between segments (the base path becomes a route pattern) (got "https://x/x*y")'],
    ['PUBLIC_URL', 'https://x/caf%C3%A9', 'PUBLIC_URL: must not contain "%" in its path: only letters, digits, - . _ ~ and / between segments (the base path becomes a route pattern) (got "https://x/caf%C3%A9")'],
    ['PUBLIC_URL', 'https://x/café', 'PUBLIC_URL: must not contain "%" in its path: only letters, digits, - . _ ~ and / between segments (the base path becomes a route pattern) (got "https://x/café")'],
    ['PUBLIC_URL', 'https://x/a//b', 'PUBLIC_URL: must not contain an empty path segment ("//") (got "https://x/a//b")'],
    ['MCP_SCOPES', 'mcp:tools bad"scope', 'MCP_SCOPES: has invalid scope tokens: bad"scope (got "mcp:tools bad\\"scope")'],
    ['UPSTREAM_SCOPES', ' ', 'UPSTREAM_SCOPES: must name at least one scope (got " ")'],
  ])('rejects %s=%j', (name, value, message) => {
    expect(problemsOf({ ...UPSTREAM, [name]: value })).toContain(message);
  });

  it('allows plain http only for loopback hosts unless the DANGEROUSLY_ switch is on', () => {
    const env = { ...UPSTREAM, PUBLIC_URL: 'http://proxy.example.com', UPSTREAM_ISSUER: 'http://idp.example.com', MCP_UPSTREAM_URL: 'http://10.0.0.5/mcp' };
    const problems = problemsOf(env);
    for (const name of ['PUBLIC_URL', 'UPSTREAM_ISSUER', 'MCP_UPSTREAM_URL']) {
      expect(problems).toContain(`${name}: plain http is only allowed for loopback hosts (localhost, 127.0.0.0/8, [::1]); use https or set DANGEROUSLY_ALLOW_INSECURE_HTTP=true`);
    }
    for (const host of ['localhost', '127.0.0.1', '127.8.9.10', '[::1]']) {
      expect(problemsOf({ ...UPSTREAM, PUBLIC_URL: `http://${host}:8080` })).toEqual([]);
    }
    const config = loadConfig({ ...env, DANGEROUSLY_ALLOW_INSECURE_HTTP: 'true' });
    expect(config.warnings.join(' ')).toMatch(/DANGEROUSLY_ALLOW_INSECURE_HTTP is on/);
  });

  it('requires the upstream client and the MCP server outside demo mode', () => {
    expect(problemsOf({ UPSTREAM_ISSUER: 'https://idp.example.com' })).toEqual([
      'UPSTREAM_CLIENT_ID: required with an upstream (register http://localhost:8080/upstream/callback as the callback URL at the upstream and put its client id here)',
      'MCP_UPSTREAM_URL: required with an upstream (the MCP server the gateway forwards to)',
    ]);
    expect(problemsOf({ UPSTREAM_PRESET: 'github', UPSTREAM_CLIENT_ID: 'x', MCP_UPSTREAM_URL: 'https://m.example.com/mcp' })).toEqual([
      'UPSTREAM_CLIENT_SECRET: required for the github preset',
    ]);
    expect(problemsOf({ UPSTREAM_CLIENT_ID: 'x' })[0]).toMatch(/^UPSTREAM_ISSUER: not set, so no upstream is configured \(UPSTREAM_PRESET=oidc\), but this looks like a production configuration: UPSTREAM_CLIENT_ID/);
  });

  it('gives presets their endpoints, scopes and names', () => {
    const github = loadConfig({ UPSTREAM_PRESET: 'github', UPSTREAM_CLIENT_ID: 'x', UPSTREAM_CLIENT_SECRET: 'y', MCP_UPSTREAM_URL: 'https://m.example.com/mcp' });
    expect(github.upstream).toMatchObject({ preset: 'github', name: 'GitHub', scopes: ['read:user'] });
    expect(github.upstream?.issuer.href).toBe('https://github.com/');
    const google = loadConfig({ UPSTREAM_PRESET: 'google', UPSTREAM_CLIENT_ID: 'x', UPSTREAM_CLIENT_SECRET: 'y', MCP_UPSTREAM_URL: 'https://m.example.com/mcp' });
    expect(google.upstream).toMatchObject({ name: 'Google', scopes: ['openid', 'email'] });
  });

  it('never prints secret values', () => {
    const problems = problemsOf({ ...UPSTREAM, SECRET_KEY: 'too-short-secret-value', SECRET_KEY_PREVIOUS: '%%%not-base64%%%' });
    expect(problems).toEqual([
      'SECRET_KEY: must decode to at least 32 bytes (it decodes to 16)',
      'SECRET_KEY_PREVIOUS: must be base64 (generate one with: openssl rand -base64 32)',
    ]);
    expect(problems.join('\n')).not.toContain('too-short-secret-value');
    let message = '';
    try {
      loadConfig({ ...UPSTREAM, SECRET_KEY: 'too-short-secret-value', PORT: 'x' });
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toContain('PORT');
    expect(message).not.toContain('too-short-secret-value');
    expect(message).not.toContain(UPSTREAM.UPSTREAM_CLIENT_SECRET);
  });

  it('GATEWAY_BODY_MEMORY defaults to 16 × GATEWAY_MAX_BODY and may not be below it', () => {
    expect(loadConfig({ ...UPSTREAM }).gateway).toMatchObject({ maxBodyBytes: 4 * 2 ** 20, bodyMemoryBytes: 64 * 2 ** 20 });
    expect(loadConfig({ ...UPSTREAM, GATEWAY_MAX_BODY: '100mb' }).gateway.bodyMemoryBytes).toBe(1600 * 2 ** 20);
    expect(loadConfig({ ...UPSTREAM, GATEWAY_MAX_BODY: '1mb', GATEWAY_BODY_MEMORY: '1mb' }).gateway.bodyMemoryBytes).toBe(2 ** 20);
    expect(problemsOf({ ...UPSTREAM, GATEWAY_MAX_BODY: '1mb', GATEWAY_BODY_MEMORY: '512kb' })).toEqual([
      'GATEWAY_BODY_MEMORY: must be at least GATEWAY_MAX_BODY (1048576 bytes): a body the limit allows would always be refused',
    ]);
    expect(problemsOf({ ...UPSTREAM, GATEWAY_BODY_MEMORY: 'lots' })).toEqual(['GATEWAY_BODY_MEMORY: must be a size such as 512kb or 4mb (got "lots")']);
  });

  it('REQUEST_TIMEOUT defaults to 60 s; Node gets it with a headers timeout no longer than it and a check at a quarter of it, 250 ms to 5 s', () => {
    expect(loadConfig({ ...UPSTREAM }).requestTimeoutMs).toBe(60_000);
    expect(loadConfig({ ...UPSTREAM, REQUEST_TIMEOUT: '2m' }).requestTimeoutMs).toBe(120_000);
    expect(problemsOf({ ...UPSTREAM, REQUEST_TIMEOUT: 'soon' })).toEqual(['REQUEST_TIMEOUT: must be a duration such as 30s, 10m, 12h or 90d (got "soon")']);
    expect(problemsOf({ ...UPSTREAM, REQUEST_TIMEOUT: '0' })).toHaveLength(1);
    expect(loadConfig({ ...UPSTREAM, REQUEST_TIMEOUT: '1d' }).requestTimeoutMs).toBe(86_400_000);
    expect(problemsOf({ ...UPSTREAM, REQUEST_TIMEOUT: '2d' })).toEqual(['REQUEST_TIMEOUT: must be at most 1d (got "2d")']);
    expect(requestDeadlines(60_000)).toEqual({ requestTimeout: 60_000, headersTimeout: 60_000, connectionsCheckingInterval: 5_000 });
    expect(requestDeadlines(120_000)).toEqual({ requestTimeout: 120_000, headersTimeout: 60_000, connectionsCheckingInterval: 5_000 });
    expect(requestDeadlines(10_000)).toEqual({ requestTimeout: 10_000, headersTimeout: 10_000, connectionsCheckingInterval: 2_500 });
    expect(requestDeadlines(1_000)).toEqual({ requestTimeout: 1_000, headersTimeout: 1_000, connectionsCheckingInterval: 250 });
  });

  // Review 2026-12-07: the schema's own looser syntax let `*.10.0.0.1` through, and every CIMD check then threw (a 500 for every https client_id).
  it('CIMD_ALLOWED_HOSTS / CIMD_DENIED_HOSTS take exactly the patterns the trust policy parses: a wildcard over an IP address is refused at start', () => {
    expect(loadConfig({ ...UPSTREAM, CIMD_DENIED_HOSTS: 'evil.example, *.example.org, mcp.example:8443, 10.0.0.1, [::1]' }).cimd.deniedHosts).toEqual(['evil.example', '*.example.org', 'mcp.example:8443', '10.0.0.1', '[::1]']);
    for (const bad of ['*.10.0.0.1', '*.[::1]', '*.1.2.3.4', 'a@b.example', 'x.example/path', 'x.example:0', '*']) {
      const problems = problemsOf({ ...UPSTREAM, CIMD_DENIED_HOSTS: `ok.example, ${bad}` });
      expect(problems, bad).toHaveLength(1);
      expect(problems[0], bad).toMatch(/^CIMD_DENIED_HOSTS: has entries that are not host, host:port or \*\.domain/);
      expect(problemsOf({ ...UPSTREAM, CIMD_ALLOWED_HOSTS: bad }), bad).toHaveLength(1);
    }
  });

  it('UPSTREAM_TIMEOUT defaults to 10 s and is at most 1d, as REQUEST_TIMEOUT: beyond 2^31−1 ms Node\'s timer fires at once and AbortSignal.timeout aborted every call to U', () => {
    expect(loadConfig({ ...UPSTREAM }).upstreamTimeoutMs).toBe(10_000);
    expect(loadConfig({ ...UPSTREAM, UPSTREAM_TIMEOUT: '1d' }).upstreamTimeoutMs).toBe(86_400_000);
    expect(problemsOf({ ...UPSTREAM, UPSTREAM_TIMEOUT: '2d' })).toEqual(['UPSTREAM_TIMEOUT: must be at most 1d (got "2d")']);
    expect(problemsOf({ ...UPSTREAM, UPSTREAM_TIMEOUT: '25d' })).toEqual(['UPSTREAM_TIMEOUT: must be at most 1d (got "25d")']);
    expect(problemsOf({ ...UPSTREAM, UPSTREAM_TIMEOUT: '9999999999' })).toEqual(['UPSTREAM_TIMEOUT: must be at most 1d (got "9999999999")']);
  });

  it('DATABASE_URL selects PostgreSQL (postgres://, postgresql://, ?host=/socket/dir), is checked without being echoed, and needs SECRET_KEY; DATABASE_POOL_MAX defaults to 10', () => {
    const secret = { SECRET_KEY: Buffer.alloc(32, 3).toString('base64') };
    expect(loadConfig({ ...UPSTREAM }).databaseUrl).toBeUndefined();
    expect(loadConfig({ ...UPSTREAM }).databasePoolMax).toBe(10);
    for (const url of ['postgres://proxy:pw@db.internal:5432/proxy', 'postgresql://proxy@db/proxy', 'postgres:///proxy?host=/var/run/postgresql', 'postgres://proxy:pw@/proxy?host=/var/run/postgresql&port=5433', 'postgresql://proxy@/proxy?host=%2Fvar%2Frun%2Fpostgresql']) {
      expect(loadConfig({ ...UPSTREAM, ...secret, DATABASE_URL: url }).databaseUrl).toBe(url);
    }
    expect(loadConfig({ ...UPSTREAM, ...secret, DATABASE_URL: 'postgres://proxy@db/proxy', DATABASE_POOL_MAX: '25' }).databasePoolMax).toBe(25);
    // Decimal digits only: Number() alone took these (the review of 2026-12-06); PORT likewise.
    for (const odd of ['1e2', '0x10', '0b11', '2.0', '+5', ' ']) {
      expect(problemsOf({ ...UPSTREAM, ...secret, DATABASE_URL: 'postgres://proxy@db/proxy', DATABASE_POOL_MAX: odd }), odd).toEqual([`DATABASE_POOL_MAX: must be a whole number from 1 to 1000 (got "${odd}")`]);
      expect(problemsOf({ ...UPSTREAM, PORT: odd }), odd).toEqual([`PORT: must be a port number between 0 and 65535 (got "${odd}")`]);
    }
    const problems = problemsOf({ ...UPSTREAM, ...secret, DATABASE_URL: 'mysql://proxy:db-password-1@db/proxy', DATABASE_POOL_MAX: '0' });
    expect(problems).toEqual(['DATABASE_URL: must start with postgres:// or postgresql://', 'DATABASE_POOL_MAX: must be a whole number from 1 to 1000 (got "0")']);
    expect(problemsOf({ ...UPSTREAM, ...secret, DATABASE_URL: 'postgres:///proxy' })).toEqual(['DATABASE_URL: must name a host, or a unix socket directory with ?host=/socket/dir']);
    // An @ in the password is pg's to split at the last one; a user with no path after it is no URL pg can use (found by review).
    expect(loadConfig({ ...UPSTREAM, ...secret, DATABASE_URL: 'postgres://proxy:p@ss@/proxy?host=/run/pg' }).databaseUrl).toBe('postgres://proxy:p@ss@/proxy?host=/run/pg');
    expect(problemsOf({ ...UPSTREAM, ...secret, DATABASE_URL: 'postgres://proxy:db-password-5@?host=/run/pg' })).toEqual(['DATABASE_URL: must be a URL such as postgres://user:password@host:5432/database']);
    // A user and password but neither a host nor ?host=: the same problem, the password not quoted.
    const hostless = problemsOf({ ...UPSTREAM, ...secret, DATABASE_URL: 'postgres://proxy:db-password-4@/proxy' });
    expect(hostless).toEqual(['DATABASE_URL: must name a host, or a unix socket directory with ?host=/socket/dir']);
    expect(hostless.join('\n')).not.toContain('db-password-4');
    expect(problemsOf({ ...UPSTREAM, ...secret, DATABASE_URL: 'postgres://proxy:db-password-2@[bad/x' }).join('\n')).not.toContain('db-password-2');
    expect(problems.join('\n')).not.toContain('db-password-1');
    // Replicas must share one SECRET_KEY: none generated per data directory with DATABASE_URL (DESIGN §8).
    const unshared = problemsOf({ ...UPSTREAM, DATABASE_URL: 'postgres://proxy:db-password-3@db/proxy' });
    expect(unshared).toEqual(['SECRET_KEY: required with DATABASE_URL — every process on the database must use the same one (a generated secret.key would differ per replica)']);
    expect(unshared.join('\n')).not.toContain('db-password-3');
  });

  it('reads a JSON or YAML file with the same keys; the environment wins', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cfg-'));
    writeFileSync(join(dir, 'c.yaml'), 'UPSTREAM_ISSUER: https://idp.example.com\nUPSTREAM_CLIENT_ID: from-file\nMCP_UPSTREAM_URL: https://m.example.com/mcp\nMCP_SCOPES: [mcp:tools, mcp:read]\nPORT: 9000\n');
    const config = loadConfig({ CONFIG_FILE: join(dir, 'c.yaml'), PORT: '9100' });
    expect(config.upstream?.clientId).toBe('from-file');
    expect(config.mcpScopes).toEqual(['mcp:tools', 'mcp:read']);
    expect(config.port).toBe(9100);
    writeFileSync(join(dir, 'c.json'), JSON.stringify({ PORTT: 1, ...UPSTREAM }));
    expect(problemsOf({ CONFIG_FILE: join(dir, 'c.json') })).toEqual([`CONFIG_FILE: unknown setting PORTT in ${join(dir, 'c.json')}`]);
    writeFileSync(join(dir, 'bad.json'), '{ nope');
    expect(problemsOf({ CONFIG_FILE: join(dir, 'bad.json'), ...UPSTREAM })[0]).toMatch(/^CONFIG_FILE: .*bad.json is not valid JSON/);
    expect(problemsOf({ CONFIG_FILE: join(dir, 'missing.json'), ...UPSTREAM })[0]).toMatch(/^CONFIG_FILE: cannot read .*missing.json \(ENOENT\)/);
  });

  it('a CONFIG_FILE that does not parse is reported by position and a generic reason, never by its text (it holds secrets)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cfg-'));
    const secret = 'gho_S3cr3tV4lue';
    const cases: [string, string, string][] = [
      // V8's message quoted ~10 characters around the error: `Unexpected token 'g', ..."_SECRET": gho_S3cr3t"...`
      ['unquoted.json', `{\n  "UPSTREAM_ISSUER": "https://idp.example.com",\n  "UPSTREAM_CLIENT_SECRET": ${secret}\n}\n`, 'is not valid JSON: unexpected character at line 3, column 29'],
      ['truncated.json', `{ "UPSTREAM_CLIENT_SECRET": "${secret}`, 'is not valid JSON: unexpected end of file at line 1, column 45'],
      ['control.json', `{ "UPSTREAM_CLIENT_SECRET": "${secret}\n" }`, 'is not valid JSON: unexpected character at line 1, column 45'],
      ['escape.json', `{ "UPSTREAM_CLIENT_SECRET": "${secret}\\q" }`, 'is not valid JSON: unexpected character at line 1, column 46'],
      ['comma.json', `{ "UPSTREAM_CLIENT_SECRET": "${secret}", }`, 'is not valid JSON: unexpected character at line 1, column 48'],
      ['escape.yaml', `UPSTREAM_CLIENT_SECRET: "${secret}\\q"\n`, 'is not valid YAML: BAD_DQ_ESCAPE at line 1, column 41'],
      ['alias.yaml', `UPSTREAM_CLIENT_SECRET: *${secret}\n`, 'is not valid YAML: syntax error'],
      ['keys.yaml', `UPSTREAM_ISSUER: https://idp.example.com\nUPSTREAM_CLIENT_SECRET ${secret}\nPORT: 1\n`, 'is not valid YAML: MULTILINE_IMPLICIT_KEY at line 2, column 1'],
    ];
    for (const [name, content, problem] of cases) {
      writeFileSync(join(dir, name), content);
      const problems = problemsOf({ CONFIG_FILE: join(dir, name), ...UPSTREAM });
      expect(problems, name).toEqual([`CONFIG_FILE: ${join(dir, name)} ${problem}`]);
      for (let k = 0; k + 3 <= secret.length; k++) expect(problems.join('\n').replaceAll(dir, ''), name).not.toContain(secret.slice(k, k + 3));
    }
  });

  it('documents every key with a default in the reference table', () => {
    const table = renderConfigReference();
    for (const name of Object.keys(SCHEMA)) expect(table).toContain(`| \`${name}\` |`);
    for (const line of table.split('\n').slice(2)) expect(line.split(' | ').length).toBeGreaterThanOrEqual(3);
  });
});

describe('the reference table shows the defaults the code applies', () => {
  it("every key's shown default is its fallback (an empty fallback: none, shown as —)", () => {
    for (const [name, def] of Object.entries(SCHEMA) as [string, { defaultText: string; fallback?: string }][]) {
      if (def.fallback === undefined) continue; // computed or unset: checked by the tests of each key
      if (def.fallback === '') expect(def.defaultText, name).toMatch(/^— /);
      else expect(def.defaultText, name).toBe(`\`${def.fallback}\``);
    }
  });
});
