// Each line below must be a type error: tsc fails on an unused @ts-expect-error, so this
// file proves the types reject wrong calls rather than accepting anything.
import { Tandem } from '@tandem/node';

const tandem = new Tandem({ secretKey: 'sk_x', baseUrl: 'http://x' });
// @ts-expect-error: not a scope of the API
void tandem.authorize({ userId: 'u', permissions: { r: ['room:owner'] } });
// @ts-expect-error: userId is required
void tandem.authorize({ permissions: {} });
// @ts-expect-error: a room has no `owner`
void tandem.rooms.get('r').then((room) => room.owner);
// @ts-expect-error: updates are bytes
void tandem.rooms.applyUpdate('r', 'not bytes');
// @ts-expect-error: a personal access token is not a key kind one creates here
void tandem.keys.create({ kind: 'personalAccessToken' });
// @ts-expect-error: baseUrl is required
new Tandem({ secretKey: 'sk_x' });
// @ts-expect-error: granularity is `hour` or `day`
void tandem.usage({ from: new Date(), to: new Date(), granularity: 'week' });
