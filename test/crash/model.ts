/**
 * What the crash suite's clients know (test/crash): only what P ANSWERED. A request that got no
 * answer before the kill leaves its subject "uncertain" (`inflight`): after the restart either
 * outcome is allowed, but it must be one of them, consistently.
 */

export interface GrantModel {
  n: number;
  clientId: string;
  /** the user at U (one per grant) */
  login: string;
  /** U's token for this user lives 61 s, so P refreshes (and U rotates) it every ~1 s in use */
  rotatesUpstream: boolean;
  access: string;
  /** every refresh token P answered for this grant, oldest first: the last one must work */
  refreshes: string[];
  sessionId: string | undefined;
  status: 'live' | 'revoked';
  /** how it was revoked (answered): by the admin, or by P after a refresh token was reused */
  revokedBy?: 'admin' | 'reuse' | 'unanswered' | 'upstream';
  /** one operation at a time per grant */
  busy: boolean;
  /** the operation that got no answer before the kill */
  inflight: 'refresh' | 'revoke' | 'gateway' | undefined;
}

/** A code the client received and had not redeemed (or got no answer for) at the kill. */
export interface PendingCode {
  clientId: string;
  login: string;
  rotatesUpstream: boolean;
  code: string;
  verifier: string;
  redeemSent: boolean;
}

export interface Answer {
  requestId: string;
  /** performance.now() in the test process when the answer arrived */
  at: number;
  what: string;
}

export interface Counts {
  registrations: number;
  consents: number;
  tokens: number;
  refreshes: number;
  gateway: number;
  revocations: number;
}

export const zeroCounts = (): Counts => ({ registrations: 0, consents: 0, tokens: 0, refreshes: 0, gateway: 0, revocations: 0 });

/** Small seeded PRNG (mulberry32): a cycle's choices and kill moment follow from the seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Users whose upstream token P refreshes every ~1 s (U rotates the refresh token each time). */
export const ROTATING = 'rot-';
/** U's access-token lifetime for them: P refreshes a minute before the end (REFRESH_SKEW_MS). */
export const ROTATING_TTL_S = 61;

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export const median = (values: number[]) => {
  if (!values.length) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
};
