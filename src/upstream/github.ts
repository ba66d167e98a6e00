/**
 * What the `github` preset does differently from OAuth 2 as openid-client speaks it
 * (src/upstream/presets.ts): GitHub's token endpoint answers refusals with 200, and who signed in
 * comes from its user API.
 */
import { UpstreamError } from './failures.js';

/** fetch, as P calls U (with UPSTREAM_TIMEOUT: src/upstream/presets.ts) */
export type UpstreamFetch = (url: string, init?: RequestInit) => Promise<Response>;

/**
 * GitHub answers its token endpoint's refusals with 200 and an error body
 * (`{"error":"bad_refresh_token", …}`), which oauth4webapi reads as a malformed success: its code
 * never reached `classify`, so a refresh token GitHub no longer honours (the user revoked the app,
 * the token expired or was reused) did not end P's grant (UP-08, AT-22; review 2026-12-07). Such an
 * answer is passed on as the 400 RFC 6749 §5.2 says a refusal is, with the same body.
 */
export function githubTokenRefusals(fetchU: UpstreamFetch, tokenEndpoint: string): UpstreamFetch {
  return async (url, init) => {
    const res = await fetchU(url, init);
    if (res.status !== 200 || url !== tokenEndpoint) return res;
    const text = await res.text();
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
    const refusal = typeof body === 'object' && body !== null && typeof (body as { error?: unknown }).error === 'string' && !('access_token' in body);
    return new Response(text, { status: refusal ? 400 : 200, headers: { 'content-type': res.headers.get('content-type') ?? 'application/json' } });
  };
}

/** GitHub's user API asked with `accessToken`: who signed in (githubIdentity), and U's own word on that token (src/upstream/presets.ts refusesAccessToken). */
export function githubUser(fetchU: UpstreamFetch, api: string, accessToken: string): Promise<Response> {
  return fetchU(`${api}/user`, { headers: { authorization: `Bearer ${accessToken}`, accept: 'application/vnd.github+json', 'user-agent': 'mcp-consent-proxy' } });
}

/** GitHub: the user API names who logged in; the numeric id is the subject. */
export async function githubIdentity(fetchU: UpstreamFetch, api: string, accessToken: string): Promise<{ subject: string; displayName: string | undefined }> {
  let res: Response;
  try {
    res = await githubUser(fetchU, api, accessToken);
  } catch {
    throw new UpstreamError('unreachable', 'the GitHub user API did not answer');
  }
  const body = (await res.json().catch(() => undefined)) as { id?: unknown; login?: unknown } | undefined;
  if (!res.ok || (typeof body?.id !== 'number' && typeof body?.id !== 'string')) {
    throw new UpstreamError('identity_failed', `the GitHub user API answered ${res.status}`);
  }
  return { subject: String(body.id), displayName: typeof body.login === 'string' ? body.login : undefined };
}
