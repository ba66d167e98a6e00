/**
 * The one way P stores an interaction's result — login and consent, or an error — for
 * oidc-provider's resume (`/authorize/:uid`), which then redirects to the client.
 *
 * An interaction the provider opens for a provider session that is signed in keeps that session's
 * uid, and its resume refuses unless the request carries the same session ("interaction session
 * and authentication session mismatch"). P never passes the provider's session cookie back
 * (src/http/provider-mount.ts, DESIGN §7), so such an interaction could never be resumed. That
 * happens when a consent is revoked between the callback and the resume: the provider signs its
 * session in, finds no grant, and opens a new interaction for it — the user approved again, signed
 * in at U again, and ended on "this sign-in has expired" with a consent recorded for nothing
 * (review 2026-12-07). So the uid is dropped with the result, as the provider itself does when the
 * account changes. What binds an interaction to its browser is unchanged: at the resume,
 * oidc-provider's own signed `_interaction_resume` cookie, which must name the interaction in the
 * URL; on P's pages, the interaction cookie checked against the URL (src/flow/4-consent.ts); at U's
 * callback, the upstream transaction's cookie (STATE-04, src/session/upstream-login.ts); and the
 * code itself is bound to the client's PKCE verifier.
 */
import type Provider from 'oidc-provider';
import type { InteractionResults } from 'oidc-provider';
import type { Response } from 'express';

type Interaction = InstanceType<Provider['Interaction']>;

/** Store `result` on the interaction (its session's uid dropped), keeping its expiry; resolves with its resume URL. */
export async function saveInteractionResult(interaction: Interaction, result: InteractionResults): Promise<string> {
  if (interaction.session) delete (interaction.session as { uid?: string }).uid;
  interaction.result = result;
  await interaction.save(Math.max(1, interaction.exp - Math.floor(Date.now() / 1000)));
  return interaction.returnTo;
}

/** `saveInteractionResult` for the interaction of this request's cookie, then 303 to its resume URL (as `provider.interactionFinished`). */
export async function finishInteraction(provider: Provider, req: Parameters<Provider['interactionDetails']>[0], res: Response, result: InteractionResults): Promise<void> {
  const returnTo = await saveInteractionResult(await provider.interactionDetails(req, res), result);
  res.status(303).setHeader('Location', returnTo).setHeader('Content-Length', '0').end();
}
