/**
 * Status notices on the admin and account pages after an action, which redirects (303) to
 * `?done=<code>` or `?revoked=<consent id>`. A link from anywhere can carry any query, so these
 * pages say only our own words (issue 9 item 5, "reflected page messages"; DESIGN §9 hostile
 * input): each allowed `done` code maps to a fixed message, shown only when it is true of the
 * page's client; `revoked` must name a consent that exists, is revoked and — on /account — is the
 * signed-in user's own. Any other value shows nothing. This is the one place that decides it.
 */
/** What a notice needs to know of a consent (a row of src/store/consents.ts). */
interface ConsentFacts {
  id: number;
  subject: string;
  revoked_at: number | null;
}

const DONE_MESSAGES = {
  disabled: 'The client was disabled.',
  enabled: 'The client was enabled.',
} as const;

/** `?done=` on an admin client page: our message for an allowed code that matches the client's state. */
export function clientDoneMessage(value: unknown, client: { disabled: boolean }): string | undefined {
  if (value === 'disabled' && client.disabled) return DONE_MESSAGES.disabled;
  if (value === 'enabled' && !client.disabled) return DONE_MESSAGES.enabled;
  return undefined;
}

/**
 * `?revoked=`: the id of a consent that really is revoked (and the subject's own, when one is
 * given), or undefined. The id shown is the stored one, never the query text.
 */
export async function revokedConsentId(value: unknown, find: (id: number) => Promise<ConsentFacts | undefined>, subject?: string): Promise<number | undefined> {
  if (typeof value !== 'string' || !/^[1-9]\d{0,15}$/.test(value)) return undefined;
  const consent = await find(Number(value));
  if (!consent || consent.revoked_at === null) return undefined;
  if (subject !== undefined && consent.subject !== subject) return undefined;
  return consent.id;
}
