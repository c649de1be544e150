// A typed app using @tandem/node: `tsc --noEmit` must accept it (types.test.mjs), and the
// types must be the generated ones (a Room has `connections: number`, scopes are the enum).
import express from './express-like.js';
import { Tandem, TandemError, type ActiveUser, type Room, type Scope, type RolledKey } from '@tandem/node';

const tandem = new Tandem({ secretKey: 'sk_example', baseUrl: 'http://127.0.0.1:8080', retryOn429: { maxAttempts: 4 } });

export async function main(): Promise<void> {
  const scopes: Scope[] = ['room:write', 'room:presence:write'];
  const { token, expiresAt } = await tandem.authorize({ userId: 'ada', userInfo: { name: 'Ada' }, permissions: { 'doc-*': scopes }, expiresIn: 600 });
  const t: string = token + expiresAt;
  for await (const room of tandem.rooms.list({ prefix: 'doc-' })) {
    const r: Room = room;
    const n: number = r.connections + t.length;
    const users: ActiveUser[] = await tandem.rooms.activeUsers(r.name);
    const bytes: Uint8Array = await tandem.rooms.getDocumentUpdate(r.name);
    await tandem.rooms.applyUpdate(r.name, bytes);
    const { delivered } = await tandem.rooms.broadcastEvent(r.name, { n, users: users.length });
    console.log(delivered.toFixed(0));
  }
  const rolled: RolledKey = await tandem.keys.roll('key_1', { gracePeriodSeconds: 60 });
  console.log(rolled.newKey.key, rolled.oldKey.expiresAt);
  const usage = await tandem.usage({ from: new Date(0), to: new Date(), granularity: 'day' });
  console.log(usage.buckets.map((b) => b.totals));
  for await (const entry of new Tandem({ pat: 'pat_x', baseUrl: 'http://x' }).tenant('ten_1').auditLog()) {
    console.log(entry.action, entry.at);
  }
  try {
    await tandem.rooms.delete('doc-1');
  } catch (error) {
    if (error instanceof TandemError && error.code === 'not_found') console.log(error.status, error.retryAfter ?? 0);
  }
}

const app = express();
app.post('/api/tandem-auth', tandem.authEndpoint(async ({ room, request }) => (request.body ? { userId: 'ada', permissions: { [room]: ['room:read'] } } : null)));
export const POST: (request: Request) => Promise<Response> = tandem.authEndpointFetch(async ({ request }) => ({ userId: request.headers.get('x-user') ?? 'anon' }));
