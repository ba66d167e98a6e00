/**
 * Bridge from oidc-provider's events to the audit log (style C8) and to P's own bookkeeping:
 * - registration_create.success/error → registration.accepted/rejected, clients_meta provenance
 * - authorization.error                → authorization.rejected
 * - grant.success/error                → token.issued/rejected (and the client's last use)
 * - grant.revoked                      → grant.revoked, then the revocation cascade (consent,
 *                                        upstream token), e.g. after refresh-token reuse (RT-02)
 * - server_error                       → error log with the request id (a busy database: a
 *                                        warning, the request marked for its 503)
 * - grant.error with a code or refresh token consumed concurrently (ReplayedGrantSource, the
 *   adapter's atomic consume) → token.rejected, then grant.revoked as for a replay (TOK-05, RT-02)
 * Every write is committed before the response is sent: oidc-provider does not await its
 * listeners, so each handler hands its writes to `beforeResponse` (src/http/request-context.ts),
 * which the provider's responses wait for (src/provider/configuration.ts); a failure is logged.
 */
import type Provider from 'oidc-provider';
import type { Client, KoaContextWithOIDC } from 'oidc-provider';
import type { Logger } from 'pino';
import type { Audit, AuditEntry } from '../audit/audit.js';
import { beforeResponse, inOrder, requestContext } from '../http/request-context.js';
import { ReplayedGrantSource } from './configuration.js';
import type { ClientsMetaStore } from '../store/clients-meta.js';
import { redirectHosts } from '../oauth/redirect-uri.js';
import { markDatabaseBusy } from '../errors/render.js';
import { capOptional, capString } from '../audit/limits.js';
import { failureLevel } from '../errors/database-unavailable.js';

export interface EventDeps {
  audit: Audit;
  clientsMeta: ClientsMetaStore;
  log: Logger;
  /** called after oidc-provider revoked a grant by itself (refresh token reuse, code replay) */
  onGrantRevoked?: (grantId: string, reason: string) => Promise<unknown>;
}

type OidcError = Error & { error?: string; error_description?: string; error_detail?: string; expose?: boolean };

function clientIdOf(ctx: KoaContextWithOIDC): string | undefined {
  const fromEntity = ctx.oidc?.client?.clientId;
  if (fromEntity) return fromEntity;
  const raw = (ctx.oidc?.params as Record<string, unknown> | undefined)?.client_id ?? ctx.query?.client_id;
  return typeof raw === 'string' && raw.length <= 200 ? raw : undefined;
}

function errorDetails(err: OidcError): Record<string, unknown> {
  return { error_description: err.error_description, detail: err.error_detail };
}

/** Writes of one event, in order, after those of the request's earlier events; the response waits for them, a failure is logged. */
function commit(deps: EventDeps, event: string, work: () => Promise<unknown>): void {
  const done = inOrder(work);
  done.catch((err: unknown) => deps.log[failureLevel(err)]({ err, event }, 'could not record an authorization server event'));
  beforeResponse(done);
}

/** registration_create.success: the client's provenance in clients_meta, and registration.accepted. */
function registrationAccepted(deps: EventDeps, ctx: KoaContextWithOIDC, client: Client): void {
  const metadata = client.metadata();
  const uris = (metadata.redirect_uris as string[] | undefined) ?? [];
  const provenance = {
    client_id: client.clientId,
    registered_at: Date.now(),
    // Request-derived strings at rest are capped (DESIGN §9, src/audit/limits.ts).
    ip: capOptional(requestContext.getStore()?.ip),
    user_agent: capString(ctx.get('user-agent')) || null,
    client_name: typeof metadata.client_name === 'string' ? metadata.client_name : null,
    redirect_hosts: redirectHosts(uris).join(' '),
  };
  const details = {
    client_name: metadata.client_name,
    redirect_uris: uris,
    application_type: metadata.application_type,
    grant_types: metadata.grant_types,
    token_endpoint_auth_method: metadata.token_endpoint_auth_method,
    software_id: metadata.software_id,
  };
  commit(deps, 'registration_create.success', async () => {
    await deps.clientsMeta.record(provenance);
    await deps.audit.record({ event: 'registration.accepted', clientId: client.clientId, details });
  });
}

/** registration_create.error → registration.rejected */
function registrationRejected(deps: EventDeps, err: OidcError): void {
  commit(deps, 'registration_create.error', () => deps.audit.record({ event: 'registration.rejected', reason: err.error ?? 'provider_error', details: errorDetails(err) }));
}

/** authorization.error → authorization.rejected */
function authorizationRejected(deps: EventDeps, ctx: KoaContextWithOIDC, err: OidcError): void {
  const entry = { event: 'authorization.rejected', reason: err.error ?? 'provider_error', clientId: clientIdOf(ctx), subject: ctx.oidc?.session?.accountId, details: errorDetails(err) } as const;
  commit(deps, 'authorization.error', () => deps.audit.record(entry));
}

