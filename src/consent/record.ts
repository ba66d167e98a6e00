/**
 * Step 6 — handing the decision back to oidc-provider, which then redirects to the client's
 * validated redirect URI with `code`, `state` and `iss` (DESIGN §2 step 6, TOK-04: the code is
 * bound to the client, redirect URI, PKCE challenge, resource, scopes and grant).
 *
 * After a fresh upstream login, ONE database transaction:
 *   records the consent for (subject, client, redirect URI, resource), bound to the browser that
 *   clicked Approve (CONS-02/16, see 3-consent.ts) — superseding an older one for the same key,
 *   whose grant and tokens are revoked (its upstream token at U after the commit) —, creates the grant with exactly the
 *   consented scopes (AT-23), seals U's tokens against the grant (UP-07), opens or renews P's
 *   browser session for the subject, and stores the interaction result (login + consent).
 * Everything awaited inside the transaction resolves without I/O (oidc-provider's models write
 * through our synchronous SQLite adapter), so no other request's statements can interleave.
 */
import type { Request, Response } from 'express';
import type { Consent } from '../store/consents.js';
import type { AuthorizeTransaction } from '../store/upstream-transactions.js';
import type { UpstreamIdentity, UpstreamTokens } from '../upstream/presets.js';
import { BASE_SCOPES } from '../provider/configuration.js';
import type { FlowDeps } from '../flow/deps.js';

/** Skip path: the remembered consent's grant serves this authorization too. */
export async function finishWithExistingGrant(deps: FlowDeps, req: Request, res: Response, consent: Consent): Promise<void> {
  deps.stores.consents.touch(consent.grant_id);
  await deps.provider.interactionFinished(req, res, { login: { accountId: consent.subject }, consent: { grantId: consent.grant_id } }, { mergeWithLastSubmission: false });
}

export interface CompletedAuthorization {
  returnTo: string;
  grantId: string;
  consent: Consent;
  /** a new session id to set as the cookie, when one was opened */
  sessionId: string | undefined;
  superseded: string | undefined;
}

/** Callback path: record everything and return where the browser goes next (the resume URL). */
export async function completeNewAuthorization(
  deps: FlowDeps,
  currentSessionId: string | undefined,
  tx: AuthorizeTransaction,
  identity: UpstreamIdentity,
  tokens: UpstreamTokens,
): Promise<CompletedAuthorization | undefined> {
  const { provider, db, stores, config } = deps;
  const interaction = await provider.Interaction.find(tx.interactionUid);
  if (!interaction) return undefined;
  const now = Date.now();
  const subject = identity.subject;

  // Exactly the consented scopes (AT-23). oidc-provider checks MCP scopes both as provider
  // scopes (they are listed for DCR, interop F5) and as resource scopes, so both are granted.
  const grant = new provider.Grant({ accountId: subject, clientId: tx.clientId });
  const offered = new Set([...BASE_SCOPES, ...config.mcpScopes]);
  const consented = tx.scopes.filter((s) => offered.has(s));
  const resourceScopes = consented.filter((s) => config.mcpScopes.includes(s));
  if (consented.length) grant.addOIDCScope(consented.join(' '));
  if (resourceScopes.length) grant.addResourceScope(tx.resource, resourceScopes.join(' '));

  db.exec('BEGIN IMMEDIATE');
  try {
    const grantId = await grant.save();
    const previous = stores.consents.active({ subject, clientId: tx.clientId, redirectUri: tx.redirectUri, resource: tx.resource });
    let superseded: string | undefined;
    let supersededRevocation: ReturnType<FlowDeps['revocation']['revokeInTransaction']> | undefined;
    if (previous) {
      supersededRevocation = deps.revocation.revokeInTransaction(previous.grant_id, 'superseded', now);
      superseded = previous.grant_id;
    }
    const consent = stores.consents.insert({
      subject,
      clientId: tx.clientId,
      redirectUri: tx.redirectUri,
      resource: tx.resource,
      scopes: tx.scopes,
      upstreamScopes: tx.upstreamScopes,
      grantedAt: now,
      expiresAt: now + config.ttl.consent * 1000,
      grantId,
      browserHash: tx.browserHash ?? null,
    });
    stores.upstreamTokens.save(grantId, subject, { accessToken: tokens.accessToken, refreshToken: tokens.refreshToken, expiresAt: tokens.expiresAt, scopes: tokens.scope });
    const current = stores.browserSessions.find(currentSessionId, now);
    let sessionId: string | undefined;
    if (current && current.subject === subject) {
      stores.browserSessions.seen(currentSessionId as string, now);
    } else {
      // A new subject in this browser gets a new session id (no fixation across accounts).
      if (current) stores.browserSessions.close(currentSessionId as string);
      sessionId = stores.browserSessions.open(subject, identity.displayName, config.ttl.session, now);
    }
    interaction.result = { login: { accountId: subject }, consent: { grantId } };
    await interaction.save(Math.max(1, interaction.exp - Math.floor(now / 1000)));
    db.exec('COMMIT');
    // The superseded grant's upstream token is revoked at U too, after the commit, like every
    // other cascade (src/consent/revocation.ts).
    if (superseded && supersededRevocation) deps.revocation.revokeAtUpstreamAfterCommit(superseded, supersededRevocation);
    return { returnTo: interaction.returnTo, grantId, consent, sessionId, superseded };
  } catch (err) {
    if (db.inTransaction) db.exec('ROLLBACK');
    throw err;
  }
}

/** Store an error as the interaction's result, so resuming sends it to the client (UP-09). */
export async function failInteraction(deps: FlowDeps, interactionUid: string, error: 'access_denied' | 'server_error' | 'temporarily_unavailable', description: string): Promise<string | undefined> {
  const interaction = await deps.provider.Interaction.find(interactionUid);
  if (!interaction) return undefined;
  interaction.result = { error, error_description: description };
  await interaction.save(Math.max(1, interaction.exp - Math.floor(Date.now() / 1000)));
  return interaction.returnTo;
}
