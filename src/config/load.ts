/**
 * Loads the configuration from the environment and an optional JSON/YAML file (CONFIG_FILE),
 * validates every key against the schema, reports every problem at once and returns a frozen
 * object. Nothing else in the code base reads process.env (style C5).
 *
 * The settings are parsed one by one against the schema (src/config/schema.ts), then checked
 * across keys by named checks (src/config/checks.ts — plain http, an open /metrics, one SECRET_KEY
 * for replicas, demo mode only when safe (DESIGN §4), the upstream's required settings), then
 * assembled.
 */
import { dirname, resolve } from 'node:path';
import type { RateBudget } from './duration.js';
import { CONFIG_KEYS, SCHEMA, type ConfigKey, type KeyDef, type Preset } from './schema.js';
import { derivePublicUrls, type PublicUrls } from './urls.js';
import { readConfigFile, type Source } from './file.js';
import { checkBodyMemory, checkEngineSettings, checkOpenMetrics, checkPlainHttp, checkSharedSecret, checkToolScopes, checkUpstream, decideDemo, get, type Loading } from './checks.js';

export interface UpstreamConfig {
  preset: Preset;
  /** issuer (oidc, google) or web base URL (github) */
  issuer: URL;
  clientId: string;
  clientSecret: string | undefined;
  scopes: string[];
  name: string;
}

