/**
 * Signing keys (P's own and the demo IdP's): generated once, stored sealed under SECRET_KEY
 * (sealed_secrets), loaded on every start.
 */
import { generateJwks } from '../provider/keys.js';
import type { SealedSecretStore } from '../store/sealed-secrets.js';

export async function loadOrCreateJwks(sealed: SealedSecretStore, name: string): Promise<{ keys: Record<string, unknown>[] }> {
  let json = await sealed.get(name);
  if (!json) {
    json = JSON.stringify(await generateJwks());
    await sealed.put(name, json);
  }
  return JSON.parse(json) as { keys: Record<string, unknown>[] };
}
