/**
 * The configuration schema: the single source of every setting, its default and its meaning.
 * README's configuration reference is generated from this table (`renderConfigReference`), and a
 * test fails when the two disagree. Nothing outside src/config reads process.env.
 */
import { isIP } from 'node:net';
import { NEVER_REDIRECT_SCHEMES } from './urls.js';
import { parseByteSize, parseDurationSeconds, parseRateBudget, type RateBudget } from './duration.js';
import { parseHostPattern } from './host-patterns.js';

export type Preset = 'oidc' | 'github' | 'google';

/** Outcome of parsing one raw value: the value, or a sentence saying what is wrong. */
type Parsed<T> = { ok: true; value: T } | { ok: false; problem: string };
const ok = <T>(value: T): Parsed<T> => ({ ok: true, value });
const bad = (problem: string): Parsed<never> => ({ ok: false, problem });

interface KeyDef<T> {
  /** one or two sentences for the reference table */
  doc: string;
  /** the default as shown in the reference */
  defaultText: string;
  /** the value used when the key is absent (undefined = stays unset) */
  fallback?: string;
  /** never echo the value in messages or logs */
  secret?: boolean;
  /** grouping in the reference */
  group: string;
  parse(raw: string): Parsed<T>;
}

function key<T>(def: KeyDef<T>): KeyDef<T> {
  return def;
}

const text = (raw: string): Parsed<string> => (raw.trim() ? ok(raw.trim()) : bad('must not be empty'));

function url(raw: string): Parsed<URL> {
  let parsed: URL;
  try {
    parsed = new URL(raw.trim());
  } catch {
    return bad('must be an absolute URL such as https://mcp.example.com');
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') return bad('must use https (or http on a loopback host)');
  if (parsed.username || parsed.password) return bad('must not contain a user name or password');
  if (parsed.search || parsed.hash) return bad('must not contain a query or fragment');
  return ok(parsed);
}

/**
 * PUBLIC_URL: a URL whose base path is safe as an express route pattern (src/runtime/app.ts
 * mounts everything under it, and the RFC 8414 aliases after /.well-known/…): non-empty segments
 * of unreserved characters (RFC 3986 §2.3) only. path-to-regexp reads `:` as a parameter, `*` as
 * a wildcard, `( ) { } ?` and others as syntax (`(` fails the start), so P would answer under any
 * first path segment or not start. Percent-escapes (and so non-ASCII, which URL percent-encodes)
 * are refused too: the route would match the raw escape, while the issuer must match byte for
 * byte (DESIGN §1).
 */
function publicUrl(raw: string): Parsed<URL> {
  const parsed = url(raw);
  if (!parsed.ok) return parsed;
  const basePath = parsed.value.pathname.replace(/\/+$/, '');
  if (basePath.includes('//')) return bad('must not contain an empty path segment ("//")');
  const odd = /[^A-Za-z0-9._~/-]/.exec(basePath)?.[0];
  return odd ? bad(`must not contain "${odd}" in its path: only letters, digits, - . _ ~ and / between segments (the base path becomes a route pattern)`) : parsed;
}

function byteSize(raw: string): Parsed<number> {
  const bytes = parseByteSize(raw);
  return bytes ? ok(bytes) : bad('must be a size such as 512kb or 4mb');
}

function duration(raw: string): Parsed<number> {
  const seconds = parseDurationSeconds(raw);
  return seconds ? ok(seconds) : bad('must be a duration such as 30s, 10m, 12h or 90d');
}

/**
 * A duration that becomes a timer (setTimeout, AbortSignal.timeout, Node's server deadlines) is
 * capped at 1d: Node's timers take at most 2^31−1 ms (about 24.8 days) and fire after 1 ms
 * beyond it (TimeoutOverflowWarning), so a larger value would abort every call at once.
 */
function timerDuration(raw: string): Parsed<number> {
  const parsed = duration(raw);
  return parsed.ok && parsed.value > 86_400 ? bad('must be at most 1d') : parsed;
}

function rate(raw: string): Parsed<RateBudget> {
  const budget = parseRateBudget(raw);
  return budget ? ok(budget) : bad('must be a budget such as 30/1m (30 requests per minute)');
}

function bool(raw: string): Parsed<boolean> {
  const v = raw.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(v)) return ok(true);
  if (['0', 'false', 'no', 'off', ''].includes(v)) return ok(false);
  return bad('must be true or false');
}