export interface Config {
  urls: PublicUrls;
  port: number;
  host: string;
  trustProxy: boolean | number | string[];
  databasePath: string;
  dataDir: string;
  databaseSynchronous: 'NORMAL' | 'FULL';
  /** PostgreSQL (replicas, DESIGN §8) when set; SQLite at databasePath otherwise. A secret: never log it. */
  databaseUrl: string | undefined;
  /** the most PostgreSQL connections this process holds (DATABASE_POOL_MAX) */
  databasePoolMax: number;
  /** what `pg` reads from the environment besides DATABASE_URL (databaseDriverEnv): all the audit verify worker is given */
  databaseDriverEnv: Record<string, string>;
  secretKey: Buffer | undefined;
  secretKeyPrevious: Buffer | undefined;
  /**
   * demo mode: the embedded demo IdP (and, without MCP_UPSTREAM_URL, the demo MCP server). Only
   * with no upstream configured and no production signal, or DEMO=true (DESIGN §4).
   */
  demo: boolean;
  upstream: UpstreamConfig | undefined;
  mcpUpstreamUrl: URL | undefined;
  /** REQUEST_TIMEOUT: the time a client has to send one whole request, ms (src/http/server-limits.ts) */
  requestTimeoutMs: number;
  /** UPSTREAM_TIMEOUT: one call to U, ms */
  upstreamTimeoutMs: number;
  mcpScopes: string[];
  /** MCP_TOOL_SCOPES: the scopes a `tools/call` of each listed tool needs besides the first of mcpScopes (src/gateway/tool-policy.ts) */
  toolScopes: { tool: string; scope: string }[];
  ttl: { consent: number; session: number; accessToken: number; refreshToken: number; clientIdle: number; adminIdle: number; adminSession: number };
  redirectSchemes: string[];
  /** Client ID Metadata Documents (DESIGN §10): offered when enabled, under the host trust policy */
  cimd: { enabled: boolean; allowedHosts: string[]; deniedHosts: string[] };
  /** Dynamic Client Registration offered (/register, registration_endpoint) */
  dcrEnabled: boolean;
  rateLimits: { register: RateBudget; token: RateBudget; authorize: RateBudget; rejected: RateBudget };
  adminSubjects: string[];
  /** every protected resource: the MCP resource first, then one per GATEWAY_ROUTES prefix */
  resources: string[];
  gateway: {
    timeoutMs: number;
    maxBodyBytes: number;
    /** GATEWAY_BODY_MEMORY: the bytes of bodies held at once (src/gateway/read-body.ts) */
    bodyMemoryBytes: number;
    routes: { prefix: string; target: URL; resource: string }[];
    allowedOrigins: string[];
  };
  logLevel: string;
  metricsToken: string | undefined;
  dangerouslyAllowInsecureHttp: boolean;
  /** non-fatal remarks to log at start (insecure switches, generated defaults) */
  warnings: string[];
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

export interface LoadOptions {
  /**
   * false for commands that only touch the database (migrate, audit): missing upstream settings
   * are then not problems.
   */
  requireUpstream?: boolean;
}

/** Every key parsed against the schema; a value that does not parse is a problem (secrets never echoed). */
function parseValues(env: Source, file: Source, problems: string[]): Map<ConfigKey, unknown> {
  const values = new Map<ConfigKey, unknown>();
  for (const name of CONFIG_KEYS) {
    const def = SCHEMA[name] as KeyDef<unknown>;
    const raw = env[name] ?? file[name] ?? def.fallback;
    if (raw === undefined || (raw === '' && def.fallback === undefined)) continue;
    const parsed = def.parse(raw);
    if (parsed.ok) values.set(name, parsed.value);
    else problems.push(`${name}: ${parsed.problem}${def.secret ? '' : ` (got ${JSON.stringify(raw.length > 80 ? `${raw.slice(0, 80)}…` : raw)})`}`);
  }
  return values;
}

/** The settings, checked, as the frozen Config. */
function assemble(l: Loading, publicUrl: URL, demo: boolean, upstream: UpstreamConfig | undefined, insecureOk: boolean): Config {
  const databasePath = resolve(get<string>(l, 'DATABASE_PATH'));
  const urls = derivePublicUrls(publicUrl);
  const routes = get<{ prefix: string; target: URL }[] | undefined>(l, 'GATEWAY_ROUTES') ?? [];
  const v = <T>(name: ConfigKey) => get<T>(l, name);
  return {
    urls,
    port: v<number | undefined>('PORT') ?? 8080,
    host: v('HOST'),
    trustProxy: v('TRUST_PROXY'),
    databasePath,
    dataDir: dirname(databasePath),
    databaseSynchronous: v('DATABASE_SYNCHRONOUS'),
    databaseUrl: v('DATABASE_URL'),
    databasePoolMax: v('DATABASE_POOL_MAX'),
    databaseDriverEnv: databaseDriverEnv(l.env),
    secretKey: v('SECRET_KEY'),
    secretKeyPrevious: v('SECRET_KEY_PREVIOUS'),
    demo,
    upstream,
    mcpUpstreamUrl: v('MCP_UPSTREAM_URL'),
    requestTimeoutMs: v<number>('REQUEST_TIMEOUT') * 1000,
    upstreamTimeoutMs: v<number>('UPSTREAM_TIMEOUT') * 1000,
    mcpScopes: v('MCP_SCOPES'),
    toolScopes: v('MCP_TOOL_SCOPES'),
    ttl: {
      consent: v('CONSENT_TTL'),
      session: v('SESSION_TTL'),
      accessToken: v('ACCESS_TOKEN_TTL'),
      refreshToken: v('REFRESH_TOKEN_TTL'),
      clientIdle: v('CLIENT_IDLE_TTL'),
      adminIdle: v('ADMIN_IDLE_TTL'),
      adminSession: v('ADMIN_SESSION_TTL'),
    },
    redirectSchemes: v('REDIRECT_SCHEMES'),
    cimd: { enabled: v('CIMD_ENABLED'), allowedHosts: v('CIMD_ALLOWED_HOSTS'), deniedHosts: v('CIMD_DENIED_HOSTS') },
    dcrEnabled: v('DCR_ENABLED'),
    rateLimits: { register: v('RATE_LIMIT_REGISTER'), token: v('RATE_LIMIT_TOKEN'), authorize: v('RATE_LIMIT_AUTHORIZE'), rejected: v('RATE_LIMIT_REJECTED') },
    // DESIGN §4: in demo mode whoever signs in at the demo IdP as "admin" may open /admin, and
    // ADMIN_SUBJECTS is never honoured (anyone can sign in there under any name).
    adminSubjects: demo ? ['admin'] : (v<string[] | undefined>('ADMIN_SUBJECTS') ?? []),
    resources: [urls.mcpResource, ...routes.map((r) => urls.url(r.prefix))],
    gateway: {
      timeoutMs: v<number>('GATEWAY_TIMEOUT') * 1000,
      maxBodyBytes: v('GATEWAY_MAX_BODY'),
      bodyMemoryBytes: v<number | undefined>('GATEWAY_BODY_MEMORY') ?? 16 * v<number>('GATEWAY_MAX_BODY'),
      routes: routes.map((r) => ({ ...r, resource: urls.url(r.prefix) })),
      allowedOrigins: v<string[] | undefined>('ALLOWED_ORIGINS') ?? [urls.origin],
    },
    logLevel: v('LOG_LEVEL'),
    metricsToken: v('METRICS_TOKEN'),
    dangerouslyAllowInsecureHttp: insecureOk,
    warnings: l.warnings,
  };
}

/**
 * What node-postgres (pg 8, pg-connection-string, pgpass) reads from the environment when it
 * connects, besides DATABASE_URL: its PG* variables by name, USER for its default user name and
 * HOME for ~/.pgpass — not every variable named PG… (a PGADMIN_DEFAULT_PASSWORD is not the
 * driver's; review of 2026-12-06). The audit verify worker gets these and nothing else
 * (src/audit/verify-async.ts), so it connects as the server's pool does without seeing SECRET_KEY.
 */
export const DATABASE_DRIVER_ENV = [
  'PGHOST',
  'PGPORT',
  'PGUSER',
  'PGDATABASE',
  'PGPASSWORD',
  'PGPASSFILE',
  'PGPASS_NO_DEESCAPE',
  'PGSSLMODE',
  'PGSSLNEGOTIATION',
  'PGAPPNAME',
  'PGCONNECT_TIMEOUT',
  'PGOPTIONS',
  'PGCLIENT_ENCODING',
  'PGBINARY',
  'PGREPLICATION',
  'USER',
  'HOME',
] as const;
function databaseDriverEnv(env: Source): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of DATABASE_DRIVER_ENV) if (env[name] !== undefined) out[name] = env[name] as string;
  return out;
}

