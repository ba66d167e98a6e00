import { describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { KeyRing, randomToken, safeEqual, sha256, UnknownSealingKeyError } from '../../src/crypto/keys.js';

const k1 = randomBytes(32);
const k2 = randomBytes(32);

describe('crypto › KeyRing', () => {
  it('seals with AES-256-GCM bound to its context', () => {
    const ring = new KeyRing(k1);
    const sealed = ring.seal('upstream-token-value', 'upstream_tokens:grant-1');
    expect(sealed).not.toContain('upstream-token-value');
    expect(sealed.startsWith(`v1.${ring.auditKey.kid}.`)).toBe(true);
    expect(ring.unseal(sealed, 'upstream_tokens:grant-1')).toBe('upstream-token-value');
    expect(() => ring.unseal(sealed, 'upstream_tokens:grant-2')).toThrow();
    const tampered = `${sealed.slice(0, -2)}${sealed.endsWith('A') ? 'B' : 'A'}A`;
    expect(() => ring.unseal(tampered, 'upstream_tokens:grant-1')).toThrow();
  });

  it('opens values sealed with SECRET_KEY_PREVIOUS during a rotation, and only then', () => {
    const old = new KeyRing(k1);
    const sealed = old.seal('v', 'ctx');
    const rotated = new KeyRing(k2, k1);
    expect(rotated.unseal(sealed, 'ctx')).toBe('v');
    expect(rotated.isStale(sealed)).toBe(true);
    expect(rotated.isStale(rotated.seal('v', 'ctx'))).toBe(false);
    expect(() => new KeyRing(k2).unseal(sealed, 'ctx')).toThrow(/sealed under another SECRET_KEY \(key id [0-9a-f]{12}, this process has [0-9a-f]{12}\): start it with the SECRET_KEY that sealed it/);
    expect(() => new KeyRing(k2).unseal('v2.x.y.z', 'ctx')).toThrow(/unknown format/);
    // Its own class, with the key id (what a revocation logs when it cannot ask U: src/consent/revocation.ts).
    expect(() => new KeyRing(k2).unseal(sealed, 'ctx')).toThrow(expect.objectContaining({ name: 'UnknownSealingKeyError', keyId: old.auditKey.kid }));
    expect(() => new KeyRing(k2).unseal(sealed, 'ctx')).toThrow(UnknownSealingKeyError);
  });

  it('signs cookie values and verifies them under the current or previous key', () => {
    const old = new KeyRing(k1);
    const signed = old.sign('session-handle');
    expect(old.verify(signed)).toBe('session-handle');
    expect(new KeyRing(k2, k1).verify(signed)).toBe('session-handle');
    expect(new KeyRing(k2).verify(signed)).toBeUndefined();
    expect(old.verify(`${signed}x`)).toBeUndefined();
    expect(old.verify('other.' + signed.split('.').pop())).toBeUndefined();
    expect(old.verify(undefined)).toBeUndefined();
    expect(old.verify('nodot')).toBeUndefined();
  });

  it('derives separate keys per purpose', () => {
    const ring = new KeyRing(k1);
    expect(ring.oidcCookieKeys()).toHaveLength(1);
    expect(ring.oidcCookieKeys()[0]).not.toBe(ring.sign('x').split('.')[1]);
    expect(new KeyRing(k1, k2).oidcCookieKeys()).toHaveLength(2);
  });

  it('makes random tokens of at least 128 bits and hashes them (TOK-10, STATE-01)', () => {
    const tokens = new Set(Array.from({ length: 1000 }, () => randomToken()));
    expect(tokens.size).toBe(1000);
    for (const t of tokens) expect(t).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(sha256('abc')).toBe('ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0');
    expect(safeEqual('a', 'a')).toBe(true);
    expect(safeEqual('a', 'ab')).toBe(false);
  });
});
