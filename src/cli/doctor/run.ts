/**
 * `mcp-consent-proxy doctor`: the configuration (read only through src/config, as `serve` reads
 * it) and the world around it, as a checklist with a fix for every failure. Independent probes
 * run side by side, each bounded by the timeout; the report is ok only when nothing failed
 * (a check that cannot be made from here says so, and does not fail).
 */
import { ConfigError, loadConfig, type Config } from '../../config/load.js';
import { fail, pass, skipped, type CheckResult, type CheckStatus, type DoctorOptions } from './check.js';
import { checkPublicUrl, checkTrustProxy } from './public-url.js';
import { checkAuthorizationRequest, checkClientCredentials, checkClock, checkDiscovery, checkPkce } from './upstream.js';
import { checkMcpUpstream } from './mcp.js';
import { checkDatabase } from './database.js';

export interface DoctorReport {
  ok: boolean;
  /** the callback URL to register at the upstream (null without a valid configuration) */
  callbackUrl: string | null;
  checks: CheckResult[];
}

export type { CheckResult, CheckStatus, DoctorOptions };

const OTHER_CHECKS: [string, string][] = [
  ['public-url', 'PUBLIC_URL answers as this proxy'],
  ['proxy', 'TRUST_PROXY matches how PUBLIC_URL reaches the server'],
];

const UPSTREAM_CHECKS: [string, string][] = [
  ['upstream-discovery', 'upstream discovery'],
  ['upstream-pkce', 'upstream supports PKCE S256'],
  ['upstream-client', 'upstream accepts the client id and callback URL'],
  ['upstream-secret', 'upstream accepts the client credentials'],
  ['clock', "clock agrees with the upstream's"],
];

function describeConfig(config: Readonly<Config>): string {
  const upstream = config.upstream ? `upstream ${config.upstream.name} (${config.upstream.preset}, ${config.upstream.issuer.href})` : 'DEMO mode (embedded demo identity provider)';
  // DATABASE_PATH is unused with DATABASE_URL, and the URL is never printed (it may carry a password).
  const database = config.databaseUrl ? 'PostgreSQL (DATABASE_URL)' : config.databasePath;
  return `PUBLIC_URL ${config.urls.issuer}; ${upstream}; database ${database}`;
}

async function upstreamChecks(config: Readonly<Config>, options: DoctorOptions): Promise<CheckResult[]> {
  const upstream = config.upstream;
  if (!upstream) return UPSTREAM_CHECKS.map(([id, title]) => skipped(id, title, 'demo mode: the embedded demo identity provider, served by the proxy itself'));
  const discovery = await checkDiscovery(upstream, options);
  const [client, secret] = await Promise.all([checkAuthorizationRequest(config, upstream, discovery.seen, options), checkClientCredentials(config, upstream, discovery.seen, options)]);
  return [discovery.result, checkPkce(discovery.seen), client, secret, checkClock(discovery.seen)];
}

async function publicUrlChecks(config: Readonly<Config>, options: DoctorOptions): Promise<CheckResult[]> {
  const { result, seen } = await checkPublicUrl(config, options);
  return [result, await checkTrustProxy(config, seen)];
}

export async function runDoctor(env: Record<string, string | undefined>, options: DoctorOptions): Promise<DoctorReport> {
  let config: Readonly<Config>;
  try {
    config = loadConfig(env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    const fix = 'Set or correct the settings listed (README "Configuration"); doctor checks the rest once the configuration loads.';
    const rest = [...OTHER_CHECKS, ...UPSTREAM_CHECKS, ['mcp-upstream', 'MCP server reachable and speaking MCP'], ['database', 'database writable and migrated']];
    return {
      ok: false,
      callbackUrl: null,
      checks: [fail('config', 'configuration is valid', err.problems.join('; '), fix), ...rest.map(([id, title]) => skipped(id as string, title as string, 'needs a valid configuration'))],
    };
  }
  const [publicUrl, upstream, mcp, database] = await Promise.all([
    publicUrlChecks(config, options),
    upstreamChecks(config, options),
    checkMcpUpstream(config, options),
    checkDatabase(config, options),
  ]);
  const checks = [pass('config', 'configuration is valid', describeConfig(config)), ...publicUrl, ...upstream, mcp, database];
  return { ok: checks.every((c) => c.status !== 'fail'), callbackUrl: config.upstream ? config.urls.upstreamCallback : null, checks };
}

const MARK: Record<CheckStatus, string> = { pass: 'ok  ', fail: 'FAIL', unchecked: '??  ', skipped: '--  ' };

/** The report for a terminal: one line per check, what was seen under it, and the fix under a failure. */
export function formatReport(report: DoctorReport): string {
  const lines = ['mcp-consent-proxy doctor', ''];
  for (const check of report.checks) {
    lines.push(`  ${MARK[check.status]}  ${check.title}`, `        ${check.detail}`);
    if (check.fix) lines.push(`        fix: ${check.fix}`);
  }
  if (report.callbackUrl) lines.push('', `  Callback URL to register at the upstream: ${report.callbackUrl}`);
  const failed = report.checks.filter((c) => c.status === 'fail');
  const open = report.checks.filter((c) => c.status === 'unchecked');
  lines.push(
    '',
    failed.length
      ? `${failed.length} of ${report.checks.length} checks failed: ${failed.map((c) => c.id).join(', ')}`
      : `all checks passed${open.length ? ` (${open.map((c) => c.id).join(', ')} could not be checked from here)` : ''}`,
  );
  return lines.join('\n');
}
