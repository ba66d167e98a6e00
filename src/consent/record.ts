/**
 * Recording an approval after the fresh upstream login (DESIGN §2 step 6) — ONE database
 * transaction that:
 *   records the consent for (subject, client, redirect URI, resource), bound to the browser that
 *   clicked Approve (CONS-02/16, src/consent/decision.ts) — superseding an older one for the same
 *   key, whose grant and tokens are revoked (its upstream token at U after the commit,
 *   src/consent/revocation.ts) —, creates the grant with exactly the consented scopes (AT-23:
 *   those approved, plus, on a step-up, those this user had already granted here in this browser,
 *   `grantedBefore` in src/consent/decision.ts),
 *   seals U's tokens against the grant (UP-07), opens or renews P's browser session for the
 *   subject, and stores the interaction result (login + consent), from which oidc-provider
 *   redirects to the client's validated redirect URI with `code`, `state` and `iss` (TOK-04: the
 *   code is bound to the client, redirect URI, PKCE challenge, resource, scopes and grant).
 * Every statement issued inside the transaction — by the stores and by oidc-provider's adapter
 * (grant.save(), interaction.save()) — joins it through the driver's async context, on SQLite and
 * on PostgreSQL alike (src/db/sql.ts): a failure anywhere rolls all of it back.
 */
import type Provider from 'oidc-provider';
import type { Grant } from 'oidc-provider';
import type { Config } from '../config/load.js';
import type { Consent } from '../store/consents.js';
import type { Stores } from '../store/index.js';
import type { AuthorizeTransaction } from '../store/upstream-transactions.js';
import type { UpstreamIdentity, UpstreamTokens } from '../upstream/presets.js';
import { offeredScopes } from '../oauth/scopes.js';
import type { Revocation } from './revocation.js';
import { grantedBefore } from './decision.js';
import { saveInteractionResult } from '../provider/interaction-result.js';

export interface RecordDeps {
  config: Readonly<Config>;
  provider: Provider;
  stores: Pick<Stores, 'consents' | 'upstreamTokens' | 'browserSessions' | 'clientsMeta' | 'models' | 'transaction'>;
  revocation: Pick<Revocation, 'revokeInTransaction' | 'revokeAtUpstreamAfterCommit'>;
}

/** Nothing was recorded: the client was disabled or deleted while the user signed in at U. */
export interface RefusedAuthorization {
  refused: 'client_disabled' | 'client_gone';
}

export interface RecordedAuthorization {
  returnTo: string;
  grantId: string;
  consent: Consent;
  /** a new session id to set as the cookie, when one was opened */
  sessionId: string | undefined;
  superseded: string | undefined;
}

/**
 * Exactly the consented scopes (AT-23). oidc-provider checks MCP scopes both as provider scopes
 * (they are listed for DCR, interop F5) and as resource scopes, so both are granted.
 */
function grantFor(deps: RecordDeps, subject: string, tx: AuthorizeTransaction): Grant {
  const { provider, config } = deps;
  const grant = new provider.Grant({ accountId: subject, clientId: tx.clientId });
  const offered = new Set(offeredScopes(config));
  const consented = tx.scopes.filter((s) => offered.has(s));
  const resourceScopes = consented.filter((s) => config.mcpScopes.includes(s));
  if (consented.length) grant.addOIDCScope(consented.join(' '));
  if (resourceScopes.length) grant.addResourceScope(tx.resource, resourceScopes.join(' '));
  return grant;
}

/** P's browser session for the subject: renewed, or new (a new subject in this browser gets a new id: no fixation across accounts). */
async function sessionFor(deps: RecordDeps, currentSessionId: string | undefined, identity: UpstreamIdentity, now: number): Promise<string | undefined> {
  const { browserSessions } = deps.stores;
  const current = await browserSessions.find(currentSessionId, now);
  if (current && current.subject === identity.subject) {
    await browserSessions.seen(currentSessionId as string, now);
    return undefined;
  }
  if (current) await browserSessions.close(currentSessionId as string);
  return browserSessions.open(identity.subject, identity.displayName, deps.config.ttl.session, now);
}

