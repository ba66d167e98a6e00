/**
 * oidc-provider as P's authorization-server engine, configured for MCP clients. Each choice
 * names the rule it implements; interop.md §4 (F1–F19) lists the defaults this replaces.
 */
import Provider, { errors, type Configuration, type KoaContextWithOIDC, type ErrorOut, type Adapter, type AdapterPayload } from 'oidc-provider';
import type { Config } from '../config/load.js';
import type { KeyRing } from '../crypto/keys.js';
import type { OidcModelStore } from '../store/oidc-models.js';
import { createInteractionPolicy } from './policy.js';
import { offeredScopes, stepUpScopes } from '../oauth/scopes.js';
import { widenStoredClient } from '../oauth/admission.js';
import { providerErrorBodies } from '../errors/render.js';
import { ProviderWithSafeErrorRedirects } from './error-redirect.js';
import { requestTransaction, routeOf } from './request-transaction.js';

/** Codes live one minute: clients redeem at once; OAuth 2.1 §4.1.2 allows at most ten (TOK-03). */
export const AUTHORIZATION_CODE_TTL = 60;
/** An unfinished authorization (consent + upstream login) may take ten minutes. */
export const INTERACTION_TTL = 600;
export const ID_TOKEN_TTL = 3600;

/** Paths of the provider's endpoints (relative to PUBLIC_URL). /authorize, /token and /register
 * are also the 2025-03-26 MCP fallback paths (DISC-15). */
export const PROVIDER_ROUTES = {
  authorization: '/authorize',
  token: '/token',
  registration: '/register',
  revocation: '/revoke',
  jwks: '/jwks',
} as const;

export interface ProviderDeps {
  config: Readonly<Config>;
  keys: KeyRing;
  models: OidcModelStore;
  jwks: { keys: Record<string, unknown>[] };
  /** one database transaction around fn (src/store/index.ts): /token, /register and /revoke run in one each */
  transaction: <T>(fn: () => Promise<T>) => Promise<T>;
  /** writes P's error page for oidc-provider's rendered errors */
  renderError(ctx: KoaContextWithOIDC, out: ErrorOut, error: Error): void;
  /** the revocation cascade's row locks, taken before the provider deletes a grant's tokens (AdapterOptions) */
  beforeRevokeByGrantId?: (grantId: string) => Promise<void>;
}

/**
 * A code or refresh token that another request consumed between oidc-provider's check of
 * `consumed` and its `consume()` (two redemptions at once, on one replica or two): the adapter's
 * atomic consume refused it. Answered as oidc-provider answers a replay — invalid_grant — and,
 * like a replay, it revokes the grant with everything issued under it (TOK-05, RT-02; the token
 * endpoint's events bridge does that: src/provider/events.ts).
 */
export class ReplayedGrantSource extends errors.InvalidGrant {
  constructor(
    model: string,
    readonly grantId: string | undefined,
  ) {
    super(`${model === 'RefreshToken' ? 'refresh token' : 'authorization code'} already consumed`);
  }
}

/** What oidc-provider deletes of a grant one by one (`destroy`): after the revocation cascade's rows (AdapterOptions.beforeRevokeByGrantId). */
const GRANT_MODELS = new Set(['Grant', 'AccessToken', 'RefreshToken']);

/** How the adapter presents stored clients to the provider (see adapterClass). */
export interface AdapterOptions {
  prefix?: string;
  hideDisabledClients?: boolean;
  hideCimdClients?: boolean;
  /** today's step-up scopes (MCP_TOOL_SCOPES, src/oauth/scopes.ts), added to a loaded client's scope ceiling */
  stepUpScopes?: readonly string[];
  /** PostgreSQL: before the provider deletes a grant, its codes or tokens (a replay, /revoke): the revocation cascade's row locks (Revocation.lockForCascade) */
  beforeRevokeByGrantId?: (grantId: string) => Promise<void>;
}

