/**
 * The configuration's cross-key checks, each named after what it protects. Each reads the parsed
 * settings and adds problems (which stop the start, all listed at once) or warnings (logged at
 * start). The one place that decides demo mode (DESIGN §4 "Demo mode only when safe").
 */
import { derivePublicUrls, isLoopbackHost } from './urls.js';
import type { ConfigKey, Preset } from './schema.js';
import type { Source } from './file.js';

/** The parsed settings and what the checks report. */
export interface Loading {
  env: Source;
  file: Source;
  values: Map<ConfigKey, unknown>;
  problems: string[];
  warnings: string[];
  /** false for commands that only touch the database (migrate, audit) */
  requireUpstream: boolean;
}

export const get = <T>(l: Loading, name: ConfigKey) => l.values.get(name) as T;
const isGiven = (l: Loading, name: string) => Boolean((l.env[name] ?? l.file[name])?.trim());

/** DISC-14: https everywhere; http only for loopback hosts unless the DANGEROUSLY_ switch is on. */
export function checkPlainHttp(l: Loading, publicUrl: URL | undefined): boolean {
  const insecureOk = get<boolean>(l, 'DANGEROUSLY_ALLOW_INSECURE_HTTP') ?? false;
  if (insecureOk) l.warnings.push('DANGEROUSLY_ALLOW_INSECURE_HTTP is on: plain http is accepted for non-loopback hosts; tokens may travel unencrypted');
  const plainRemote = (url: URL | undefined) => url?.protocol === 'http:' && !isLoopbackHost(url.hostname) && !insecureOk;
  for (const name of ['PUBLIC_URL', 'UPSTREAM_ISSUER', 'MCP_UPSTREAM_URL'] as const) {
    if (plainRemote(name === 'PUBLIC_URL' ? publicUrl : get<URL>(l, name))) {
      l.problems.push(`${name}: plain http is only allowed for loopback hosts (localhost, 127.0.0.0/8, [::1]); use https or set DANGEROUSLY_ALLOW_INSECURE_HTTP=true`);
    }
  }
  for (const route of get<{ prefix: string; target: URL }[]>(l, 'GATEWAY_ROUTES') ?? []) {
    if (plainRemote(route.target)) l.problems.push(`GATEWAY_ROUTES: target of ${route.prefix} uses plain http on a non-loopback host; use https or set DANGEROUSLY_ALLOW_INSECURE_HTTP=true`);
  }
  return insecureOk;
}

/**
 * DESIGN §8: replicas on one PostgreSQL are interchangeable only with one SECRET_KEY — every
 * sealed value, cookie and audit MAC of one must open on the others. Without it each process would
 * generate its own into its own data directory; so DATABASE_URL requires SECRET_KEY.
 */
export function checkSharedSecret(l: Loading): void {
  if (isGiven(l, 'DATABASE_URL') && !isGiven(l, 'SECRET_KEY')) {
    l.problems.push('SECRET_KEY: required with DATABASE_URL — every process on the database must use the same one (a generated secret.key would differ per replica)');
  }
}

/**
 * DESIGN §4 (every setting documented and honoured): a setting of the other engine is a problem,
 * never silently ignored — DATABASE_SYNCHRONOUS is SQLite's (PostgreSQL's durability is its
 * server's `synchronous_commit`: an operator moving to DATABASE_URL with FULL set would believe
 * in a guarantee this process no longer gives), DATABASE_POOL_MAX is PostgreSQL's.
 */
export function checkEngineSettings(l: Loading): void {
  const postgres = isGiven(l, 'DATABASE_URL');
  if (postgres && isGiven(l, 'DATABASE_SYNCHRONOUS')) {
    l.problems.push("DATABASE_SYNCHRONOUS: a SQLite setting, without effect with DATABASE_URL (PostgreSQL's durability is its server's synchronous_commit); unset it");
  }
  if (!postgres && isGiven(l, 'DATABASE_POOL_MAX')) {
    l.problems.push('DATABASE_POOL_MAX: only used with DATABASE_URL (PostgreSQL); SQLite has one connection. Unset it, or set DATABASE_URL');
  }
}

