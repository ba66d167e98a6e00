/**
 * The anchor for the authorization-server rows of `npm run bench` (issue 14): bare oidc-provider
 * 9.13.3 with its in-memory adapter (no `adapter` option, so its MemoryAdapter), configured in
 * the same shape as P's provider (src/provider/configuration.ts) for the measured requests:
 * - DCR of a public client (registration enabled, no registration access token; the client
 *   defaults, the auth methods, the extra metadata and the scopes of P's defaults);
 * - the refresh_token grant with rotation on every use, tokens living by the grant;
 * - opaque access tokens bound to the resource indicator (resourceIndicators: the MCP resource is
 *   the default and the only resource; the granted resource is reused; TTLs of P's defaults).
 * Nothing of P is imported: no express, no admission policy, no audit, no persistence.
 *
 * Tokens are minted up front, as p-server.ts seeds P's: each chain is a client registered over
 * HTTP (the body the bench sends P), a grant of `mcp:tools` on the MCP resource (what P's consent
 * records for a default authorization) and a refresh token of that grant. They are minted with the
 * provider's models rather than through /authorize because the bare provider has no consent page.
 * The in-memory adapter is an LRU of about 1,000–2,000 entries: a `/register` run evicts the
 * chains, so the runner asks for fresh ones (`POST /bench/mint`, not timed) before each `/token`
 * run. Prints `{ready, url, cpuPort, tokens}` and serves on loopback until killed.
 * With `BARE_STORE=sqlite` the same provider keeps its models in SQLite instead
 * (bare-sqlite-adapter.ts, a file in a temporary directory removed at exit): the second anchor,
 * which tells how much of P's distance from the first is keeping tokens in a database at all.
 */
import { createServer } from 'node:http';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sqliteAdapterFactory } from './bare-sqlite-adapter.js';
import Provider, { errors, type Configuration } from 'oidc-provider';
import { serveCpuStats } from './cpu-stats.js';
import { DCR_BODY } from './auth-server.js';

const SCOPE = 'mcp:tools';

let handler: ((req: import('node:http').IncomingMessage, res: import('node:http').ServerResponse) => void) | undefined;
const server = createServer((req, res) => {
  if (req.method === 'POST' && req.url?.startsWith('/bench/mint')) {
    const n = Number(new URL(req.url, 'http://x').searchParams.get('n') ?? 10);
    mint(n).then(
      (tokens) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(tokens));
      },
      (error: unknown) => {
        res.writeHead(500);
        res.end(String(error));
      },
    );
    return;
  }
  (handler as NonNullable<typeof handler>)(req, res);
});
server.keepAliveTimeout = 65_000;
await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
const resource = `${url}/mcp`;

const signing = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
const storeDir = process.env.BARE_STORE === 'sqlite' ? mkdtempSync(join(tmpdir(), 'bench-bare-sqlite-')) : undefined;
const store = storeDir ? sqliteAdapterFactory(join(storeDir, 'bare.db')) : undefined;
const configuration: Configuration = {
  ...(store ? { adapter: store.factory } : {}),
  jwks: { keys: [{ ...signing, kid: 'bench', use: 'sig', alg: 'RS256' }] } as Configuration['jwks'],
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  routes: { authorization: '/authorize', token: '/token', registration: '/register', revocation: '/revoke', jwks: '/jwks' },
  scopes: ['openid', 'offline_access', SCOPE],
  claims: { openid: ['sub'] },
  responseTypes: ['code'],
  pkce: { required: () => true },
  clientDefaults: { grant_types: ['authorization_code'], response_types: ['code'], token_endpoint_auth_method: 'none', id_token_signed_response_alg: 'RS256' },
  clientAuthMethods: ['none', 'client_secret_basic', 'client_secret_post'],
  extraClientMetadata: { properties: ['software_id', 'software_version'] },
  features: {
    devInteractions: { enabled: false },
    registration: { enabled: true, initialAccessToken: false, issueRegistrationAccessToken: false },
    registrationManagement: { enabled: false },
    revocation: { enabled: true },
    introspection: { enabled: false },
    userinfo: { enabled: false },
    rpInitiatedLogout: { enabled: false },
    pushedAuthorizationRequests: { enabled: false },
    dPoP: { enabled: false },
    claimsParameter: { enabled: false },
    clientCredentials: { enabled: false },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => resource,
      useGrantedResource: () => true,
      getResourceServerInfo: (_ctx, indicator) => {
        if (indicator !== resource) throw new errors.InvalidTarget();
        return { scope: SCOPE, audience: indicator, accessTokenTTL: 3600, accessTokenFormat: 'opaque' };
      },
    },
  },
  ttl: { AccessToken: 3600, AuthorizationCode: 60, Grant: 90 * 86400, IdToken: 3600, Interaction: 600, RefreshToken: 30 * 86400, Session: 600 },
  issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
  rotateRefreshToken: () => true,
  expiresWithSession: async () => false,
  findAccount: async (_ctx, sub) => ({ accountId: sub, claims: async () => ({ sub }) }),
  allowOmittingSingleRegisteredRedirectUri: true,
};
const provider = new Provider(url, configuration);
handler = provider.callback();

/** `n` fresh chains: a registered client, a grant of SCOPE on the resource, a refresh token. */
async function mint(n: number): Promise<{ clientId: string; refresh: string }[]> {
  const out: { clientId: string; refresh: string }[] = [];
  for (let i = 0; i < n; i++) {
    const reg = await fetch(`${url}/register`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: DCR_BODY });
    if (reg.status !== 201) throw new Error(`bare /register answered ${reg.status}`);
    const clientId = ((await reg.json()) as { client_id: string }).client_id;
    const client = await provider.Client.find(clientId);
    if (!client) throw new Error(`bare provider lost client ${clientId}`);
    const accountId = `bare-user-${randomBytes(6).toString('hex')}`;
    const grant = new provider.Grant({ accountId, clientId });
    grant.addOIDCScope(SCOPE);
    grant.addResourceScope(resource, SCOPE);
    const grantId = await grant.save();
    const rt = new provider.RefreshToken({ client, accountId, grantId, scope: SCOPE, resource, gty: 'authorization_code', authTime: Math.floor(Date.now() / 1000), expiresWithSession: false });
    out.push({ clientId, refresh: await rt.save() });
  }
  return out;
}

const tokens = await mint(Number(process.env.BENCH_TOKENS ?? 10));
const cpuPort = await serveCpuStats();
process.stdout.write(`${JSON.stringify({ ready: true, url, cpuPort, tokens })}\n`);
// Killed by the runner (SIGTERM) or with it (Ctrl-C: SIGINT to the process group): the temporary database goes too.
const stop = () => {
  void (store?.close() ?? Promise.resolve())
    .catch(() => undefined)
    .finally(() => {
      if (storeDir) rmSync(storeDir, { recursive: true, force: true });
      process.exit(0);
    });
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
