/**
 * P's own cookies (CONS-10/11/12): `__Host-` prefix (so Secure, Path=/, no Domain), HttpOnly,
 * SameSite=Lax — Lax, not Strict, so they arrive on U's top-level redirect back to the callback
 * (checklist §5.8) — and signed with the current cookie key (the previous key still verifies
 * during a SECRET_KEY rotation). Only when PUBLIC_URL is plain http on a non-loopback host
 * (DANGEROUSLY_ALLOW_INSECURE_HTTP) do the names lose the prefix and the Secure flag, because
 * browsers refuse both there.
 */
import { parse, serialize } from 'cookie';
import type { Request, Response } from 'express';
import type { KeyRing } from '../crypto/keys.js';

export type CookieName = 'session' | 'csrf' | 'tx' | 'admin' | 'browser';

export function createCookieJar(keys: KeyRing, secureContext: boolean) {
  const name = (n: CookieName) => (secureContext ? `__Host-mcp-${n}` : `mcp-${n}`);
  return {
    name,
    /** The verified value of a signed cookie, or undefined. */
    read(req: Request, n: CookieName): string | undefined {
      const raw = parse(req.headers.cookie ?? '')[name(n)];
      return keys.verify(raw);
    },
    write(res: Response, n: CookieName, value: string, maxAgeSeconds: number): void {
      res.append('Set-Cookie', serialize(name(n), keys.sign(value), { path: '/', httpOnly: true, secure: secureContext, sameSite: 'lax', maxAge: maxAgeSeconds }));
    },
    clear(res: Response, n: CookieName): void {
      res.append('Set-Cookie', serialize(name(n), '', { path: '/', httpOnly: true, secure: secureContext, sameSite: 'lax', maxAge: 0 }));
    },
  };
}

export type CookieJar = ReturnType<typeof createCookieJar>;
