/**
 * A small closed-loop load generator on undici: `connections` workers, each sending the next
 * request as soon as the previous answer's body has arrived, for a fixed duration. Latency is
 * measured per request from dispatch to end of body (high-resolution clock).
 */
import { Pool } from 'undici';

export interface LoadResult {
  requests: number;
  errors: number;
  rps: number;
  p50: number;
  p99: number;
}

export interface LoadSpec {
  url: string;
  connections: number;
  durationMs: number;
  /** builds one request; `worker` is the worker index, `n` its request count */
  request: (worker: number, n: number) => { method: 'GET' | 'POST'; path: string; headers: Record<string, string>; body?: string };
  /** called with the response body of each request (e.g. to pick up a rotated refresh token) */
  onBody?: (worker: number, status: number, body: string) => void;
}

export async function runLoad(spec: LoadSpec): Promise<LoadResult> {
  const origin = new URL(spec.url).origin;
  const pool = new Pool(origin, { connections: spec.connections, pipelining: 1 });
  const latencies: number[] = [];
  let errors = 0;
  const stopAt = performance.now() + spec.durationMs;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: spec.connections }, async (_, worker) => {
      for (let n = 0; performance.now() < stopAt; n++) {
        const req = spec.request(worker, n);
        const t0 = performance.now();
        try {
          const res = await pool.request({ method: req.method, path: req.path, headers: req.headers, body: req.body });
          const text = await res.body.text();
          latencies.push(performance.now() - t0);
          if (res.statusCode >= 400) errors += 1;
          spec.onBody?.(worker, res.statusCode, text);
        } catch {
          errors += 1;
        }
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  await pool.close();
  latencies.sort((a, b) => a - b);
  const pick = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0;
  return { requests: latencies.length, errors, rps: latencies.length / elapsed, p50: pick(0.5), p99: pick(0.99) };
}

export const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
};
