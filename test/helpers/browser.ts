/**
 * A small browser for flow tests: a cookie jar per host (ports share cookies, as in real
 * browsers; a cookie is its name and path, so two paths keep two cookies of one name, as
 * oidc-provider's per-interaction `_interaction_resume` needs), Path/Max-Age/Secure/SameSite=Lax honoured (Secure cookies are kept on loopback
 * http, as Chromium does), redirects followed hop by hop, and Fetch Metadata
 * (`Sec-Fetch-Site`) computed across the redirect chain from the navigation's initiator.
 * It is what lets the security tests model a victim's and an attacker's browser side by side.
 */

interface StoredCookie {
  name: string;
  value: string;
  path: string;
  expires: number | undefined;
  sameSite: 'lax' | 'strict' | 'none';
}

export interface Hop {
  method: string;
  url: string;
  status: number;
  location: string | undefined;
  secFetchSite: string;
  setCookies: string[];
  /** the response's X-Request-Id (P's audit rows carry it) */
  requestId: string | undefined;
}

export interface Page {
  url: string;
  status: number;
  headers: Headers;
  html: string;
  /** every request of the navigation, in order */
  hops: Hop[];
}

export interface NavigateOptions {
  /** origin of the page that started the navigation; undefined = typed / opened by an app ("none") */
  initiator?: string | undefined;
  method?: 'GET' | 'POST';
  body?: URLSearchParams | undefined;
  /** stop (without requesting it) at the first URL this returns true for */
  stopAt?: ((url: string) => boolean) | undefined;
  /** leave out Sec-Fetch-* headers (an old browser) */
  noFetchMetadata?: boolean;
  maxHops?: number;
}

const site = (url: URL) => url.hostname;
/** A cookie's identity in the jar (RFC 6265 5.3 step 11: name, domain and path). */
const jarKey = (name: string, path: string) => `${path} ${name}`;

export class Browser {
  private readonly jar = new Map<string, Map<string, StoredCookie>>();
  /** sees every request of every navigation as it is answered */
  onHop: ((hop: Hop) => void) | undefined;

  constructor(readonly name = 'browser') {}

  cookiesFor(url: URL, topLevelGet: boolean, crossSite: boolean): string {
    const now = Date.now();
    const out: string[] = [];
    for (const cookie of this.jar.get(url.hostname)?.values() ?? []) {
      if (cookie.expires !== undefined && cookie.expires <= now) continue;
      if (!url.pathname.startsWith(cookie.path)) continue;
      if (crossSite && cookie.sameSite === 'strict') continue;
      if (crossSite && cookie.sameSite === 'lax' && !topLevelGet) continue;
      out.push(`${cookie.name}=${cookie.value}`);
    }
    return out.join('; ');
  }

  /** the value of cookie `name` (of path `/` when there are several) */
  cookie(host: string, name: string): string | undefined {
    const named = [...(this.jar.get(host)?.values() ?? [])].filter((c) => c.name === name);
    return (named.find((c) => c.path === '/') ?? named[0])?.value;
  }

  cookieNames(host: string): string[] {
    return [...new Set([...(this.jar.get(host)?.values() ?? [])].map((c) => c.name))];
  }

  setCookie(host: string, name: string, value: string, path = '/'): void {
    if (!this.jar.has(host)) this.jar.set(host, new Map());
    this.jar.get(host)?.set(jarKey(name, path), { name, value, path, expires: undefined, sameSite: 'lax' });
  }

  private store(url: URL, header: string): void {
    const [pair, ...attrs] = header.split(';').map((s) => s.trim());
    const eq = (pair ?? '').indexOf('=');
    const name = (pair ?? '').slice(0, eq);
    const value = (pair ?? '').slice(eq + 1);
    let path = url.pathname.replace(/\/[^/]*$/, '') || '/';
    let expires: number | undefined;
    let sameSite: StoredCookie['sameSite'] = 'lax';
    for (const attr of attrs) {
      const [k = '', v = ''] = attr.split('=');
      const key = k.toLowerCase();
      if (key === 'path') path = v || '/';
      else if (key === 'max-age') expires = Date.now() + Number(v) * 1000;
      else if (key === 'expires' && expires === undefined) expires = Date.parse(v);
      else if (key === 'samesite') sameSite = v.toLowerCase() as StoredCookie['sameSite'];
    }
    if (!this.jar.has(url.hostname)) this.jar.set(url.hostname, new Map());
    const cookies = this.jar.get(url.hostname) as Map<string, StoredCookie>;
    if (expires !== undefined && expires <= Date.now()) cookies.delete(jarKey(name, path));
    else cookies.set(jarKey(name, path), { name, value, path, expires, sameSite });
  }

