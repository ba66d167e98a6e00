/**
 * Loads the configuration from the environment and an optional JSON/YAML file (CONFIG_FILE),
 * validates every key against the schema, reports every problem at once and returns a frozen
 * object. Nothing else in the code base reads process.env (style C5).
 *
 * It is also the one place that decides demo mode (DESIGN §4 "Demo mode only when safe"): the
 * embedded IdP where any user name signs in runs only when no upstream is configured and nothing
 * says production (`productionSignals`), or when DEMO=true; a production signal without an
 * upstream is a configuration problem, so `serve` exits 1 before opening the database or a port.
 * ADMIN_SUBJECTS is never honoured in demo mode.
 */
import { readFileSync } from 'node:fs';
import { dirname, extname, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import type { RateBudget } from './duration.js';
import { CONFIG_KEYS, SCHEMA, type ConfigKey, type KeyDef, type Preset } from './schema.js';
import { derivePublicUrls, isLoopbackHost, type PublicUrls } from './urls.js';

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
  secretKey: Buffer | undefined;
  secretKeyPrevious: Buffer | undefined;
  /**
   * demo mode: the embedded demo IdP (and, without MCP_UPSTREAM_URL, the demo MCP server). Only
   * with no upstream configured and no production signal, or DEMO=true (DESIGN §4).
   */
  demo: boolean;
  upstream: UpstreamConfig | undefined;
  mcpUpstreamUrl: URL | undefined;
  mcpScopes: string[];
  ttl: { consent: number; session: number; accessToken: number; refreshToken: number; clientIdle: number; adminIdle: number; adminSession: number };
  redirectSchemes: string[];
  rateLimits: { register: RateBudget; token: RateBudget; authorize: RateBudget; rejected: RateBudget };
  adminSubjects: string[];
  /** every protected resource: the MCP resource first, then one per GATEWAY_ROUTES prefix */
  resources: string[];
  gateway: {
    timeoutMs: number;
    maxBodyBytes: number;
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

const PRESET_DEFAULTS: Record<Preset, { issuer?: string; scopes: string[]; name?: string }> = {
  oidc: { scopes: ['openid'] },
  github: { issuer: 'https://github.com', scopes: ['read:user'], name: 'GitHub' },
  google: { issuer: 'https://accounts.google.com', scopes: ['openid', 'email'], name: 'Google' },
};

type Source = Record<string, string | undefined>;

/** Settings whose mere presence says "this is a real deployment" (DESIGN §4). */
const PRODUCTION_KEYS = ['MCP_UPSTREAM_URL', 'UPSTREAM_CLIENT_ID', 'UPSTREAM_CLIENT_SECRET', 'GATEWAY_ROUTES', 'ADMIN_SUBJECTS'] as const;

/**
 * DESIGN §4 "Demo mode only when safe": every sign that this configuration is meant for real
 * users, named for the operator (values only where they are not secret). Demo mode with any of
 * these would put an IdP where anyone signs in as anyone — `admin` included — in front of them.
 */
function productionSignals(env: Source, file: Source, publicUrl: URL | undefined, host: string | undefined): string[] {
  const isSet = (name: string) => Boolean((env[name] ?? file[name])?.trim());
  const signals: string[] = [];
  if (publicUrl && !isLoopbackHost(publicUrl.hostname)) signals.push(`PUBLIC_URL=${publicUrl.origin} (not a loopback host)`);
  if (host !== undefined && !isLoopbackHost(host)) signals.push(`HOST=${host} (not a loopback address)`);
  if (env.NODE_ENV?.trim().toLowerCase() === 'production') signals.push('NODE_ENV=production');
  for (const name of PRODUCTION_KEYS) if (isSet(name)) signals.push(name);
  // DATABASE_URL is not a configuration key yet (PostgreSQL for replicas comes later, DESIGN §8),
  // but a deployment that sets it is a production one: read it from the same source as the rest.
  if (env.DATABASE_URL?.trim()) signals.push('DATABASE_URL');
  return signals;
}

function readConfigFile(path: string, problems: string[]): Source {
  let raw: string;
  try {
    raw = readFileSync(path, 'utf8');
  } catch (err) {
    problems.push(`CONFIG_FILE: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
    return {};
  }
  let data: unknown;
  try {
    data = ['.yaml', '.yml'].includes(extname(path).toLowerCase()) ? parseYaml(raw) : JSON.parse(raw);
  } catch (err) {
    problems.push(`CONFIG_FILE: ${path} is not valid ${extname(path).toLowerCase() === '.json' ? 'JSON' : 'YAML'}: ${(err as Error).message.split('\n')[0]}`);
    return {};
  }
  if (!data || typeof data !== 'object' || Array.isArray(data)) {
    problems.push(`CONFIG_FILE: ${path} must contain an object of settings`);
    return {};
  }
  const out: Source = {};
  for (const [name, value] of Object.entries(data)) {
    if (!(CONFIG_KEYS as string[]).includes(name)) {
      problems.push(`CONFIG_FILE: unknown setting ${name} in ${path}`);
      continue;
    }
    out[name] = Array.isArray(value) ? value.join(' ') : value === null || value === undefined ? undefined : String(value);
  }
  return out;
}

/**
 * Parse and validate the configuration. Throws ConfigError listing every problem; secret values
 * are never echoed.
 */
export interface LoadOptions {
  /**
   * false for commands that only touch the database (migrate, audit): missing upstream settings
   * are then not problems.
   */
  requireUpstream?: boolean;
}

export function loadConfig(env: Source = process.env, options: LoadOptions = {}): Readonly<Config> {
  const requireUpstream = options.requireUpstream ?? true;
  const problems: string[] = [];
  const warnings: string[] = [];
  const file = env.CONFIG_FILE ? readConfigFile(resolve(env.CONFIG_FILE), problems) : {};

  const values = new Map<ConfigKey, unknown>();
  for (const name of CONFIG_KEYS) {
    const def = SCHEMA[name] as KeyDef<unknown>;
    const raw = env[name] ?? file[name] ?? def.fallback;
    if (raw === undefined || (raw === '' && def.fallback === undefined)) continue;
    const parsed = def.parse(raw);
    if (parsed.ok) values.set(name, parsed.value);
    else problems.push(`${name}: ${parsed.problem}${def.secret ? '' : ` (got ${JSON.stringify(raw.length > 80 ? `${raw.slice(0, 80)}…` : raw)})`}`);
  }
  const get = <T>(name: ConfigKey) => values.get(name) as T;

  const port = get<number>('PORT') ?? 8080;
  const publicUrl = get<URL>('PUBLIC_URL') ?? (values.has('PUBLIC_URL') || env.PUBLIC_URL ? undefined : new URL(`http://localhost:${port}`));
  const insecureOk = get<boolean>('DANGEROUSLY_ALLOW_INSECURE_HTTP') ?? false;
  if (insecureOk) warnings.push('DANGEROUSLY_ALLOW_INSECURE_HTTP is on: plain http is accepted for non-loopback hosts; tokens may travel unencrypted');
  if (!get('METRICS_TOKEN') && publicUrl && !isLoopbackHost(publicUrl.hostname)) {
    warnings.push(
      'METRICS_TOKEN is not set and PUBLIC_URL is not a loopback address: /metrics is open to anyone who can reach this server; set METRICS_TOKEN or keep /metrics off the public internet at your reverse proxy',
    );
  }

  // DISC-14: https everywhere; http only for loopback hosts unless the DANGEROUSLY_ switch is on.
  for (const name of ['PUBLIC_URL', 'UPSTREAM_ISSUER', 'MCP_UPSTREAM_URL'] as const) {
    const value = name === 'PUBLIC_URL' ? publicUrl : get<URL>(name);
    if (value && value.protocol === 'http:' && !isLoopbackHost(value.hostname) && !insecureOk) {
      problems.push(`${name}: plain http is only allowed for loopback hosts (localhost, 127.0.0.0/8, [::1]); use https or set DANGEROUSLY_ALLOW_INSECURE_HTTP=true`);
    }
  }

  for (const route of get<{ prefix: string; target: URL }[]>('GATEWAY_ROUTES') ?? []) {
    if (route.target.protocol === 'http:' && !isLoopbackHost(route.target.hostname) && !insecureOk) {
      problems.push(`GATEWAY_ROUTES: target of ${route.prefix} uses plain http on a non-loopback host; use https or set DANGEROUSLY_ALLOW_INSECURE_HTTP=true`);
    }
  }

  const preset = get<Preset>('UPSTREAM_PRESET') ?? 'oidc';
  const issuerSetting = get<URL>('UPSTREAM_ISSUER');
  // DESIGN §4: an upstream is configured by UPSTREAM_ISSUER (preset oidc) or UPSTREAM_CLIENT_ID
  // (github, google: their issuers are built in).
  const upstreamKey = preset === 'oidc' ? 'UPSTREAM_ISSUER' : 'UPSTREAM_CLIENT_ID';
  const upstreamConfigured = Boolean((env[upstreamKey] ?? file[upstreamKey])?.trim());
  const demoSetting = get<boolean | undefined>('DEMO');
  const signals = productionSignals(env, file, publicUrl, get<string | undefined>('HOST'));
  // DESIGN §4 "Demo mode only when safe": DEMO=true, or no upstream and no production signal.
  const demo = demoSetting === true || (!upstreamConfigured && demoSetting !== false && signals.length === 0);
  if (demoSetting === true && upstreamConfigured) {
    problems.push(`DEMO: true, but an upstream is configured (${upstreamKey}); demo mode would replace it with an identity provider where any user name signs in. Unset DEMO or ${upstreamKey}`);
  } else if (!demo && !upstreamConfigured && requireUpstream) {
    const how = 'set UPSTREAM_ISSUER (preset oidc), or UPSTREAM_PRESET=github|google with UPSTREAM_CLIENT_ID and UPSTREAM_CLIENT_SECRET';
    problems.push(
      demoSetting === false
        ? `${upstreamKey}: required — DEMO=false forbids demo mode and no upstream is configured (UPSTREAM_PRESET=${preset}); ${how}`
        : `${upstreamKey}: not set, so no upstream is configured (UPSTREAM_PRESET=${preset}), but this looks like a production configuration: ${signals.join(', ')}. ` +
            `Refusing to start demo mode (any user name signs in, admin included): ${how} — or set DEMO=true to run the demo anyway`,
    );
  }
  if (demo && !upstreamConfigured && preset !== 'oidc') warnings.push(`UPSTREAM_PRESET=${preset} without UPSTREAM_CLIENT_ID: running the demo upstream instead`);
  if (demo && values.get('ADMIN_SUBJECTS') && (values.get('ADMIN_SUBJECTS') as string[]).length) {
    warnings.push('ADMIN_SUBJECTS is ignored in demo mode: the demo user "admin" is the admin');
  }
  let upstream: UpstreamConfig | undefined;
  if (!demo && upstreamConfigured) {
    const defaults = PRESET_DEFAULTS[preset];
    const issuer = issuerSetting ?? (defaults.issuer ? new URL(defaults.issuer) : undefined);
    const clientId = get<string>('UPSTREAM_CLIENT_ID');
    const clientSecret = get<string>('UPSTREAM_CLIENT_SECRET');
    if (!clientId && requireUpstream)
      problems.push(
        `UPSTREAM_CLIENT_ID: required with an upstream (register ${publicUrl ? derivePublicUrls(publicUrl).upstreamCallback : 'PUBLIC_URL/upstream/callback'} as the callback URL at the upstream and put its client id here)`,
      );
    if (!clientSecret && preset !== 'oidc' && requireUpstream) problems.push(`UPSTREAM_CLIENT_SECRET: required for the ${preset} preset`);
    if (requireUpstream && !get('MCP_UPSTREAM_URL') && !env.MCP_UPSTREAM_URL && !file.MCP_UPSTREAM_URL)
      problems.push('MCP_UPSTREAM_URL: required with an upstream (the MCP server the gateway forwards to)');
    if (issuer && clientId) {
      upstream = {
        preset,
        issuer,
        clientId,
        clientSecret,
        scopes: get<string[]>('UPSTREAM_SCOPES') ?? defaults.scopes,
        name: get<string>('UPSTREAM_NAME') ?? defaults.name ?? issuer.host,
      };
    }
  } else if (demo) {
    for (const name of ['UPSTREAM_CLIENT_ID', 'UPSTREAM_CLIENT_SECRET'] as const) {
      if (values.has(name)) problems.push(`${name}: set, but no upstream is configured (preset ${preset} needs ${upstreamKey}); demo mode runs its own identity provider`);
    }
  }

  if (problems.length) throw new ConfigError(problems);

  const databasePath = resolve(get<string>('DATABASE_PATH'));
  const urls = derivePublicUrls(publicUrl as URL);
  const config: Config = {
    urls,
    port,
    host: get<string>('HOST'),
    trustProxy: get('TRUST_PROXY'),
    databasePath,
    dataDir: dirname(databasePath),
    databaseSynchronous: get('DATABASE_SYNCHRONOUS'),
    secretKey: get('SECRET_KEY'),
    secretKeyPrevious: get('SECRET_KEY_PREVIOUS'),
    demo,
    upstream,
    mcpUpstreamUrl: get('MCP_UPSTREAM_URL'),
    mcpScopes: get('MCP_SCOPES'),
    ttl: {
      consent: get('CONSENT_TTL'),
      session: get('SESSION_TTL'),
      accessToken: get('ACCESS_TOKEN_TTL'),
      refreshToken: get('REFRESH_TOKEN_TTL'),
      clientIdle: get('CLIENT_IDLE_TTL'),
      adminIdle: get('ADMIN_IDLE_TTL'),
      adminSession: get('ADMIN_SESSION_TTL'),
    },
    redirectSchemes: get('REDIRECT_SCHEMES'),
    rateLimits: { register: get('RATE_LIMIT_REGISTER'), token: get('RATE_LIMIT_TOKEN'), authorize: get('RATE_LIMIT_AUTHORIZE'), rejected: get('RATE_LIMIT_REJECTED') },
    // DESIGN §4: in demo mode whoever signs in at the demo IdP as "admin" may open /admin, and
    // ADMIN_SUBJECTS is never honoured (anyone can sign in there under any name).
    adminSubjects: demo ? ['admin'] : (get<string[]>('ADMIN_SUBJECTS') ?? []),
    resources: [urls.mcpResource, ...(get<{ prefix: string }[]>('GATEWAY_ROUTES') ?? []).map((r) => urls.url(r.prefix))],
    gateway: {
      timeoutMs: get<number>('GATEWAY_TIMEOUT') * 1000,
      maxBodyBytes: get('GATEWAY_MAX_BODY'),
      routes: (get<{ prefix: string; target: URL }[]>('GATEWAY_ROUTES') ?? []).map((r) => ({ ...r, resource: urls.url(r.prefix) })),
      allowedOrigins: get<string[]>('ALLOWED_ORIGINS') ?? [urls.origin],
    },
    logLevel: get('LOG_LEVEL'),
    metricsToken: get('METRICS_TOKEN'),
    dangerouslyAllowInsecureHttp: insecureOk,
    warnings,
  };
  return deepFreeze(config);
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object' && !Object.isFrozen(value) && !(value instanceof URL) && !Buffer.isBuffer(value)) {
    Object.freeze(value);
    for (const inner of Object.values(value)) deepFreeze(inner);
  }
  return value;
}
