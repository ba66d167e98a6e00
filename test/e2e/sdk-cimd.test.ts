/**
 * A real client with CIMD (issue 12): the MCP TypeScript SDK v1 (1.32.2) `auth()` given a
 * `clientMetadataUrl` sees `client_id_metadata_document_supported` in P's metadata and uses the
 * URL as its client_id instead of registering (SEP-991). P fetches the document over https —
 * through the fetcher's test route, which sends the CHECKED public address of `client.example` to
 * a loopback https server with a certificate for that name (TLS verified against it) — and the
 * flow completes through the consent page and U. The SDK refuses a non-https clientMetadataUrl,
 * so this is the https path end to end, not the http test allowance. The same with SDK v2
 * (`@modelcontextprotocol/client` 2.3.1), which also checks `iss` and calls a tool.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auth } from '@modelcontextprotocol/sdk/client/auth.js';
import { Client as V2Client, StreamableHTTPClientTransport as V2Transport, UnauthorizedError as V2Unauthorized } from '@modelcontextprotocol/client';
import { auditEvents } from '../helpers/app.js';
import { fakeResolver, httpsServer, recordingRoute, selfSignedCertificate, type Listener } from '../helpers/cimd.js';
import { MemoryOAuthProvider } from '../helpers/mcp-client.js';
import { MemoryV2Provider } from '../helpers/mcp-client-v2.js';
import { Browser, drive, startStack, type Stack } from '../helpers/stack.js';
import { sha256 } from '../../src/crypto/keys.js';

const CLIENT_ID = 'https://client.example/mcp/client-metadata.json';
const CALLBACK = 'http://127.0.0.1:48125/callback';
const PUBLIC_ADDRESS = '93.184.215.14';

class CimdProvider extends MemoryOAuthProvider {
  readonly clientMetadataUrl = CLIENT_ID;
}

const CALLBACK_V2 = 'http://127.0.0.1:48126/callback';
const CLIENT_ID_V2 = 'https://client.example/v2/client-metadata.json';

let docs: Listener;
let stack: Stack;
beforeAll(async () => {
  const tls = selfSignedCertificate(['client.example']);
  docs = await httpsServer(tls, (req, res) => {
    const v2 = req.url === new URL(CLIENT_ID_V2).pathname;
    res.setHeader('content-type', 'application/json');
    res.setHeader('cache-control', 'max-age=3600');
    res.end(
      JSON.stringify({
        client_id: v2 ? CLIENT_ID_V2 : CLIENT_ID,
        client_name: v2 ? 'SDK v2 CIMD client' : 'SDK CIMD client',
        redirect_uris: [v2 ? CALLBACK_V2 : CALLBACK],
        grant_types: ['authorization_code', 'refresh_token'],
        token_endpoint_auth_method: 'none',
      }),
    );
  });
  stack = await startStack({
    cimdFetch: { lookup: fakeResolver({ 'client.example': [PUBLIC_ADDRESS] }), testOnlyRoute: recordingRoute({ [PUBLIC_ADDRESS]: docs.port }), ca: tls.cert },
  });
});
afterAll(async () => {
  await stack?.close();
  await docs?.close();
});

describe('MCP SDK v1 auth() with a Client ID Metadata Document', () => {
  it('uses its metadata URL as client_id (no registration), authorizes through consent and refreshes', async () => {
    const serverUrl = `${stack.app.url}/mcp`;
    const provider = new CimdProvider(CALLBACK, 'SDK CIMD client');
    expect(await auth(provider, { serverUrl })).toBe('REDIRECT');
    const authorizationUrl = provider.authorizationUrl as URL;
    expect(authorizationUrl.searchParams.get('client_id')).toBe(CLIENT_ID);

    const result = await drive(new Browser(), authorizationUrl.href, CALLBACK, { login: 'cimd-user' });
    expect(result.seen).toEqual(['consent', 'upstream-login', 'upstream-consent']);
    expect(result.consentPage?.html).toContain('<strong>client.example</strong> says this is <bdi>SDK CIMD client</bdi>');
    expect(await auth(provider, { serverUrl, authorizationCode: result.callback.searchParams.get('code') as string })).toBe('AUTHORIZED');
    const tokens = provider.tokens();
    expect(await stack.app.runtime.stores.models.findAccessTokenByHash(sha256(tokens?.access_token as string))).toMatchObject({ aud: serverUrl, accountId: 'cimd-user', clientId: CLIENT_ID });
    expect(await auth(provider, { serverUrl })).toBe('AUTHORIZED'); // refresh
    expect(provider.tokens()?.refresh_token).not.toBe(tokens?.refresh_token);

    // One https fetch, SNI and Host the URL's host; nothing registered.
    expect(docs.requests).toMatchObject([{ url: '/mcp/client-metadata.json', host: 'client.example', servername: 'client.example', accept: 'application/json' }]);
    const events = (await auditEvents(stack.app)).map((e) => e.event);
    expect(events).toContain('cimd.fetched');
    expect(events).not.toContain('registration.accepted');
  });

  it('SDK v2: uses its metadata URL as client_id, checks iss, and calls a tool', async () => {
    const mcpUrl = new URL(`${stack.app.url}/mcp`);
    const provider = new MemoryV2Provider(CALLBACK_V2, 'SDK v2 CIMD client', { clientMetadataUrl: CLIENT_ID_V2 });
    const first = new V2Transport(mcpUrl, { authProvider: provider });
    await expect(new V2Client({ name: 'cimd-v2', version: '1.0.0' }).connect(first)).rejects.toBeInstanceOf(V2Unauthorized);
    const url = provider.authorizationUrl as URL;
    expect(url.searchParams.get('client_id')).toBe(CLIENT_ID_V2);
    const result = await drive(new Browser('v2-cimd'), url.href, CALLBACK_V2, { login: 'cimd-v2-user' });
    expect(result.consentPage?.html).toContain('<strong>client.example</strong> says this is <bdi>SDK v2 CIMD client</bdi>');
    await first.finishAuth(result.callback.searchParams);
    const client = new V2Client({ name: 'cimd-v2', version: '1.0.0' });
    await client.connect(new V2Transport(mcpUrl, { authProvider: provider }));
    expect((await client.callTool({ name: 'echo', arguments: { message: 'via CIMD' } })).content).toEqual([{ type: 'text', text: 'via CIMD' }]);
    await client.close();
    expect(await stack.app.runtime.stores.models.findAccessTokenByHash(sha256(provider.tokens()?.access_token as string))).toMatchObject({ clientId: CLIENT_ID_V2, accountId: 'cimd-v2-user' });
  });
});
