/**
 * An in-memory OAuth provider as a host implements it for the MCP TypeScript SDK v2
 * (`@modelcontextprotocol/client`): stores the client information, tokens, PKCE verifier and
 * discovery state, and records the URL the SDK asks the host to open. The SDK v1 counterpart is
 * test/helpers/mcp-client.ts. Used by the SDK v2, step-up and CIMD end-to-end tests.
 */
import { randomBytes } from 'node:crypto';
import type { OAuthClientMetadata, OAuthClientProvider, OAuthDiscoveryState, StoredOAuthClientInformation, StoredOAuthTokens } from '@modelcontextprotocol/client';

export class MemoryV2Provider implements OAuthClientProvider {
  info: StoredOAuthClientInformation | undefined;
  stored: StoredOAuthTokens | undefined;
  verifier = '';
  discovery: OAuthDiscoveryState | undefined;
  /** the URL the SDK last asked the host to open */
  authorizationUrl: URL | undefined;
  /** the last `state` handed to the SDK */
  lastState = '';

  /** `statePrefix` marks this client's states; a `clientMetadataUrl` makes it a CIMD client (no registration). */
  constructor(
    readonly callbackUrl: string,
    readonly clientName: string,
    readonly options: { statePrefix?: string; clientMetadataUrl?: string } = {},
  ) {}
  get clientMetadataUrl(): string | undefined {
    return this.options.clientMetadataUrl;
  }
  get redirectUrl() {
    return this.callbackUrl;
  }
  get clientMetadata(): OAuthClientMetadata {
    return { client_name: this.clientName, redirect_uris: [this.callbackUrl], grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'], token_endpoint_auth_method: 'none' };
  }
  state() {
    this.lastState = `${this.options.statePrefix ?? 'v2'}-${randomBytes(16).toString('base64url')}`;
    return this.lastState;
  }
  clientInformation() {
    return this.info;
  }
  saveClientInformation(info: StoredOAuthClientInformation) {
    this.info = info;
  }
  tokens() {
    return this.stored;
  }
  saveTokens(tokens: StoredOAuthTokens) {
    this.stored = tokens;
  }
  redirectToAuthorization(url: URL) {
    this.authorizationUrl = url;
  }
  saveCodeVerifier(verifier: string) {
    this.verifier = verifier;
  }
  codeVerifier() {
    return this.verifier;
  }
  saveDiscoveryState(state: OAuthDiscoveryState) {
    this.discovery = state;
  }
  discoveryState() {
    return this.discovery;
  }
}