/**
 * oidc-provider's Adapter over the oidc_models store. `prefix` keeps another provider's models
 * apart (the demo IdP); `hideDisabledClients` makes a client disabled by an admin unknown to the
 * provider, so it can neither authorize nor redeem anything; `hideCimdClients` (CIMD_ENABLED=false)
 * does the same for every client stored from a metadata document. A client is loaded with its
 * `scope` ceiling widened by `stepUpScopes` under the rule registration applies (GW-15,
 * src/oauth/admission.ts `widenStoredClient`): a client registered before a tool scope was
 * configured can step up to it. Every write joins the transaction the caller runs in, if any
 * (src/consent/record.ts), on both engines.
 */
export function adapterClass(models: OidcModelStore, options: AdapterOptions = {}) {
  const prefix = options.prefix ?? '';
  /** A stored client as the provider sees it: unknown when hidden, its scope ceiling widened. */
  const loadClient = async (name: string, id: string) => {
    const found = name === 'Client' && options.hideDisabledClients ? await models.findClientUnlessDisabled(id, options.hideCimdClients) : await models.find(name, id);
    return found && widenStoredClient(found, options.stepUpScopes ?? []);
  };
  return class StoreAdapter implements Adapter {
    private readonly name: string;
    /** P's own code or refresh token: its grant is the provider's next read (OidcModelStore.findWithGrant) */
    private readonly namesGrant: 'RefreshToken' | 'AuthorizationCode' | undefined;
    constructor(model: string) {
      this.name = `${prefix}${model}`;
      this.namesGrant = prefix === '' && (model === 'RefreshToken' || model === 'AuthorizationCode') ? model : undefined;
    }
    async upsert(id: string, payload: AdapterPayload, expiresIn: number): Promise<void> {
      await models.upsert(this.name, id, payload as Record<string, unknown>, expiresIn);
    }
    async find(id: string): Promise<AdapterPayload | undefined> {
      if (this.name === `${prefix}Client`) return (await loadClient(this.name, id)) as AdapterPayload | undefined;
      if (this.namesGrant) return (await models.findWithGrant(this.namesGrant, id)) as AdapterPayload | undefined;
      return (await models.find(this.name, id)) as AdapterPayload | undefined;
    }
    async findByUserCode(): Promise<AdapterPayload | undefined> {
      return undefined; // device flow is disabled
    }
    async findByUid(uid: string): Promise<AdapterPayload | undefined> {
      return (await models.findByUid(this.name, uid)) as AdapterPayload | undefined;
    }
    /** Atomic (TOK-05, RT-02): of two concurrent consumes one wins; the other is refused as a replay. */
    async consume(id: string): Promise<void> {
      const outcome = await models.consume(this.name, id);
      if (outcome.consumed) return;
      if (outcome.replayed) throw new ReplayedGrantSource(this.name, outcome.grantId);
      throw new errors.InvalidGrant('grant source not found');
    }
    async destroy(id: string): Promise<void> {
      // The cascade's rows before the grant's own (a grant, its access or refresh token: /revoke, a replay): one lock order (review 2026-12-08).
      if (options.beforeRevokeByGrantId && prefix === '' && GRANT_MODELS.has(this.name)) {
        const grantId = this.name === 'Grant' ? id : await models.grantOf(this.name, id);
        if (grantId) await options.beforeRevokeByGrantId(grantId);
      }
      await models.destroy(this.name, id);
    }
    async revokeByGrantId(grantId: string): Promise<void> {
      await options.beforeRevokeByGrantId?.(grantId);
      await models.revokeByGrantId(grantId);
    }
  };
}

/** The provider's cookies: signed with P's keys, never readable by scripts. */
function cookies(keys: KeyRing): Configuration['cookies'] {
  return {
    keys: keys.oidcCookieKeys(),
    long: { httpOnly: true, sameSite: 'lax', signed: true },
    short: { httpOnly: true, sameSite: 'lax', signed: true },
  };
}

