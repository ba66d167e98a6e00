/**
 * A steady, bounded load for test/faults/postgres-restart.pg.test.ts: a few workers, each in a
 * loop with a short pause, doing one kind of request — client registrations, refresh-token
 * rotations (each worker on its own grant, keeping the latest refresh token), gateway calls
 * (tools/list with an access token) and /readyz probes. Every answer is recorded with its
 * timing; a request not answered within `hangMs` is aborted and recorded as a hang (status 0).
 */
import { mcpClientMetadata } from '../helpers/app.js';
import { mcpPost } from '../helpers/mcp-http.js';

export type Kind = 'register' | 'refresh' | 'gateway' | 'readyz';

export interface Outcome {
  kind: Kind;
  worker: string;
  /** performance.now() when sent and when answered (or failed) */
  start: number;
  end: number;
  /** HTTP status; 0: no answer within hangMs; -1: the connection failed */
  status: number;
  retryAfter: string | null;
  body: string;
}

export interface LoadGrant {
  clientId: string;
  refreshToken: string;
  /** a refresh of this grant was answered with a failure (503, or no answer): its outcome is unknown */
  unanswered?: boolean;
  /**
   * The refusals (invalid_grant) that ended this grant after such a failure: the rotation had been
   * committed but its answer lost, so the client presented the old refresh token — a reuse, which
   * revokes the grant (RT-02). The worker then continues with a new grant (`renew`).
   */
  lost: Outcome[];
}

export interface Load {
  outcomes: Outcome[];
  /** stop the workers, wait for their last requests */
  stop(): Promise<Outcome[]>;
}

const PAUSE_MS = 20;

async function timedFetch(kind: Kind, worker: string, hangMs: number, send: (signal: AbortSignal) => Promise<Response>): Promise<Outcome> {
  const start = performance.now();
  const signal = AbortSignal.timeout(hangMs);
  try {
    const res = await send(signal);
    const body = await res.text();
    return { kind, worker, start, end: performance.now(), status: res.status, retryAfter: res.headers.get('retry-after'), body };
  } catch (err) {
    const hang = (err as Error).name === 'TimeoutError' || signal.aborted;
    return { kind, worker, start, end: performance.now(), status: hang ? 0 : -1, retryAfter: null, body: String((err as Error).message) };
  }
}

export function startLoad(
  baseUrl: string,
  renew: () => Promise<{ clientId: string; refreshToken: string }>,
  grants: LoadGrant[],
  gateways: { token: string; session: string }[],
  hangMs: number,
): Load {
  const outcomes: Outcome[] = [];
  let running = true;
  const loop = async (request: () => Promise<Outcome>) => {
    while (running) {
      outcomes.push(await request());
      await new Promise((r) => setTimeout(r, PAUSE_MS));
    }
  };
  const form = { 'content-type': 'application/x-www-form-urlencoded' };
  const workers: Promise<void>[] = [
    loop(() =>
      timedFetch('register', 'register', hangMs, (signal) =>
        fetch(`${baseUrl}/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(mcpClientMetadata()), signal }),
      ),
    ),
    loop(() => timedFetch('readyz', 'readyz', hangMs, (signal) => fetch(`${baseUrl}/readyz`, { signal }))),
    ...grants.map((grant, i) =>
      loop(async () => {
        const outcome = await timedFetch('refresh', `refresh-${i}`, hangMs, (signal) =>
          fetch(`${baseUrl}/token`, {
            method: 'POST',
            headers: form,
            body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: grant.refreshToken, client_id: grant.clientId }),
            signal,
          }),
        );
        if (outcome.status === 200) grant.refreshToken = (JSON.parse(outcome.body) as { refresh_token: string }).refresh_token;
        else if (outcome.status !== 400) grant.unanswered = true;
        else if (grant.unanswered && /"invalid_grant"/.test(outcome.body)) {
          // The rotation before was committed but not answered (see LoadGrant.lost): a new grant.
          grant.lost.push(outcome);
          Object.assign(grant, await renew(), { unanswered: false });
        }
        return outcome;
      }),
    ),
    ...gateways.map(({ token, session }, i) =>
      loop(async () => {
        const start = performance.now();
        const signal = AbortSignal.timeout(hangMs);
        const res = await Promise.race([
          mcpPost(`${baseUrl}/mcp`, token, { jsonrpc: '2.0', id: 1, method: 'tools/list' }, { 'mcp-session-id': session }).then(
            (r) => ({ status: r.status, retryAfter: r.headers.get('retry-after'), body: r.text }),
            (err: Error) => ({ status: -1, retryAfter: null, body: err.message }),
          ),
          new Promise<{ status: number; retryAfter: null; body: string }>((resolve) => signal.addEventListener('abort', () => resolve({ status: 0, retryAfter: null, body: 'no answer' }))),
        ]);
        return { kind: 'gateway' as const, worker: `gateway-${i}`, start, end: performance.now(), ...res };
      }),
    ),
  ];
  return {
    outcomes,
    async stop() {
      running = false;
      await Promise.all(workers);
      return outcomes;
    },
  };
}
