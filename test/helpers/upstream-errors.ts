/**
 * The errors openid-client really throws when U's revocation endpoint answers with a failure —
 * made by openid-client itself (`tokenRevocation` over a fetch that answers `response`), not built
 * by hand: oauth4webapi's ResponseBodyError (U's JSON error body as its `cause`),
 * WWWAuthenticateChallengeError (the challenge's parameters as its `cause`), or openid-client's
 * ClientError with U's Response as its `cause` (an answer that is no OAuth error).
 */
import * as client from 'openid-client';

export async function revocationError(response: () => Response, token = 'some-upstream-token'): Promise<Error> {
  const config = new client.Configuration({ issuer: 'https://u.example', revocation_endpoint: 'https://u.example/revoke' }, 'p-client', undefined, client.None());
  config[client.customFetch] = async () => response();
  const err: unknown = await client.tokenRevocation(config, token).then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(err instanceof Error)) throw new Error('U answered, yet openid-client threw nothing');
  return err;
}

/** U answering `status` with a JSON body (an OAuth error body: `error`, `error_description`…). */
export const jsonAnswer = (status: number, body: Record<string, unknown>, headers: Record<string, string> = {}) => () =>
  new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json', ...headers } });
