/**
 * Is a consent live? The one rule (CONS-13, GW-01), and the one meaning of "active" everywhere —
 * the consent page's skip decision, the gateway's per-request check, the admin and account pages,
 * the CLI and the store's `status: 'active'` filters (which state the same rule in SQL,
 * src/store/consents.ts `LIVE_CONSENT_SQL`; test/unit/consent-status.test.ts keeps the two equal):
 *   active  — not revoked, and now is before expires_at;
 *   revoked — revoked_at is set (whatever its expiry);
 *   expired — not revoked, and expires_at has passed.
 */

export type ConsentStatus = 'active' | 'revoked' | 'expired';

export interface ConsentLifetime {
  revoked_at: number | null;
  expires_at: number;
}

export function consentStatus(consent: ConsentLifetime, now: number): ConsentStatus {
  if (consent.revoked_at !== null) return 'revoked';
  return consent.expires_at > now ? 'active' : 'expired';
}

export function isActive(consent: ConsentLifetime, now: number): boolean {
  return consentStatus(consent, now) === 'active';
}
