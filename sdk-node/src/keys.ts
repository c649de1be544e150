/** The secret key's project keys: list, create, roll, revoke. */
import { Http, seg, type Body, type Ok } from './http.js';
import type { ApiKey, CreatedApiKey, KeyKind, RolledKey } from './types.js';

export class Keys {
  readonly #http: Http;

  constructor(http: Http) {
    this.#http = http;
  }

  /** The project's keys, newest first (never the keys themselves). */
  async list(): Promise<ApiKey[]> {
    const list = await this.#http.request<Ok<'listKeys'>>('GET', '/v1/keys');
    return list.data;
  }

  /** A new `secret` or `publishable` key; `key` is in this answer only. */
  create(options: { kind: Extract<KeyKind, 'secret' | 'publishable'>; name?: string }): Promise<CreatedApiKey> {
    const body: Body<'createKey'> = { kind: options.kind };
    if (options.name !== undefined) body.name = options.name;
    return this.#http.request<Ok<'createKey'>>('POST', '/v1/keys', { json: body });
  }

  /** Replaces a key; the old one keeps working for `gracePeriodSeconds` (0: stops now). */
  roll(keyId: string, options: { gracePeriodSeconds: number }): Promise<RolledKey> {
    const body: Body<'rollKey'> = { gracePeriodSeconds: options.gracePeriodSeconds };
    return this.#http.request<Ok<'rollKey'>>('POST', `/v1/keys/${seg(keyId)}/roll`, { json: body });
  }

  /** Revokes a key at once; connections using tokens it minted close with 4401. */
  revoke(keyId: string): Promise<ApiKey> {
    return this.#http.request<Ok<'revokeKey'>>('POST', `/v1/keys/${seg(keyId)}/revoke`);
  }
}