function list(raw: string): string[] {
  return raw
    .split(/[\s,]+/)
    .map((s) => s.trim())
    .filter(Boolean);
}

const SCOPE_TOKEN = /^[\x21\x23-\x5B\x5D-\x7E]+$/; // RFC 6749 §3.3 scope-token
/** MCP tool names (MCP 2026-07-28 server/tools "Tool Names": 1–128 of A-Z a-z 0-9 _ - .) */
const TOOL_NAME = /^[A-Za-z0-9_.-]{1,128}$/;

function secretKey(raw: string): Parsed<Buffer> {
  const trimmed = raw.trim();
  if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(trimmed)) return bad('must be base64 (generate one with: openssl rand -base64 32)');
  const bytes = Buffer.from(trimmed, 'base64');
  if (bytes.length < 32) return bad(`must decode to at least 32 bytes (it decodes to ${bytes.length})`);
  return ok(bytes);
}

/**
 * CIMD_ALLOWED_HOSTS / CIMD_DENIED_HOSTS (`host`, `host:port`, `*.domain`): each entry must be one
 * that parseHostPattern (src/config/host-patterns.ts) — the one rule, which canonicalises and
 * matches them at every check — takes. The schema had a looser syntax of its own: `*.10.0.0.1` or `*.[::1]` (a
 * wildcard over an IP) passed here, then made every CIMD check throw, a 500 for every https
 * client_id (review 2026-12-07).
 */
function hostPatterns(raw: string): Parsed<string[]> {
  const entries = list(raw);
  const invalid = entries.filter((entry) => {
    try {
      parseHostPattern(entry);
      return false;
    } catch {
      return true;
    }
  });
  return invalid.length ? bad(`has entries that are not host, host:port or *.domain (a wildcard never covers an IP address): ${invalid.join(', ')}`) : ok(entries);
}

/** A whole number written in decimal digits, else undefined (Number() would also take `1e2`, `0x10`, `0b11` or `2.0`). */
function decimal(raw: string): number | undefined {
  const trimmed = raw.trim();
  return /^\d{1,9}$/.test(trimmed) ? Number(trimmed) : undefined;
}

/**
 * DATABASE_URL (DESIGN §4): postgres:// or postgresql://, a host or `?host=/socket/dir`. The value
 * is a secret (it may carry a password): problems never quote it.
 * A user and no host (`postgres://user:password@/db?host=/socket/dir`, libpq's and pg's form for a
 * unix socket with credentials) is not a WHATWG URL; it is checked as if `localhost` stood after
 * the `@` and then, having no host of its own, needs `?host=`.
 */