  /** One top-level navigation, following redirects. */
  async navigate(target: string, options: NavigateOptions = {}): Promise<Page> {
    const hops: Hop[] = [];
    let url = new URL(target);
    let method = options.method ?? 'GET';
    let body = options.body;
    const initiator = options.initiator ? new URL(options.initiator) : undefined;
    let chainCrossSite = false;
    let chainCrossOrigin = false;
    for (let i = 0; i < (options.maxHops ?? 20); i++) {
      if (options.stopAt?.(url.href)) return { url: url.href, status: 0, headers: new Headers(), html: '', hops };
      if (initiator) {
        if (site(url) !== site(initiator)) chainCrossSite = true;
        if (url.origin !== initiator.origin) chainCrossOrigin = true;
      }
      const secFetchSite = !initiator ? 'none' : chainCrossSite ? 'cross-site' : chainCrossOrigin ? 'same-site' : 'same-origin';
      const crossSiteForCookies = initiator ? site(url) !== site(initiator) : false;
      const headers: Record<string, string> = { accept: 'text/html,application/xhtml+xml', 'user-agent': `test-browser/${this.name}` };
      if (!options.noFetchMetadata) {
        headers['sec-fetch-site'] = secFetchSite;
        headers['sec-fetch-mode'] = 'navigate';
        headers['sec-fetch-dest'] = 'document';
      }
      const cookie = this.cookiesFor(url, method === 'GET', crossSiteForCookies);
      if (cookie) headers.cookie = cookie;
      if (body) headers['content-type'] = 'application/x-www-form-urlencoded';
      if (method === 'POST' && initiator) headers.origin = initiator.origin;
      const res = await fetch(url, { method, headers, body: body?.toString(), redirect: 'manual' });
      const setCookies = res.headers.getSetCookie();
      for (const c of setCookies) this.store(url, c);
      const location = res.headers.get('location') ?? undefined;
      const hop: Hop = { method, url: url.href, status: res.status, location, secFetchSite, setCookies, requestId: res.headers.get('x-request-id') ?? undefined };
      hops.push(hop);
      this.onHop?.(hop);
      if (res.status >= 300 && res.status < 400 && location) {
        await res.arrayBuffer();
        const next = new URL(location, url);
        if (res.status !== 307 && res.status !== 308) {
          method = 'GET';
          body = undefined;
        }
        url = next;
        continue;
      }
      return { url: url.href, status: res.status, headers: res.headers, html: await res.text(), hops };
    }
    throw new Error(`too many redirects from ${target}`);
  }

  /** Submit the form on `page` (the first one, or the one whose action contains `actionPart`). */
  async submit(page: Page, fields: Record<string, string> = {}, options: { actionPart?: string; stopAt?: (url: string) => boolean } = {}): Promise<Page> {
    const form = parseForm(page.html, options.actionPart);
    if (!form) throw new Error(`no form on ${page.url}:\n${page.html.slice(0, 500)}`);
    const body = new URLSearchParams({ ...form.fields, ...fields });
    return this.navigate(new URL(form.action, page.url).href, { method: form.method, body, initiator: new URL(page.url).origin, stopAt: options.stopAt });
  }
}

export interface ParsedForm {
  action: string;
  method: 'GET' | 'POST';
  fields: Record<string, string>;
}

const decode = (s: string) => s.replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');

export function parseForm(html: string, actionPart?: string): ParsedForm | undefined {
  const forms = [...html.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form>/gi)];
  const match = forms.find((f) => !actionPart || /action="([^"]*)"/i.exec(f[1] ?? '')?.[1]?.includes(actionPart));
  if (!match) return undefined;
  const attrs = match[1] ?? '';
  const action = decode(/action="([^"]*)"/i.exec(attrs)?.[1] ?? '');
  const method = (/method="([^"]*)"/i.exec(attrs)?.[1] ?? 'GET').toUpperCase() as 'GET' | 'POST';
  const fields: Record<string, string> = {};
  for (const input of (match[2] ?? '').matchAll(/<input\b([^>]*)>/gi)) {
    const a = input[1] ?? '';
    const name = /name="([^"]*)"/i.exec(a)?.[1];
    if (name && /type="hidden"/i.test(a)) fields[name] = decode(/value="([^"]*)"/i.exec(a)?.[1] ?? '');
  }
  return { action, method, fields };
}