/**
 * Parse and validate the configuration. Throws ConfigError listing every problem; secret values
 * are never echoed.
 */
export function loadConfig(env: Source = process.env, options: LoadOptions = {}): Readonly<Config> {
  const problems: string[] = [];
  const file = env.CONFIG_FILE ? readConfigFile(resolve(env.CONFIG_FILE), problems) : {};
  const l: Loading = { env, file, values: parseValues(env, file, problems), problems, warnings: [], requireUpstream: options.requireUpstream ?? true };
  const port = get<number | undefined>(l, 'PORT') ?? 8080;
  const publicUrl = get<URL | undefined>(l, 'PUBLIC_URL') ?? (l.values.has('PUBLIC_URL') || env.PUBLIC_URL ? undefined : new URL(`http://localhost:${port}`));
  const insecureOk = checkPlainHttp(l, publicUrl);
  checkOpenMetrics(l, publicUrl);
  checkToolScopes(l);
  checkBodyMemory(l);
  checkSharedSecret(l);
  checkEngineSettings(l);
  const choice = decideDemo(l, publicUrl);
  const upstream = checkUpstream(l, choice, publicUrl);
  if (problems.length) throw new ConfigError(problems);
  return deepFreeze(assemble(l, publicUrl as URL, choice.demo, upstream, insecureOk));
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value) && !(value instanceof URL) && !Buffer.isBuffer(value)) {
    Object.freeze(value);
    for (const inner of Object.values(value)) deepFreeze(inner);
  }
  return value;
}
