/**
 * The authorization-server runs of `npm run bench`, the same for P and for the bare oidc-provider
 * anchor (bare-provider.ts): `POST /token` with the refresh grant, each worker rotating its own
 * chain (the next request carries the refresh token the previous answer returned), and
 * `POST /register` with the DCR body of a public MCP client. c=10, one run of `seconds`.
 */
import { runLoad, type LoadResult } from './load.js';

export interface Chain {
  clientId: string;
  rt: string;
}

/** The registration body the bench sends P and the bare provider alike. */
export const DCR_BODY =
  '{"client_name":"bench-mcp-client","redirect_uris":["http://127.0.0.1:33418/callback"],"grant_types":["authorization_code","refresh_token"],"response_types":["code"],"token_endpoint_auth_method":"none"}';

export function refreshRun(baseUrl: string, chains: Chain[], seconds: number): Promise<LoadResult> {
  return runLoad({
    url: `${baseUrl}/token`,
    connections: 10,
    durationMs: seconds * 1000,
    request: (worker) => ({
      method: 'POST',
      path: '/token',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: (chains[worker] as Chain).rt, client_id: (chains[worker] as Chain).clientId }).toString(),
    }),
    onBody: (worker, status, text) => {
      if (status === 200) (chains[worker] as Chain).rt = (JSON.parse(text) as { refresh_token: string }).refresh_token;
    },
  });
}

export function dcrRun(baseUrl: string, seconds: number): Promise<LoadResult> {
  return runLoad({
    url: `${baseUrl}/register`,
    connections: 10,
    durationMs: seconds * 1000,
    request: () => ({ method: 'POST', path: '/register', headers: { 'content-type': 'application/json' }, body: DCR_BODY }),
  });
}