/**
 * May an approval for the client still be recorded? Not once an admin disabled or deleted it
 * (review 2026-12-07): those cascades revoke the consents that exist when they run, so one
 * recorded while the user was at U outlived both — active, skipped without asking once the client
 * was enabled again, its upstream token never revoked at U (UP-08). The client's row is locked for
 * the transaction (`lockedStanding`): a disabling or deletion committed first is seen here; one
 * that comes later waits for this approval, and its cascade then finds its consent. A client with
 * no clients_meta row at all is judged by its registration (rows older than clients_meta).
 */
async function clientStanding(stores: RecordDeps['stores'], clientId: string): Promise<'ok' | RefusedAuthorization['refused']> {
  const meta = await stores.clientsMeta.lockedStanding(clientId);
  if (meta) return meta.disabled_at === null ? 'ok' : 'client_disabled';
  return (await stores.models.getClient(clientId)) ? 'ok' : 'client_gone';
}

/** Record everything and return where the browser goes next (the resume URL); undefined when the interaction is gone. */
export async function recordAuthorization(
  deps: RecordDeps,
  currentSessionId: string | undefined,
  tx: AuthorizeTransaction,
  identity: UpstreamIdentity,
  tokens: UpstreamTokens,
): Promise<RecordedAuthorization | RefusedAuthorization | undefined> {
  const { stores, config, revocation } = deps;
  const subject = identity.subject;
  // Nothing recorded (the interaction gone, the client refused, the transaction failed): U's fresh
  // token is dropped, not revoked — at an upstream whose revocation ends the whole upstream grant
  // (RFC 7009 §2.1; oidc-provider, Google) that would end the user's other connections through P
  // (SECURITY.md, "Actions cascade and are audited").
  const interaction = await deps.provider.Interaction.find(tx.interactionUid);
  if (!interaction) return undefined;
  const now = Date.now();
  const key = { subject, clientId: tx.clientId, redirectUri: tx.redirectUri, resource: tx.resource };

  const recorded = await stores.transaction(async () => {
    // First: another approval of this key waits here until this one commits, then supersedes it (ConsentStore.lockKey).
    await stores.consents.lockKey(key);
    const standing = await clientStanding(stores, tx.clientId);
    if (standing !== 'ok') return { refused: standing } as const;
    const previous = await stores.consents.unrevoked(key);
    // Step-up: what this user already granted here in this browser, and the page showed as already allowed, is kept (src/consent/decision.ts).
    const kept = grantedBefore(previous, subject, key, tx.browserHash, now, tx.shownAsKept ?? []);
    const scopes = [...new Set([...kept, ...tx.scopes])];
    const grantId = await grantFor(deps, subject, { ...tx, scopes }).save();
    if (previous) {
      // The superseded grant's upstream token is revoked at U too, once this commits (or, its
      // COMMIT's answer lost, once a read finds it committed), like every other cascade (src/consent/revocation.ts).
      revocation.revokeAtUpstreamAfterCommit(previous.grant_id, await revocation.revokeInTransaction(previous.grant_id, 'superseded', now));
    }
    const consent = await stores.consents.insert({
      ...key,
      scopes,
      upstreamScopes: tx.upstreamScopes,
      grantedAt: now,
      expiresAt: now + config.ttl.consent * 1000,
      grantId,
      browserHash: tx.browserHash ?? null,
    });
    await stores.upstreamTokens.save(grantId, subject, { accessToken: tokens.accessToken, refreshToken: tokens.refreshToken, expiresAt: tokens.expiresAt, scopes: tokens.scope });
    const sessionId = await sessionFor(deps, currentSessionId, identity, now);
    await saveInteractionResult(interaction, { login: { accountId: subject }, consent: { grantId } });
    return { grantId, consent, sessionId, superseded: previous?.grant_id };
  });
  if (recorded.refused) return { refused: recorded.refused };
  return { returnTo: interaction.returnTo, grantId: recorded.grantId, consent: recorded.consent, sessionId: recorded.sessionId, superseded: recorded.superseded };
}
