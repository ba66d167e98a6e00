/**
 * The closed list of audit events (DESIGN §3, style C8). Names are `area.outcome`; each maps to
 * the coarse outcome stored next to it. Adding an event means adding it here; the store rejects
 * any other name.
 */
export const AUDIT_EVENTS = {
  'system.started': 'info',
  'system.stopped': 'info',

  'registration.accepted': 'allow',
  'registration.rejected': 'deny',
  /** requests beyond RATE_LIMIT_REGISTER, one row per address and minute (src/audit/refusal-tally.ts) */
  'registration.rejected_aggregate': 'deny',
  'client.expired': 'info',
  /** a Client ID Metadata Document was fetched and accepted (issue 12; not written for cache hits) */
  'cimd.fetched': 'allow',
  /** a CIMD client_id was refused: its URL, the fetch or the document (reason = the refusal code) */
  'cimd.refused': 'deny',

  'authorization.rejected': 'deny',
  /** requests beyond RATE_LIMIT_AUTHORIZE, one row per address and minute */
  'authorization.rejected_aggregate': 'deny',

  'consent.shown': 'info',
  'consent.approved': 'allow',
  'consent.denied': 'deny',
  'consent.skipped': 'allow',
  'consent.recorded': 'allow',
  'consent.rejected': 'deny',
  'consent.revoked': 'info',
  /** housekeeping ended a consent that expired unrevoked: its grant's tokens and its upstream token (U asked to revoke it) */
  'consent.expired': 'info',

  'upstream.redirected': 'info',
  'upstream.callback_succeeded': 'allow',
  'upstream.callback_failed': 'deny',
  'upstream.token_refreshed': 'info',
  'upstream.refresh_failed': 'error',
  'upstream.token_revoked': 'info',
  /** U did not revoke an upstream token P let go of within a week of attempts (src/consent/upstream-revocations.ts): revoke it at U by hand */
  'upstream.revocation_abandoned': 'error',

  'token.issued': 'allow',
  'token.rejected': 'deny',
  /** requests beyond RATE_LIMIT_TOKEN, one row per address and minute */
  'token.rejected_aggregate': 'deny',
  'token.revoked': 'info',
  'grant.revoked': 'info',

  'gateway.forwarded': 'allow',
  'gateway.rejected': 'deny',
  /** unauthenticated refusals, one row per address, reason and minute (src/audit/refusal-tally.ts) */
  'gateway.rejected_aggregate': 'deny',
  'gateway.upstream_failed': 'error',
  /** GW-01: a forwarded request ended while R's answer was still open, its token no longer passing (reason: the token check's) */
  'gateway.response_cut': 'deny',
  /** GW-15: a tools/call whose token lacks the tool's scope (MCP_TOOL_SCOPES); details name the tools and the missing scopes */
  'gateway.tool_refused': 'deny',
  // GW-13: R echoed U's token and it was redacted. 'deny': what was withheld is exactly what an
  // attacking client (or a prompt steering a tool that reflects requests) would be after, so it
  // belongs with the blocked attempts an admin reviews.
  'gateway.leak_blocked': 'deny',

  'admin.login': 'allow',
  'admin.login_denied': 'deny',
  'admin.logout': 'info',
  'admin.client_disabled': 'info',
  'admin.client_enabled': 'info',
  'admin.client_deleted': 'info',
  'admin.consent_revoked': 'info',
  'admin.audit_verified': 'info',
  'admin.audit_exported': 'info',
  'admin.rejected': 'deny',
  'admin.rejected_aggregate': 'deny',

  'account.signed_in': 'allow',
  /** refusals without a session at /account and its sign-in button, per address, reason and minute */
  'account.rejected_aggregate': 'deny',
  'account.consent_revoked': 'info',
  /** a signed-in user's request refused on /account (reason csrf, not_found) */
  'account.rejected': 'deny',
  'account.signed_out': 'info',

  'cli.client_disabled': 'info',
  'cli.client_enabled': 'info',
  'cli.client_deleted': 'info',
  'cli.consent_revoked': 'info',
  /** `audit checkpoint-reset`: a new checkpoint file started at this row; details: what the replaced file recorded (status, seq, mac, key_id, ts) and the chain's head before */
  'cli.audit_checkpoint_reset': 'info',
} as const satisfies Record<string, Outcome>;

export type Outcome = 'allow' | 'deny' | 'error' | 'info';
export type AuditEvent = keyof typeof AUDIT_EVENTS;

export function isAuditEvent(name: string): name is AuditEvent {
  return Object.hasOwn(AUDIT_EVENTS, name);
}
