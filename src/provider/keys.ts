/**
 * The provider's signing keys (ID tokens): generated once, stored sealed in sealed_secrets,
 * loaded on every start. RS256 first (the OpenID Connect default), ES256 beside it.
 */
import { exportJWK, generateKeyPair, type JWK } from 'jose';
import { randomToken } from '../crypto/keys.js';

export async function generateJwks(): Promise<{ keys: JWK[] }> {
  const keys: JWK[] = [];
  for (const alg of ['RS256', 'ES256'] as const) {
    const { privateKey } = await generateKeyPair(alg, { extractable: true, ...(alg === 'RS256' ? { modulusLength: 2048 } : {}) });
    keys.push({ ...(await exportJWK(privateKey)), alg, use: 'sig', kid: randomToken(12) });
  }
  return { keys };
}
