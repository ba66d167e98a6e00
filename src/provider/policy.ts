/**
 * oidc-provider's interaction policy, rewritten for P (DESIGN §7 "oidc-provider can skip our
 * consent by itself"):
 * - Every new authorization request goes to P's interaction (/interaction/:uid), where the
 *   consent module alone decides whether the consent page is shown (CONS-01..03, CONS-16). The
 *   provider never skips it on the strength of its own session or an earlier grant: the single
 *   login check asks for an interaction until the interaction has produced a result, and
 *   `loadExistingGrant` (configuration.ts) only loads the grant that result names.
 * - AUTHZ-07: a scope P does not offer is refused with `invalid_scope` (oidc-provider alone would
 *   ignore it). The error reaches the client's validated redirect URI with state, iss and P's fixed
 *   description only (src/provider/error-redirect.ts); the scopes named here reach the audit row.
 * - AUTHZ-13: `prompt=none` never yields a code, because an interaction is always required.
 */
import { errors, interactionPolicy, type KoaContextWithOIDC } from 'oidc-provider';

const { Prompt, Check, base } = interactionPolicy;

export function createInteractionPolicy(offeredScopes: readonly string[]): interactionPolicy.DefaultPolicy {
  const offered = new Set(offeredScopes);
  const policy = base();
  policy.remove('login');
  policy.add(
    new Prompt(
      { name: 'login', requestable: true },
      new Check('unknown_scope', 'a requested scope is not offered', (ctx: KoaContextWithOIDC) => {
        const requested = String(ctx.oidc.params?.scope ?? '')
          .split(' ')
          .filter(Boolean);
        const unknown = requested.filter((s) => !offered.has(s));
        if (unknown.length) {
          throw new errors.InvalidScope(`requested scope is not offered: ${unknown.join(' ')}`, unknown.join(' '));
        }
        return Check.NO_NEED_TO_PROMPT;
      }),
      new Check('mcp_consent_required', "the user's approval at this proxy is required", (ctx: KoaContextWithOIDC) => (ctx.oidc.result?.login ? Check.NO_NEED_TO_PROMPT : Check.REQUEST_PROMPT)),
    ),
    0,
  );
  return policy;
}
