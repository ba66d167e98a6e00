/**
 * The one rule for which client address a per-address budget counts a request under (SEC-01):
 * the client IP (after TRUST_PROXY), IPv6 by its /56 and IPv4-mapped IPv6 as its IPv4 —
 * express-rate-limit's `ipKeyGenerator`, the key its rate limits use — and 'unknown' when the
 * address is gone (a client that reset its connection before it was read), so that such requests
 * share one budget instead of escaping it. Used by the refusal budget (src/audit/refusal-budget.ts)
 * and the CIMD fetch cap (src/cimd/resolve.ts).
 */
import { ipKeyGenerator } from 'express-rate-limit';

export function addressKey(ip: string | undefined): string {
  return ip ? ipKeyGenerator(ip) : 'unknown';
}