function databaseUrl(raw: string): Parsed<string> {
  const trimmed = raw.trim();
  if (!/^postgres(?:ql)?:\/\//i.test(trimmed)) return bad('must start with postgres:// or postgresql://');
  const userWithoutHost = /^(postgres(?:ql)?:\/\/[^/?#]*@)(?=\/)/i.exec(trimmed);
  let parsed: URL;
  try {
    parsed = new URL(userWithoutHost ? `${userWithoutHost[1]}localhost${trimmed.slice(userWithoutHost[0].length)}` : trimmed);
  } catch {
    return bad('must be a URL such as postgres://user:password@host:5432/database');
  }
  if ((userWithoutHost || !parsed.hostname) && !parsed.searchParams.get('host')) return bad('must name a host, or a unix socket directory with ?host=/socket/dir');
  return ok(trimmed);
}

/** Private-use URI schemes that must never be accepted as redirect targets (REG-05). */
/** Not private-use schemes: http(s) have their own rules, the rest are never redirect targets. */
export const FORBIDDEN_SCHEMES: ReadonlySet<string> = new Set(['http', 'https', ...NEVER_REDIRECT_SCHEMES]);

export const SCHEMA = {
  PUBLIC_URL: key({
    group: 'Server',
    doc: 'The URL clients use to reach this proxy: an origin, optionally with a base path. Issuer, MCP resource (`PUBLIC_URL/mcp`), metadata and callback URLs all derive from it. Plain http only for loopback hosts. The base path may hold only letters, digits, `-` `.` `_` `~` and `/` between segments (no percent-escapes): it is mounted as an express route.',
    defaultText: '`http://localhost:$PORT`',
    parse: publicUrl,
  }),
  PORT: key({
    group: 'Server',
    doc: 'TCP port to listen on.',
    defaultText: '`8080`',
    fallback: '8080',
    parse: (raw) => {
      const n = decimal(raw);
      return n !== undefined && n <= 65535 ? ok(n) : bad('must be a port number between 0 and 65535');
    },
  }),
  HOST: key({
    group: 'Server',
    doc: 'Address to listen on. Use `0.0.0.0` only behind a reverse proxy or in a container.',
    defaultText: '`127.0.0.1`',
    fallback: '127.0.0.1',
    parse: text,
  }),
  REQUEST_TIMEOUT: key({
    group: 'Server',
    doc: 'How long a client may take to send a whole request, headers and body; a request still arriving after it gets 408 and its connection is closed (checked every few seconds: at most a quarter of it later). Bounds how long a stalled body holds its part of `GATEWAY_BODY_MEMORY`; a client must send a `GATEWAY_MAX_BODY` body within it (4 MB in 60 s: about 70 KB/s). Only the request is timed: a long answer, such as an MCP event stream, is not cut by it. At most `1d`.',
    defaultText: '`60s`',
    fallback: '60s',
    parse: timerDuration,
  }),
  TRUST_PROXY: key({
    group: 'Server',
    doc: "Express `trust proxy`: `false`, `true`, a hop count, or addresses/subnets of your reverse proxies. Decides the client IP used for rate limits and the audit log. Set it when running behind a proxy, or every client shares the proxy's budget.",
    defaultText: '`false`',
    fallback: 'false',
    parse: (raw): Parsed<boolean | number | string[]> => {
      const v = raw.trim().toLowerCase();
      if (v === 'false' || v === '') return ok(false);
      if (v === 'true') return ok(true);
      if (/^\d+$/.test(v)) return ok(Number(v));
      const entries = list(raw);
      const invalid = entries.filter((e) => !isIP(e.split('/')[0] ?? '') && !['loopback', 'linklocal', 'uniquelocal'].includes(e));
      return invalid.length ? bad(`has entries that are neither addresses nor subnets: ${invalid.join(', ')}`) : ok(entries);
    },
  }),
  DATABASE_PATH: key({
    group: 'Storage',
    doc: 'SQLite database file. Its directory is the data directory (it also holds a generated `secret.key`).',
    defaultText: '`./data/mcp-consent-proxy.db`',
    fallback: './data/mcp-consent-proxy.db',
    parse: text,
  }),
  DATABASE_SYNCHRONOUS: key({
    group: 'Storage',
    doc: "SQLite `synchronous` mode. `NORMAL` (WAL): commits survive a process crash; a power loss may lose the last transactions. `FULL`: every commit is fsynced (~10x slower writes). An error with `DATABASE_URL` (PostgreSQL's durability is its server's `synchronous_commit`).",
    defaultText: '`NORMAL`',
    fallback: 'NORMAL',
    parse: (raw): Parsed<'NORMAL' | 'FULL'> => {
      const v = raw.trim().toUpperCase();
      return v === 'NORMAL' || v === 'FULL' ? ok(v) : bad('must be NORMAL or FULL');
    },
  }),
  DATABASE_URL: key({
    group: 'Storage',
    doc: 'PostgreSQL instead of SQLite, for several processes (replicas) on one database (README "Storage"): `postgres://user:password@host:5432/db` or `postgresql://…`; `?host=/socket/dir` connects through a unix socket directory (with credentials: `postgres://user:password@/db?host=/socket/dir`); TLS with `?sslmode=verify-full&sslrootcert=/path/to/ca.pem` (README "TLS to PostgreSQL"). Requires `SECRET_KEY` (the same on every process). Unset ⇒ SQLite at `DATABASE_PATH`. `DATABASE_PATH`\'s directory stays the data directory either way. The value is never shown or logged (it may carry a password).',
    defaultText: '— (SQLite)',
    secret: true,
    parse: databaseUrl,
  }),
  DATABASE_POOL_MAX: key({
    group: 'Storage',
    doc: "With `DATABASE_URL`: the most PostgreSQL connections this process holds. Size it so that replicas × (this + 4) stays below the server's `max_connections` (each process also opens up to 4 connections for the locks of upstream token refreshes and housekeeping, only while those run), with room for `migrate` and the CLI. An error without `DATABASE_URL`.",
    defaultText: '`10`',
    fallback: '10',
    parse: (raw) => {
      const n = decimal(raw);
      return n !== undefined && n >= 1 && n <= 1000 ? ok(n) : bad('must be a whole number from 1 to 1000');
    },
  }),
  SECRET_KEY: key({
    group: 'Secrets',
    doc: "Master secret, base64, at least 32 bytes. Cookie signing, the AES-256-GCM sealing keys (upstream tokens, signing keys) and the audit chain's HMAC key are derived from it. Keep it out of the database backups.",
    defaultText: 'generated once into `<data dir>/secret.key`, with a warning',
    secret: true,
    parse: secretKey,
  }),
  SECRET_KEY_PREVIOUS: key({
    group: 'Secrets',
    doc: 'The previous master secret during a rotation: still accepted to open sealed values, verify cookies and verify audit rows made before the rotation; everything new uses `SECRET_KEY`.',
    defaultText: '—',
    secret: true,
    parse: secretKey,
  }),
  UPSTREAM_PRESET: key({
    group: 'Upstream (U)',
    doc: '`oidc` (any OpenID Connect provider, by discovery), `github` (OAuth 2 endpoints of github.com) or `google`.',
    defaultText: '`oidc`',
    fallback: 'oidc',
    parse: (raw): Parsed<Preset> => {
      const v = raw.trim().toLowerCase();
      return v === 'oidc' || v === 'github' || v === 'google' ? ok(v) : bad('must be oidc, github or google');
    },
  }),
  UPSTREAM_ISSUER: key({
    group: 'Upstream (U)',
    doc: 'Issuer URL of the upstream provider (preset `oidc`; discovery at `<issuer>/.well-known/openid-configuration`). Unset with preset `oidc` ⇒ demo mode, but only when no production setting is present (see `DEMO`).',
    defaultText: '— (demo mode when safe)',
    parse: url,
  }),
  DEMO: key({
    group: 'Upstream (U)',
    doc: 'Demo mode: an embedded identity provider where any user name signs in (`admin` opens `/admin`) and, unless `MCP_UPSTREAM_URL` is set, a demo MCP server. Without this key it starts only when no upstream is configured and nothing says production: `PUBLIC_URL` and `HOST` loopback, `NODE_ENV` not `production`, and none of `MCP_UPSTREAM_URL`, `UPSTREAM_CLIENT_ID`, `UPSTREAM_CLIENT_SECRET`, `GATEWAY_ROUTES`, `ADMIN_SUBJECTS`, `DATABASE_URL` set; otherwise `serve` exits 1. `true` forces it (with no upstream configured); `false` forbids it. `ADMIN_SUBJECTS` is ignored in demo mode.',
    defaultText: '— (demo mode only when safe)',
    parse: bool,
  }),
  UPSTREAM_CLIENT_ID: key({
    group: 'Upstream (U)',
    doc: "This proxy's one static client id at the upstream.",
    defaultText: '—',
    parse: text,
  }),
  UPSTREAM_CLIENT_SECRET: key({
    group: 'Upstream (U)',
    doc: 'The client secret that goes with `UPSTREAM_CLIENT_ID` (sent with `client_secret_basic`; never shown or logged).',
    defaultText: '—',
    secret: true,
    parse: text,
  }),
  UPSTREAM_SCOPES: key({
    group: 'Upstream (U)',
    doc: 'Scopes requested from the upstream, space-separated. Shown verbatim on the consent page.',
    defaultText: "preset's: oidc `openid`, github `read:user`, google `openid email`",
    parse: (raw) => {
      const scopes = list(raw);
      if (!scopes.length) return bad('must name at least one scope');
      const invalid = scopes.filter((s) => !SCOPE_TOKEN.test(s));
      return invalid.length ? bad(`has invalid scope tokens: ${invalid.join(' ')}`) : ok(scopes);
    },
  }),
  UPSTREAM_NAME: key({
    group: 'Upstream (U)',
    doc: 'Name of the upstream shown to users on the consent page.',
    defaultText: "preset's (`GitHub`, `Google`) or the issuer's host",
    parse: text,
  }),
  UPSTREAM_TIMEOUT: key({
    group: 'Upstream (U)',
    doc: 'How long one call to the upstream (discovery, the code exchange, the user API, a refresh, a revocation) may take before it is abandoned: the sign-in then ends on P\'s "could not be completed" page (502) and the gateway answers 504 when a refresh is due. At most `1d`.',
    defaultText: '`10s`',
    fallback: '10s',
    parse: timerDuration,
  }),
  MCP_UPSTREAM_URL: key({
    group: 'Gateway',
    doc: 'The MCP server (Streamable HTTP endpoint) that `/mcp` forwards to, with the upstream token. Plain http only for loopback hosts.',
    defaultText: '— (demo mode: the built-in demo MCP server)',
    parse: url,
  }),
  MCP_SCOPES: key({
    group: 'Authorization server (P)',
    doc: 'Scopes this proxy offers for the MCP resource, space-separated. The first is required by `/mcp`; a request without `scope` gets all of them but those only `MCP_TOOL_SCOPES` asks for (the minimal set, also what the resource metadata and the 401 challenge name).',
    defaultText: '`mcp:tools`',
    fallback: 'mcp:tools',
    parse: (raw) => {
      const scopes = list(raw);
      if (!scopes.length) return bad('must name at least one scope');
      const invalid = scopes.filter((s) => !SCOPE_TOKEN.test(s));
      if (invalid.length) return bad(`has invalid scope tokens: ${invalid.join(' ')}`);
      const reserved = scopes.filter((s) => s === 'openid' || s === 'offline_access');
      if (reserved.length) return bad(`must not contain ${reserved.join(', ')} (always offered by the authorization server)`);
      return ok([...new Set(scopes)]);
    },
  }),
  MCP_TOOL_SCOPES: key({
    group: 'Authorization server (P)',
    doc: 'Per-tool scopes: `tool=scope` pairs, comma-separated (e.g. `delete_repo=mcp:admin`; a tool listed twice needs both). A `tools/call` for a listed tool with a token lacking its scope gets 403 `insufficient_scope` naming every scope the call needs, and the client steps up (README "Per-tool scopes"). Each scope must be one of `MCP_SCOPES`.',
    defaultText: '— (none)',
    fallback: '',
    parse: (raw): Parsed<{ tool: string; scope: string }[]> => {
      const pairs: { tool: string; scope: string }[] = [];
      for (const entry of list(raw)) {
        const eq = entry.indexOf('=');
        const tool = entry.slice(0, eq);
        const scope = entry.slice(eq + 1);
        if (eq <= 0 || !TOOL_NAME.test(tool) || !SCOPE_TOKEN.test(scope)) return bad(`has an invalid entry "${entry}" (use tool=scope, tool names of letters, digits, _ - .)`);
        pairs.push({ tool, scope });
      }
      return ok(pairs);
    },
  }),
  CONSENT_TTL: key({
    group: 'Authorization server (P)',
    doc: 'How long an approval is remembered for the same user, browser (the one that approved), client, redirect URI and resource; also the longest a client with refresh tokens stays connected without asking.',
    defaultText: '`90d`',
    fallback: '90d',
    parse: duration,
  }),
  SESSION_TTL: key({
    group: 'Authorization server (P)',
    doc: "Lifetime of this proxy's own browser session (the `__Host-` session cookie).",
    defaultText: '`14d`',
    fallback: '14d',
    parse: duration,
  }),
  ACCESS_TOKEN_TTL: key({
    group: 'Authorization server (P)',
    doc: 'Lifetime of access tokens issued to MCP clients (TOK-11: short-lived).',
    defaultText: '`1h`',
    fallback: '1h',
    parse: duration,
  }),
  REFRESH_TOKEN_TTL: key({
    group: 'Authorization server (P)',
    doc: 'Lifetime of refresh tokens (rotated on every use; a reused one revokes the grant).',
    defaultText: '`30d`',
    fallback: '30d',
    parse: duration,
  }),
  CLIENT_IDLE_TTL: key({
    group: 'Authorization server (P)',
    doc: 'Dynamically registered clients not used for this long are deleted (REG-11).',
    defaultText: '`30d`',
    fallback: '30d',
    parse: duration,
  }),
  REDIRECT_SCHEMES: key({
    group: 'Authorization server (P)',
    doc: 'Private-use URI schemes accepted in registered redirect URIs (e.g. `cursor vscode`); such clients are registered as native apps. https and loopback http are always accepted.',
    defaultText: '— (none)',
    fallback: '',
    parse: (raw): Parsed<string[]> => {
      const schemes = list(raw).map((s) => s.toLowerCase().replace(/:$/, ''));
      const invalid = schemes.filter((s) => !/^[a-z][a-z0-9+.-]*$/.test(s) || FORBIDDEN_SCHEMES.has(s));
      return invalid.length ? bad(`has schemes that cannot be allowed: ${invalid.join(', ')}`) : ok(schemes);
    },
  }),
  CIMD_ENABLED: key({
    group: 'Client registration',
    doc: 'Accept Client ID Metadata Documents: an https `client_id` is fetched (SSRF-guarded: public addresses only, no redirects, at most 5 KiB and 5 s), validated and cached; the authorization-server metadata then says `client_id_metadata_document_supported: true`. Off: such a client_id is simply unknown, as is every CIMD client stored while it was on.',
    defaultText: '`true`',
    fallback: 'true',
    parse: bool,
  }),
  DCR_ENABLED: key({
    group: 'Client registration',
    doc: 'Offer Dynamic Client Registration (RFC 7591, deprecated by MCP 2026-07-28 in favour of CIMD) at `/register`, advertised as `registration_endpoint`. Off: no `registration_endpoint` and `/register` answers 404.',
    defaultText: '`true`',
    fallback: 'true',
    parse: bool,
  }),
  CIMD_ALLOWED_HOSTS: key({
    group: 'Client registration',
    doc: 'Hosts whose CIMD client_ids are accepted: `host`, `host:port` or `*.domain` (a wildcard covers names, never an IP address), comma- or space-separated. Empty: any host whose addresses are public. A `host:port` listed here may serve its document over plain http from a loopback address only when `DANGEROUSLY_ALLOW_INSECURE_HTTP=true` too (local tests).',
    defaultText: '— (any public host)',
    fallback: '',
    parse: hostPatterns,
  }),
  CIMD_DENIED_HOSTS: key({
    group: 'Client registration',
    doc: 'Hosts whose CIMD client_ids are refused (same forms as `CIMD_ALLOWED_HOSTS`); a denial always wins.',
    defaultText: '— (none)',
    fallback: '',
    parse: hostPatterns,
  }),
  RATE_LIMIT_REGISTER: key({
    group: 'Rate limits',
    doc: 'Per client IP budget for new clients: `POST /register`, and an authorization naming a CIMD client_id P has not stored yet (checked before its document is fetched).',
    defaultText: '`30/1m`',
    fallback: '30/1m',
    parse: rate,
  }),
  RATE_LIMIT_TOKEN: key({
    group: 'Rate limits',
    doc: 'Per client IP budget for `POST /token` and `POST /revoke`.',
    defaultText: '`300/1m`',
    fallback: '300/1m',
    parse: rate,
  }),
  RATE_LIMIT_AUTHORIZE: key({
    group: 'Rate limits',
    doc: "Per client IP budget for `/authorize`, the consent pages, the upstream callback and the sign-in buttons of `/admin/login` and `/account/login` (a POST with the page's token).",
    defaultText: '`120/1m`',
    fallback: '120/1m',
    parse: rate,
  }),
  RATE_LIMIT_REJECTED: key({
    group: 'Rate limits',
    doc: "Per client IP budget for unauthenticated refusals at `/mcp`, the `GATEWAY_ROUTES`, `/admin` and `/account` (no or invalid token, a foreign `Origin` without a valid token, nobody signed in, a sign-in POST without the page's token); beyond it such a refusal is `429`. A request with a valid token or session never counts and is never refused by it.",
    defaultText: '`60/1m`',
    fallback: '60/1m',
    parse: rate,
  }),
  ADMIN_SUBJECTS: key({
    group: 'Admin',
    doc: 'Upstream subjects (e.g. GitHub numeric user ids) allowed into `/admin`, space- or comma-separated. Never honoured in demo mode, where the demo user `admin` is the admin.',
    defaultText: '— (admin closed); `admin` in demo mode',
    fallback: '',
    parse: (raw) => ok(list(raw)),
  }),
  ADMIN_IDLE_TTL: key({
    group: 'Admin',
    doc: 'An admin session ends after this long without a request.',
    defaultText: '`30m`',
    fallback: '30m',
    parse: duration,
  }),
  ADMIN_SESSION_TTL: key({
    group: 'Admin',
    doc: 'An admin session ends this long after sign-in, however active.',
    defaultText: '`8h`',
    fallback: '8h',
    parse: duration,
  }),
  GATEWAY_ROUTES: key({
    group: 'Gateway',
    doc: 'Extra plain-API routes with the same token swap: `prefix=url` pairs, comma-separated (e.g. `/api/github=https://api.github.com`). Each prefix is its own protected resource (`PUBLIC_URL/<prefix>`, with its own RFC 9728 metadata); requests under it go to the URL with the upstream token.',
    defaultText: '— (none)',
    fallback: '',
    parse: (raw): Parsed<{ prefix: string; target: URL }[]> => {
      const routes: { prefix: string; target: URL }[] = [];
      for (const entry of raw
        .split(',')
        .map((e) => e.trim())
        .filter(Boolean)) {
        const eq = entry.indexOf('=');
        const prefix = entry.slice(0, eq).trim().replace(/\/+$/, '');
        const target = url(entry.slice(eq + 1));
        if (eq <= 0 || !/^\/[a-z0-9][a-z0-9._~/-]*$/i.test(prefix) || prefix.includes('..')) return bad(`has an invalid prefix in "${entry}" (use /path=https://host/base)`);
        if (
          ['/mcp', '/authorize', '/token', '/register', '/revoke', '/jwks', '/interaction', '/upstream', '/admin', '/account', '/assets', '/healthz', '/readyz', '/metrics', '/.well-known'].some(
            (r) => prefix === r || prefix.startsWith(`${r}/`),
          )
        ) {
          return bad(`prefix ${prefix} collides with one of the proxy's own paths`);
        }
        if (!target.ok) return bad(`target of ${prefix} ${target.problem}`);
        routes.push({ prefix, target: target.value });
      }
      return ok(routes);
    },
  }),
  ALLOWED_ORIGINS: key({
    group: 'Gateway',
    doc: 'Browser origins allowed to call `/mcp` and the API routes (the `Origin` header; requests without one, like most MCP clients, are unaffected). Any other origin gets 403 (DNS-rebinding defence, GW-10).',
    defaultText: "PUBLIC_URL's origin",
    parse: (raw): Parsed<string[]> => {
      const origins: string[] = [];
      for (const entry of list(raw)) {
        const parsed = url(entry);
        if (!parsed.ok || parsed.value.pathname !== '/') return bad(`has an entry that is not an origin: ${entry}`);
        origins.push(parsed.value.origin);
      }
      return ok(origins);
    },
  }),
  GATEWAY_TIMEOUT: key({
    group: 'Gateway',
    doc: 'How long the gateway waits for the upstream MCP server to start answering before replying 504.',
    defaultText: '`30s`',
    fallback: '30s',
    parse: duration,
  }),
  GATEWAY_MAX_BODY: key({
    group: 'Gateway',
    doc: 'Largest request body the gateway forwards; larger bodies get 413. Each body is held in memory, whole, while its request is checked (at most this much per request in flight; `GATEWAY_BODY_MEMORY` bounds them all together).',
    defaultText: '`4mb`',
    fallback: '4mb',
    parse: byteSize,
  }),
  GATEWAY_BODY_MEMORY: key({
    group: 'Gateway',
    doc: 'Most bytes of request bodies the gateway holds at once, across all requests in flight (each up to `GATEWAY_MAX_BODY`); one user holds at most a quarter of it (at least one `GATEWAY_MAX_BODY`). A body that would pass either gets 503 with `Retry-After`. At least `GATEWAY_MAX_BODY`.',
    defaultText: '16 × `GATEWAY_MAX_BODY` (`64mb`)',
    parse: byteSize,
  }),
  METRICS_TOKEN: key({
    group: 'Operations',
    doc: 'When set, `/metrics` requires `Authorization: Bearer <METRICS_TOKEN>` (compared in constant time); otherwise it is open (keep it off the public internet at your proxy) and the start logs a warning when `PUBLIC_URL` is not loopback.',
    defaultText: '— (open)',
    secret: true,
    parse: text,
  }),
  LOG_LEVEL: key({
    group: 'Operations',
    doc: 'pino log level: `trace`, `debug`, `info`, `warn`, `error`, `fatal` or `silent`.',
    defaultText: '`info`',
    fallback: 'info',
    parse: (raw) => {
      const v = raw.trim().toLowerCase();
      return ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'].includes(v) ? ok(v) : bad('must be one of trace, debug, info, warn, error, fatal, silent');
    },
  }),
  DANGEROUSLY_ALLOW_INSECURE_HTTP: key({
    group: 'Operations',
    doc: 'Allow plain http for non-loopback `PUBLIC_URL`, `UPSTREAM_ISSUER` and `MCP_UPSTREAM_URL`, and plain-http CIMD documents on loopback for the `host:port` entries of `CIMD_ALLOWED_HOSTS`. Tokens then travel unencrypted; for closed test networks only. Logged as a warning on every start.',
    defaultText: '`false`',
    fallback: 'false',
    parse: bool,
  }),
} as const;

export type ConfigKey = keyof typeof SCHEMA;
export const CONFIG_KEYS = Object.keys(SCHEMA) as ConfigKey[];

/** Markdown table of every key, for README's configuration reference. */
export function renderConfigReference(): string {
  const lines = ['| variable | meaning | default |', '|---|---|---|'];
  for (const name of CONFIG_KEYS) {
    const def = SCHEMA[name] as KeyDef<unknown>;
    lines.push(`| \`${name}\` | ${def.doc.replace(/\|/g, '\\|')} | ${def.defaultText} |`);
  }
  lines.push('| `CONFIG_FILE` | Optional JSON or YAML file with the same keys; environment variables win over it. | — |');
  return lines.join('\n');
}

export type { KeyDef, Parsed };