/** GATEWAY_BODY_MEMORY below GATEWAY_MAX_BODY would refuse a body the limit allows, whatever else is in flight. */
export function checkBodyMemory(l: Loading): void {
  const memory = get<number | undefined>(l, 'GATEWAY_BODY_MEMORY');
  const max = get<number | undefined>(l, 'GATEWAY_MAX_BODY');
  if (memory !== undefined && max !== undefined && memory < max)
    l.problems.push(`GATEWAY_BODY_MEMORY: must be at least GATEWAY_MAX_BODY (${max} bytes): a body the limit allows would always be refused`);
}

/** MCP_TOOL_SCOPES may only name scopes P offers for the MCP resource (MCP_SCOPES): a token could never carry another. */
export function checkToolScopes(l: Loading): void {
  const offered = get<string[] | undefined>(l, 'MCP_SCOPES') ?? [];
  const unknown = (get<{ tool: string; scope: string }[] | undefined>(l, 'MCP_TOOL_SCOPES') ?? []).filter((p) => !offered.includes(p.scope));
  for (const { tool, scope } of unknown) l.problems.push(`MCP_TOOL_SCOPES: scope ${scope} (for tool ${tool}) is not one of MCP_SCOPES`);
}

/** /metrics open on a public address: a warning (SECURITY.md "Operations endpoints"). */
export function checkOpenMetrics(l: Loading, publicUrl: URL | undefined): void {
  if (!get(l, 'METRICS_TOKEN') && publicUrl && !isLoopbackHost(publicUrl.hostname)) {
    l.warnings.push(
      'METRICS_TOKEN is not set and PUBLIC_URL is not a loopback address: /metrics is open to anyone who can reach this server; set METRICS_TOKEN or keep /metrics off the public internet at your reverse proxy',
    );
  }
}

/** Settings whose mere presence says "this is a real deployment" (DESIGN §4). */
const PRODUCTION_KEYS = ['MCP_UPSTREAM_URL', 'UPSTREAM_CLIENT_ID', 'UPSTREAM_CLIENT_SECRET', 'GATEWAY_ROUTES', 'ADMIN_SUBJECTS', 'DATABASE_URL'] as const;

/**
 * DESIGN §4 "Demo mode only when safe": every sign that this configuration is meant for real
 * users, named for the operator (values only where they are not secret). Demo mode with any of
 * these would put an IdP where anyone signs in as anyone — `admin` included — in front of them.
 */
export function productionSignals(l: Loading, publicUrl: URL | undefined): string[] {
  const host = get<string | undefined>(l, 'HOST');
  const signals: string[] = [];
  if (publicUrl && !isLoopbackHost(publicUrl.hostname)) signals.push(`PUBLIC_URL=${publicUrl.origin} (not a loopback host)`);
  if (host !== undefined && !isLoopbackHost(host)) signals.push(`HOST=${host} (not a loopback address)`);
  if (l.env.NODE_ENV?.trim().toLowerCase() === 'production') signals.push('NODE_ENV=production');
  for (const name of PRODUCTION_KEYS) if (isGiven(l, name)) signals.push(name);
  return signals;
}

export interface UpstreamChoice {
  preset: Preset;
  /** UPSTREAM_ISSUER (oidc) or UPSTREAM_CLIENT_ID (github, google): the key that configures U */
  upstreamKey: 'UPSTREAM_ISSUER' | 'UPSTREAM_CLIENT_ID';
  upstreamConfigured: boolean;
  demo: boolean;
}

/**
 * Demo mode, decided here only (DESIGN §4): DEMO=true, or no upstream and no production signal.
 * A production signal without an upstream (and without DEMO=true) is a problem: `serve` exits 1
 * before opening the database or a port. ADMIN_SUBJECTS is never honoured in demo mode.
 */
