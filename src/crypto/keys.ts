/**
 * Key material derived from SECRET_KEY, and the two primitives built on it:
 * - seal/unseal: AES-256-GCM with a key id, so SECRET_KEY_PREVIOUS can still open old values
 *   during a rotation (upstream tokens, signing keys, upstream transaction verifiers: UP-07);
 * - sign/verify: HMAC-SHA256 for cookie values (CONS-12: signed cookies);
 * - auditKeys: the audit chain's MAC keys (DESIGN §9), current first, each with the key id stored
 *   in the rows it makes, so SECRET_KEY_PREVIOUS still verifies rows from before a rotation.
 * Each purpose gets its own HKDF-derived key, so a leak of one never weakens another.
 */
import { createCipheriv, createDecipheriv, createHash, createHmac, hash, hkdfSync, randomBytes, timingSafeEqual } from 'node:crypto';

export type KeyPurpose = 'seal' | 'cookie' | 'oidc-cookie' | 'csrf' | 'audit';

interface KeyGeneration {
  kid: string;
  keys: Record<KeyPurpose, Buffer>;
}

function derive(master: Buffer, purpose: KeyPurpose): Buffer {
  return Buffer.from(hkdfSync('sha256', master, 'mcp-consent-proxy/v1', purpose, 32));
}

function generation(master: Buffer): KeyGeneration {
  const keys = { seal: derive(master, 'seal'), cookie: derive(master, 'cookie'), 'oidc-cookie': derive(master, 'oidc-cookie'), csrf: derive(master, 'csrf'), audit: derive(master, 'audit') };
  return { kid: createHash('sha256').update(keys.seal).digest('hex').slice(0, 12), keys };
}

const b64u = (buf: Buffer) => buf.toString('base64url');

/** unseal() of a value sealed under a SECRET_KEY this process has neither as SECRET_KEY nor as SECRET_KEY_PREVIOUS. */
export class UnknownSealingKeyError extends Error {
  constructor(
    message: string,
    /** the key id the value names (not secret: a hash of the derived sealing key) */
    readonly keyId: string,
  ) {
    super(message);
    this.name = 'UnknownSealingKeyError';
  }
}

export class KeyRing {
  readonly current: KeyGeneration;
  readonly previous: KeyGeneration | undefined;

  constructor(secretKey: Buffer, previousSecretKey?: Buffer) {
    this.current = generation(secretKey);
    this.previous = previousSecretKey ? generation(previousSecretKey) : undefined;
  }

  private generations(): KeyGeneration[] {
    return this.previous ? [this.current, this.previous] : [this.current];
  }

  /** The current audit key: new audit rows and checkpoints are MAC'd with it. */
  get auditKey(): { kid: string; key: Buffer } {
    return { kid: this.current.kid, key: this.current.keys.audit };
  }

  /**
   * The audit chain's HMAC keys, current first (DESIGN §9). Derived keys only: this is what a
   * verification worker receives, never SECRET_KEY itself.
   */
  auditKeys(): { kid: string; key: Buffer }[] {
    return this.generations().map((g) => ({ kid: g.kid, key: g.keys.audit }));
  }

  /** Keys for oidc-provider's Keygrip (current first). */
  oidcCookieKeys(): string[] {
    return this.generations().map((g) => b64u(g.keys['oidc-cookie']));
  }

  /**
   * Encrypt `plaintext`; `context` is bound as additional authenticated data, so a sealed value
   * copied to another row (another grant, another transaction) does not open there.
   */
  seal(plaintext: string, context: string): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.current.keys.seal, iv);
    cipher.setAAD(Buffer.from(context));
    const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final(), cipher.getAuthTag()]);
    return `v1.${this.current.kid}.${b64u(iv)}.${b64u(body)}`;
  }

  /** Decrypt a value made by `seal` with the current or previous key; throws when it does not open. */
  unseal(sealed: string, context: string): string {
    const [version, kid, iv, body] = sealed.split('.');
    const gen = this.generations().find((g) => g.kid === kid);
    if (version !== 'v1' || !kid || !iv || !body) throw new Error('sealed value has an unknown format');
    // The key id names the SECRET_KEY that sealed it: say so, it is the operator's usual mistake
    // (a replica, a restored backup or a new container started with another SECRET_KEY).
    if (!gen)
      throw new UnknownSealingKeyError(
        `sealed value was sealed under another SECRET_KEY (key id ${kid}, this process has ${this.generations()
          .map((g) => g.kid)
          .join(' and ')}): start it with the SECRET_KEY that sealed it, or set that one as SECRET_KEY_PREVIOUS during a rotation`,
        kid,
      );
    const data = Buffer.from(body, 'base64url');
    const decipher = createDecipheriv('aes-256-gcm', gen.keys.seal, Buffer.from(iv, 'base64url'));
    decipher.setAAD(Buffer.from(context));
    decipher.setAuthTag(data.subarray(data.length - 16));
    return Buffer.concat([decipher.update(data.subarray(0, data.length - 16)), decipher.final()]).toString('utf8');
  }

  /** Whether a sealed value was made with the previous key (to re-seal it). */
  isStale(sealed: string): boolean {
    return sealed.split('.')[1] !== this.current.kid;
  }

  /** HMAC-SHA256 of `value` under the current CSRF key, base64url (CSRF tokens, CONS-08). */
  csrfMac(value: string): string {
    return b64u(createHmac('sha256', this.current.keys.csrf).update(value).digest());
  }

  /** Whether `mac` is csrfMac(value) under the current or previous key. */
  checkCsrfMac(value: string, mac: string): boolean {
    const given = Buffer.from(mac, 'base64url');
    return this.generations().some((gen) => {
      const expected = createHmac('sha256', gen.keys.csrf).update(value).digest();
      return given.length === expected.length && timingSafeEqual(given, expected);
    });
  }

  /** `value.signature` with the current cookie key. */
  sign(value: string): string {
    return `${value}.${b64u(createHmac('sha256', this.current.keys.cookie).update(value).digest())}`;
  }

  /** The value if the signature verifies under the current or previous key, else undefined. */
  verify(signed: string | undefined): string | undefined {
    if (!signed) return undefined;
    const dot = signed.lastIndexOf('.');
    if (dot <= 0) return undefined;
    const value = signed.slice(0, dot);
    const given = Buffer.from(signed.slice(dot + 1), 'base64url');
    for (const gen of this.generations()) {
      const expected = createHmac('sha256', gen.keys.cookie).update(value).digest();
      if (given.length === expected.length && timingSafeEqual(given, expected)) return value;
    }
    return undefined;
  }
}

/** 32 random bytes, base64url: ids, states, CSRF tokens (≥ 128 bits, STATE-01, TOK-10). */
export function randomToken(bytes = 32): string {
  return randomBytes(bytes).toString('base64url');
}

/** SHA-256, base64url: how bearer values are stored and compared at rest. */
export function sha256(value: string): string {
  return hash('sha256', value, 'base64url');
}

/** Constant-time comparison of two strings. */
export function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