/** Which endpoints and extensions exist: only what an MCP authorization server needs. */
function features(config: Readonly<Config>): Configuration['features'] {
  return {
    devInteractions: { enabled: false },
    // REG-13: no RFC 7592 management, so no registration access token or client URI.
    // DESIGN §10: offered (and `registration_endpoint` advertised) only when DCR_ENABLED.
    registration: { enabled: config.dcrEnabled, initialAccessToken: false, issueRegistrationAccessToken: false },
    registrationManagement: { enabled: false },
    revocation: { enabled: true },
    introspection: { enabled: false },
    userinfo: { enabled: false },
    rpInitiatedLogout: { enabled: false },
    pushedAuthorizationRequests: { enabled: false },
    dPoP: { enabled: false },
    claimsParameter: { enabled: false },
    clientCredentials: { enabled: false },
    resourceIndicators: resourceIndicators(config),
  };
}

/**
 * RFC 8707 / F3, F4: the MCP resource (and one per GATEWAY_ROUTES prefix) are the only
 * resources; the MCP resource is the default when a client sends none (AUTHZ-06); the
 * resource is the access-token audience (TOK-07), and the granted resource is reused at the
 * token endpoint.
 */
function resourceIndicators(config: Readonly<Config>): NonNullable<Configuration['features']>['resourceIndicators'] {
  return {
    enabled: true,
    defaultResource: () => config.urls.mcpResource,
    useGrantedResource: () => true,
    getResourceServerInfo: (_ctx, resourceIndicator) => {
      if (!config.resources.includes(resourceIndicator)) {
        // AUTHZ-05: anything else is invalid_target.
        throw new errors.InvalidTarget();
      }
      return {
        scope: config.mcpScopes.join(' '),
        audience: resourceIndicator,
        accessTokenTTL: config.ttl.accessToken,
        accessTokenFormat: 'opaque',
      };
    },
  };
}

/** How long each model lives (seconds). */
function ttl(config: Readonly<Config>): Configuration['ttl'] {
  return {
    AccessToken: config.ttl.accessToken,
    AuthorizationCode: AUTHORIZATION_CODE_TTL,
    Grant: config.ttl.consent,
    IdToken: ID_TOKEN_TTL,
    Interaction: INTERACTION_TTL,
    RefreshToken: config.ttl.refreshToken,
    // The provider's session lives for one authorization only (src/http/provider-mount.ts).
    Session: INTERACTION_TTL,
  };
}

/** Refresh tokens: who gets one, rotation, and what they live by. */
const refreshTokens: Pick<Configuration, 'issueRefreshToken' | 'rotateRefreshToken' | 'expiresWithSession'> = {
  // F8: refresh tokens for every client that registered the refresh_token grant, whether or
  // not it asked for offline_access (SDK v1 never does).
  issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
  // RT-01: rotate on every use; oidc-provider revokes the grant when a rotated token is reused (RT-02).
  rotateRefreshToken: () => true,
  // Tokens live by the grant (consent), not by oidc-provider's browser session.
  expiresWithSession: async () => false,
};

/** The interaction is P's consent page (/interaction/:uid, src/flow/4-consent.ts): where it starts, what it may reuse. */
function interactions(config: Readonly<Config>, scopes: ReturnType<typeof offeredScopes>): Pick<Configuration, 'interactions' | 'loadExistingGrant' | 'findAccount'> {
  return {
    interactions: {
      url: (_ctx, interaction) => config.urls.path(`/interaction/${interaction.uid}`),
      policy: createInteractionPolicy(scopes),
    },
    // DESIGN §7: only the grant named by P's own interaction result is ever loaded; the
    // provider's session never shortcuts the consent page.
    loadExistingGrant: async (ctx) => {
      const grantId = ctx.oidc.result?.consent?.grantId;
      return grantId ? ctx.oidc.provider.Grant.find(grantId) : undefined;
    },
    findAccount: async (_ctx, sub) => ({ accountId: sub, claims: async () => ({ sub }) }),
  };
}