export function decideDemo(l: Loading, publicUrl: URL | undefined): UpstreamChoice {
  const preset = get<Preset>(l, 'UPSTREAM_PRESET') ?? 'oidc';
  // An upstream is configured by UPSTREAM_ISSUER (preset oidc) or UPSTREAM_CLIENT_ID (github,
  // google: their issuers are built in).
  const upstreamKey = preset === 'oidc' ? 'UPSTREAM_ISSUER' : 'UPSTREAM_CLIENT_ID';
  const upstreamConfigured = isGiven(l, upstreamKey);
  const demoSetting = get<boolean | undefined>(l, 'DEMO');
  const signals = productionSignals(l, publicUrl);
  const demo = demoSetting === true || (!upstreamConfigured && demoSetting !== false && signals.length === 0);
  if (demoSetting === true && upstreamConfigured) {
    l.problems.push(`DEMO: true, but an upstream is configured (${upstreamKey}); demo mode would replace it with an identity provider where any user name signs in. Unset DEMO or ${upstreamKey}`);
  } else if (!demo && !upstreamConfigured && l.requireUpstream) {
    const how = 'set UPSTREAM_ISSUER (preset oidc), or UPSTREAM_PRESET=github|google with UPSTREAM_CLIENT_ID and UPSTREAM_CLIENT_SECRET';
    l.problems.push(
      demoSetting === false
        ? `${upstreamKey}: required — DEMO=false forbids demo mode and no upstream is configured (UPSTREAM_PRESET=${preset}); ${how}`
        : `${upstreamKey}: not set, so no upstream is configured (UPSTREAM_PRESET=${preset}), but this looks like a production configuration: ${signals.join(', ')}. ` +
            `Refusing to start demo mode (any user name signs in, admin included): ${how} — or set DEMO=true to run the demo anyway`,
    );
  }
  if (demo && !upstreamConfigured && preset !== 'oidc') l.warnings.push(`UPSTREAM_PRESET=${preset} without UPSTREAM_CLIENT_ID: running the demo upstream instead`);
  if (demo && (get<string[] | undefined>(l, 'ADMIN_SUBJECTS') ?? []).length) l.warnings.push('ADMIN_SUBJECTS is ignored in demo mode: the demo user "admin" is the admin');
  return { preset, upstreamKey, upstreamConfigured, demo };
}

const PRESET_DEFAULTS: Record<Preset, { issuer?: string; scopes: string[]; name?: string }> = {
  oidc: { scopes: ['openid'] },
  github: { issuer: 'https://github.com', scopes: ['read:user'], name: 'GitHub' },
  google: { issuer: 'https://accounts.google.com', scopes: ['openid', 'email'], name: 'Google' },
};

export interface UpstreamSettings {
  preset: Preset;
  issuer: URL;
  clientId: string;
  clientSecret: string | undefined;
  scopes: string[];
  name: string;
}

/** With an upstream: its client id (and secret, for github/google) and R are required. */
export function checkUpstream(l: Loading, choice: UpstreamChoice, publicUrl: URL | undefined): UpstreamSettings | undefined {
  const { preset } = choice;
  if (choice.demo) {
    for (const name of ['UPSTREAM_CLIENT_ID', 'UPSTREAM_CLIENT_SECRET'] as const) {
      if (l.values.has(name)) l.problems.push(`${name}: set, but no upstream is configured (preset ${preset} needs ${choice.upstreamKey}); demo mode runs its own identity provider`);
    }
    return undefined;
  }
  if (!choice.upstreamConfigured) return undefined;
  const defaults = PRESET_DEFAULTS[preset];
  const issuer = get<URL | undefined>(l, 'UPSTREAM_ISSUER') ?? (defaults.issuer ? new URL(defaults.issuer) : undefined);
  const clientId = get<string | undefined>(l, 'UPSTREAM_CLIENT_ID');
  const clientSecret = get<string | undefined>(l, 'UPSTREAM_CLIENT_SECRET');
  if (l.requireUpstream) {
    const callback = publicUrl ? derivePublicUrls(publicUrl).upstreamCallback : 'PUBLIC_URL/upstream/callback';
    if (!clientId) l.problems.push(`UPSTREAM_CLIENT_ID: required with an upstream (register ${callback} as the callback URL at the upstream and put its client id here)`);
    if (!clientSecret && preset !== 'oidc') l.problems.push(`UPSTREAM_CLIENT_SECRET: required for the ${preset} preset`);
    if (!get(l, 'MCP_UPSTREAM_URL') && !l.env.MCP_UPSTREAM_URL && !l.file.MCP_UPSTREAM_URL) l.problems.push('MCP_UPSTREAM_URL: required with an upstream (the MCP server the gateway forwards to)');
  }
  if (!issuer || !clientId) return undefined;
  return {
    preset,
    issuer,
    clientId,
    clientSecret,
    scopes: get<string[] | undefined>(l, 'UPSTREAM_SCOPES') ?? defaults.scopes,
    name: get<string | undefined>(l, 'UPSTREAM_NAME') ?? defaults.name ?? issuer.host,
  };
}
