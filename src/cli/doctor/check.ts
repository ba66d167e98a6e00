/**
 * What `mcp-consent-proxy doctor` is made of: a check's result (every failure carries its fix),
 * the settings every probe shares, and one bounded HTTP request helper that turns network
 * failures into a sentence (never a stack trace). Probes send nothing the server would not
 * send, and never print a secret (the client secret goes only to U's token endpoint, UP-10).
 */

/** pass; fail (with a fix); unchecked (cannot be checked from here, says why); skipped (not applicable, or needs a failed check) */
export type CheckStatus = 'pass' | 'fail' | 'unchecked' | 'skipped';

export interface CheckResult {
  id: string;
  title: string;
  status: CheckStatus;
  /** what was seen */
  detail: string;
  /** what to do; present on every failure */
  fix?: string;
}

export interface DoctorOptions {
  /** every HTTP probe gives up after this long */
  timeoutMs: number;
  /** this host's clock (injected in tests) */
  now: () => number;
}

export const pass = (id: string, title: string, detail: string): CheckResult => ({ id, title, status: 'pass', detail });
export const fail = (id: string, title: string, detail: string, fix: string): CheckResult => ({ id, title, status: 'fail', detail, fix });
export const unchecked = (id: string, title: string, detail: string): CheckResult => ({ id, title, status: 'unchecked', detail });
export const skipped = (id: string, title: string, detail: string): CheckResult => ({ id, title, status: 'skipped', detail });

export type Fetched = { ok: true; res: Response; receivedAt: number } | { ok: false; problem: string };

/** A network failure as a short phrase: the system error code when there is one. */
export function networkProblem(err: unknown): string {
  const e = err as { name?: string; message?: string; cause?: { code?: unknown; message?: string } };
  if (e.name === 'TimeoutError' || e.name === 'AbortError') return 'no answer in time';
  const code = typeof e.cause?.code === 'string' ? e.cause.code : undefined;
  const phrase: Record<string, string> = {
    ECONNREFUSED: 'connection refused',
    ENOTFOUND: 'host name not found (DNS)',
    EAI_AGAIN: 'host name lookup failed (DNS)',
    ECONNRESET: 'connection reset',
    EHOSTUNREACH: 'host unreachable',
    ENETUNREACH: 'network unreachable',
    ETIMEDOUT: 'connection timed out',
    CERT_HAS_EXPIRED: 'its TLS certificate has expired',
    DEPTH_ZERO_SELF_SIGNED_CERT: 'its TLS certificate is self-signed',
    UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'its TLS certificate cannot be verified',
    ERR_TLS_CERT_ALTNAME_INVALID: 'its TLS certificate is for another host name',
  };
  if (code) return `${phrase[code] ?? 'request failed'} (${code})`;
  return e.cause?.message ?? e.message ?? 'request failed';
}

/** One HTTP request, bounded by the doctor's timeout; redirects are not followed. */
export async function probe(url: string, init: RequestInit, options: DoctorOptions): Promise<Fetched> {
  try {
    const res = await fetch(url, { ...init, redirect: 'manual', signal: AbortSignal.timeout(options.timeoutMs) });
    return { ok: true, res, receivedAt: options.now() };
  } catch (err) {
    return { ok: false, problem: networkProblem(err) };
  }
}

/** A response body as JSON (at most 1 MB read), or undefined. */
export async function jsonBody(res: Response): Promise<Record<string, unknown> | undefined> {
  try {
    const text = await res.text();
    if (text.length > 1_000_000) return undefined;
    const value = JSON.parse(text) as unknown;
    return value && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** "HTTP 404 text/html" — how a response that is not the expected one is described. */
export function describeResponse(res: Response): string {
  const type = res.headers.get('content-type')?.split(';')[0];
  return `HTTP ${res.status}${type ? ` ${type}` : ''}`;
}
