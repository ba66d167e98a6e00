/**
 * Fetch Metadata (`Sec-Fetch-Site`): whether a browser navigation was started by P's own pages
 * (`same-origin`) or by the user at the address bar, a bookmark or a typed URL (`none`). Every
 * other value — `cross-site`, `same-site` (another origin of the same site) or anything unknown —
 * is another site's doing (AT-06, CONS-16). The one rule, used by the consent skip
 * (src/consent/decision.ts) and the admin's audit export (src/admin/guard.ts); each caller decides
 * what an absent header means.
 */
export function startedHere(secFetchSite: string): boolean {
  return secFetchSite === 'same-origin' || secFetchSite === 'none';
}