/** grant.success → token.issued, and the client's last use. */
function tokenIssued(deps: EventDeps, ctx: KoaContextWithOIDC): void {
  const {
    AccessToken: at,
    RefreshToken: rt,
    Client: client,
  } = ctx.oidc.entities as Record<string, { accountId?: string; clientId?: string; scope?: string; aud?: string | string[]; grantId?: string } | undefined>;
  const clientId = client?.clientId;
  const details = {
    grant_id: at?.grantId,
    scope: at?.scope,
    audience: at?.aud,
    refresh_token_issued: ctx.body && typeof ctx.body === 'object' ? 'refresh_token' in ctx.body : rt !== undefined,
  };
  const reason = String(ctx.oidc.params?.grant_type ?? 'unknown');
  commit(deps, 'grant.success', async () => {
    if (clientId) await deps.clientsMeta.touch(clientId);
    await deps.audit.record({ event: 'token.issued', clientId, subject: at?.accountId, reason, details });
  });
}

/** grant.error → token.rejected; a concurrent replay (ReplayedGrantSource) then revokes its grant, as a replay does. */
function tokenRejected(deps: EventDeps, ctx: KoaContextWithOIDC, err: OidcError): void {
  const entry: AuditEntry = { event: 'token.rejected', reason: err.error ?? 'provider_error', clientId: clientIdOf(ctx), details: { grant_type: ctx.oidc?.params?.grant_type, ...errorDetails(err) } };
  if (err instanceof ReplayedGrantSource && err.grantId) return grantRevoked(deps, ctx, err.grantId, entry);
  commit(deps, 'grant.error', () => deps.audit.record(entry));
}

/** revocation.error → token.rejected (endpoint: revocation) */
function revocationRejected(deps: EventDeps, ctx: KoaContextWithOIDC, err: OidcError): void {
  const entry = { event: 'token.rejected', reason: err.error ?? 'provider_error', clientId: clientIdOf(ctx), details: { endpoint: 'revocation', ...errorDetails(err) } } as const;
  commit(deps, 'revocation.error', () => deps.audit.record(entry));
}

/**
 * grant.revoked → the revocation cascade (onGrantRevoked), then `rejected` (the replay's
 * token.rejected, when a replay caught by P revoked the grant) and grant.revoked. In that order
 * because on PostgreSQL every transaction takes the gateway generation row (the cascade's changes
 * bump it) before the audit chain's lock (its audit rows), as a disabling or a revocation does: a
 * replay at /token that audited first and then bumped, and a disabling on another replica that
 * bumped first and then audited, each waited for the other's lock — a deadlock that PostgreSQL
 * ended by aborting one, possibly the replay's revocation (review 2026-12-07).
 */
function grantRevoked(deps: EventDeps, ctx: KoaContextWithOIDC | undefined, grantId: string, rejected?: AuditEntry): void {
  const route = ctx?.oidc?.route ?? 'internal';
  const reason = route === 'token' ? 'token_reuse_or_refresh_failure' : route;
  commit(deps, 'grant.revoked', async () => {
    await deps.onGrantRevoked?.(grantId, reason);
    if (rejected) await deps.audit.record(rejected);
    await deps.audit.record({ event: 'grant.revoked', reason, clientId: ctx ? clientIdOf(ctx) : undefined, details: { grant_id: grantId } });
  });
}

export function bridgeProviderEvents(provider: Provider, deps: EventDeps): void {
  provider.on('registration_create.success', (ctx: KoaContextWithOIDC, client: Client) => registrationAccepted(deps, ctx, client));
  provider.on('registration_create.error', (_ctx: KoaContextWithOIDC, err: OidcError) => registrationRejected(deps, err));
  provider.on('authorization.error', (ctx: KoaContextWithOIDC, err: OidcError) => authorizationRejected(deps, ctx, err));
  provider.on('grant.success', (ctx: KoaContextWithOIDC) => tokenIssued(deps, ctx));
  provider.on('grant.error', (ctx: KoaContextWithOIDC, err: OidcError) => tokenRejected(deps, ctx, err));
  provider.on('revocation.error', (ctx: KoaContextWithOIDC, err: OidcError) => revocationRejected(deps, ctx, err));
  provider.on('grant.revoked', (ctx: KoaContextWithOIDC | undefined, grantId: string) => grantRevoked(deps, ctx, grantId));
  provider.on('server_error', (ctx: KoaContextWithOIDC, err: Error) => {
    const requestId = (ctx.req as { id?: string }).id;
    // A busy database is answered 503 by the provider's error writers (src/errors/render.ts).
    if (markDatabaseBusy(ctx, err)) return deps.log.warn({ path: ctx.path, requestId }, 'database busy: request answered 503');
    deps.log.error({ err, path: ctx.path, requestId }, 'authorization server error');
  });
}