/** oidc-provider's configuration for P, from the named parts above. */
function providerConfiguration(deps: ProviderDeps): Configuration {
  const { config, keys, models } = deps;
  const scopes = offeredScopes(config);
  return {
    adapter: adapterClass(models, {
      hideDisabledClients: true,
      hideCimdClients: !config.cimd.enabled,
      stepUpScopes: stepUpScopes(config),
      ...(deps.beforeRevokeByGrantId ? { beforeRevokeByGrantId: deps.beforeRevokeByGrantId } : {}),
    }),
    jwks: deps.jwks as Configuration['jwks'],
    cookies: cookies(keys),
    routes: PROVIDER_ROUTES,
    scopes,
    claims: { openid: ['sub'] },
    // F11: authorization code only; no implicit or hybrid leftovers in metadata.
    responseTypes: ['code'],
    // F10, AUTHZ-03/04: PKCE for every client, S256 only (oidc-provider 9 supports no other method).
    pkce: { required: () => true },
    clientDefaults: {
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
      id_token_signed_response_alg: 'RS256',
    },
    // Only the methods the admission policy accepts (src/flow/2-register.ts).
    clientAuthMethods: ['none', 'client_secret_basic', 'client_secret_post'],
    extraClientMetadata: { properties: ['software_id', 'software_version'] },
    features: features(config),
    ttl: ttl(config),
    ...refreshTokens,
    ...interactions(config, scopes),
    renderError: async (ctx, out, error) => deps.renderError(ctx, out, error),
    // AUTHZ-02: a client with several redirect URIs must name one.
    allowOmittingSingleRegisteredRedirectUri: true,
    // DESIGN §10: CIMD is P's own (src/cimd/, resolved before the provider looks a client up: src/flow/3-cimd.ts),
    // not oidc-provider's experimental feature; the metadata flag is set here when CIMD_ENABLED.
    discovery: { service_documentation: undefined, ...(config.cimd.enabled ? { client_id_metadata_document_supported: true } : {}) },
  };
}

export function createProvider(deps: ProviderDeps): Provider {
  // AUTHZ-12: error redirects to the client carry only error, our description, state and iss.
  const provider: Provider = new ProviderWithSafeErrorRedirects(deps.config.urls.issuer, providerConfiguration(deps));
  // DESIGN §9: its JSON errors, like its pages (renderError), carry no library message or stack.
  provider.use(providerErrorBodies());
  // DESIGN §3: what its event listeners write (audit rows, revocations) is committed before the
  // response goes out (the provider does not await listeners: src/provider/events.ts); /token,
  // /register and /revoke are one transaction each, with those writes (issue 13).
  const atomic = [PROVIDER_ROUTES.token, PROVIDER_ROUTES.registration, PROVIDER_ROUTES.revocation];
  // A /token request's code or refresh token is read ahead, with the provider's client lookup (issue 11: one round trip fewer on PostgreSQL).
  // Not for a request naming no client (no client_id, client_assertion or Authorization): the provider refuses it without
  // reading any token (an OAuth-Client-Attestation header alone: a client lookup, then invalid_client), so its token is not read.
  const readAhead = (ctx: KoaContextWithOIDC) => {
    if (routeOf(ctx.path) !== PROVIDER_ROUTES.token) return;
    const body = (ctx.req as { body?: Record<string, unknown> }).body;
    if (typeof body?.client_id !== 'string' && typeof body?.client_assertion !== 'string' && ctx.get('authorization') === '') return;
    if (body?.grant_type === 'refresh_token' && typeof body.refresh_token === 'string') deps.models.readAhead('RefreshToken', body.refresh_token);
    else if (body?.grant_type === 'authorization_code' && typeof body.code === 'string') deps.models.readAhead('AuthorizationCode', body.code);
  };
  provider.use(requestTransaction(atomic, deps.transaction, readAhead) as Parameters<Provider['use']>[0]);
  // Endpoint URLs in metadata come from the request; the express layer pins host and protocol
  // to PUBLIC_URL (src/http/provider-mount.ts), so the provider trusts those headers.
  provider.proxy = true;
  return provider;
}
