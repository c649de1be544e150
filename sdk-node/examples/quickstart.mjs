// The README's quickstart: mint a token for a user, then read the project's rooms.
// Run it with TANDEM_URL and TANDEM_SECRET_KEY set (the first start of `tandem serve`
// prints a secret key):  node quickstart.mjs
import { Tandem, TandemError } from '@tandem/node';

const tandem = new Tandem({
  baseUrl: process.env.TANDEM_URL ?? 'http://127.0.0.1:8080',
  secretKey: process.env.TANDEM_SECRET_KEY,
  retryOn429: true,
});

// A token for one of your users: give it to the browser (y-websocket: `params: { token }`).
const { token, expiresAt } = await tandem.authorize({
  userId: 'ada',
  userInfo: { name: 'Ada Lovelace', color: '#f0a' },
  permissions: { 'quickstart-*': ['room:write'] },
  expiresIn: 3600,
});
console.log(`token for ada expires at ${expiresAt} (${token.length} characters)`);

// Every room whose name starts with "quickstart-", page by page, and its document as JSON.
for await (const room of tandem.rooms.list({ prefix: 'quickstart-' })) {
  const doc = await tandem.rooms.getDocument(room.name);
  console.log(`room ${room.name}: ${JSON.stringify(doc)}`);
}

try {
  await tandem.rooms.get('no-such-room');
} catch (error) {
  if (!(error instanceof TandemError) || error.code !== 'not_found') throw error;
  console.log(`no-such-room: ${error.status} ${error.code}`);
}
