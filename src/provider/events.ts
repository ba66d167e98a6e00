/**
 * Bridge from oidc-provider's events to the audit log (style C8) and to P's own bookkeeping:
 * - registration_create.success/error → registration.accepted/rejected, clients_meta provenance
 * - authorization.error                → authorization.rejected
 * - grant.success/error                → token.issued/rejected (and the client's last use)
 * - grant.revoked                      → grant.revoked, then the revocation cascade (consent,
 *                                        upstream token), e.g. after refresh-token reuse (RT-02)
 * - server_error                       → error log with the request id
 * Every record is committed before the response is sent (the handlers run synchronously inside
 * the request).
 */
import type Provider from 'oidc-provider';
import type { KoaContextWithOIDC } from 'oidc-provider';
import type { Logger } from 'pino';
import type { Audit } from '../audit/audit.js';
import { requestContext } from '../http/request-context.js';
import type { ClientsMetaStore } from '../store/clients-meta.js';
import { redirectHosts } from '../oauth/redirect-uri.js';
import { capOptional, capString } from '../audit/limits.js';

export interface EventDeps {
  audit: Audit;
  clientsMeta: ClientsMetaStore;
  log: Logger;
  /** called after oidc-provider revoked a grant by itself (refresh token reuse, code replay) */
  onGrantRevoked?: (grantId: string, reason: string) => void;
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

export function bridgeProviderEvents(provider: Provider, deps: EventDeps): void {
  const { audit, clientsMeta, log } = deps;

  provider.on('registration_create.success', (ctx: KoaContextWithOIDC, client) => {
    const metadata = client.metadata();
    const uris = (metadata.redirect_uris as string[] | undefined) ?? [];
    clientsMeta.record({
      client_id: client.clientId,
      registered_at: Date.now(),
      // Request-derived strings at rest are capped (DESIGN §9, src/audit/limits.ts).
      ip: capOptional(requestContext.getStore()?.ip),
      user_agent: capString(ctx.get('user-agent')) || null,
      client_name: typeof metadata.client_name === 'string' ? metadata.client_name : null,
      redirect_hosts: redirectHosts(uris).join(' '),
    });
    audit.record({
      event: 'registration.accepted',
      clientId: client.clientId,
      details: {
        client_name: metadata.client_name,
        redirect_uris: uris,
        application_type: metadata.application_type,
        grant_types: metadata.grant_types,
        token_endpoint_auth_method: metadata.token_endpoint_auth_method,
        software_id: metadata.software_id,
      },
    });
  });

  provider.on('registration_create.error', (_ctx: KoaContextWithOIDC, err: OidcError) => {
    audit.record({ event: 'registration.rejected', reason: err.error ?? 'provider_error', details: errorDetails(err) });
  });

  provider.on('authorization.error', (ctx: KoaContextWithOIDC, err: OidcError) => {
    audit.record({
      event: 'authorization.rejected',
      reason: err.error ?? 'provider_error',
      clientId: clientIdOf(ctx),
      subject: ctx.oidc?.session?.accountId,
      details: errorDetails(err),
    });
  });

  provider.on('grant.success', (ctx: KoaContextWithOIDC) => {
    const {
      AccessToken: at,
      RefreshToken: rt,
      Client: client,
    } = ctx.oidc.entities as Record<string, { accountId?: string; clientId?: string; scope?: string; aud?: string | string[]; grantId?: string } | undefined>;
    const clientId = client?.clientId;
    if (clientId) clientsMeta.touch(clientId);
    audit.record({
      event: 'token.issued',
      clientId,
      subject: at?.accountId,
      reason: String(ctx.oidc.params?.grant_type ?? 'unknown'),
      details: {
        grant_id: at?.grantId,
        scope: at?.scope,
        audience: at?.aud,
        refresh_token_issued: ctx.body && typeof ctx.body === 'object' ? 'refresh_token' in ctx.body : rt !== undefined,
      },
    });
  });

  provider.on('grant.error', (ctx: KoaContextWithOIDC, err: OidcError) => {
    audit.record({
      event: 'token.rejected',
      reason: err.error ?? 'provider_error',
      clientId: clientIdOf(ctx),
      details: { grant_type: ctx.oidc?.params?.grant_type, ...errorDetails(err) },
    });
  });

  provider.on('revocation.error', (ctx: KoaContextWithOIDC, err: OidcError) => {
    audit.record({ event: 'token.rejected', reason: err.error ?? 'provider_error', clientId: clientIdOf(ctx), details: { endpoint: 'revocation', ...errorDetails(err) } });
  });

  provider.on('grant.revoked', (ctx: KoaContextWithOIDC | undefined, grantId: string) => {
    const route = ctx?.oidc?.route ?? 'internal';
    const reason = route === 'token' ? 'token_reuse_or_refresh_failure' : route;
    audit.record({ event: 'grant.revoked', reason, clientId: ctx ? clientIdOf(ctx) : undefined, details: { grant_id: grantId } });
    deps.onGrantRevoked?.(grantId, reason);
  });

  provider.on('server_error', (ctx: KoaContextWithOIDC, err: Error) => {
    log.error({ err, path: ctx.path, requestId: (ctx.req as { id?: string }).id }, 'authorization server error');
  });
}
