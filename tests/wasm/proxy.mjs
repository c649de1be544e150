// A TCP proxy (Node `net`) in front of the tandem server, so a test can cut one client's
// connections for real. Chromium's `context.setOffline(true)` blocks new connections but
// leaves an open WebSocket up; giving each browser context its own proxy and cutting it
// drops exactly that context's socket and refuses its reconnects until `restore()`.
import { createConnection, createServer } from 'node:net';

/**
 * Listens on 127.0.0.1 port 0 and forwards every connection to `target` (`http://host:port`).
 * Resolves to { base, cut, restore, close, stats }: `base` is the proxy's `http://` URL,
 * `cut()` destroys every open connection (both sides) and refuses new ones, `restore()`
 * accepts again, `close()` stops listening and destroys everything.
 */
export async function startProxy(target) {
  const { hostname, port } = new URL(target);
  const sockets = new Set();
  const stats = { accepted: 0, refused: 0, cut: 0 }; // connections from the browser side
  let refusing = false;

  const track = (socket, fromClient) => {
    socket.fromClient = fromClient;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {}); // a reset peer; the pair is torn down on 'close'
  };
  const server = createServer((client) => {
    track(client, true);
    if (refusing) {
      stats.refused += 1;
      client.resetAndDestroy();
      return;
    }
    stats.accepted += 1;
    const upstream = createConnection({ host: hostname, port: Number(port) });
    track(upstream, false);
    client.pipe(upstream);
    upstream.pipe(client);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  server.on('error', () => {});
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });

  const destroyAll = () => {
    for (const socket of sockets) {
      if (socket.destroyed) continue;
      if (socket.fromClient) stats.cut += 1;
      // A reset, not a FIN: the peers see the connection die as on a lost network.
      socket.resetAndDestroy();
    }
    sockets.clear();
  };
  return {
    base: `http://127.0.0.1:${server.address().port}`,
    stats,
    /** Drops every open connection and refuses new ones. */
    cut() {
      refusing = true;
      destroyAll();
    },
    /** Accepts connections again. */
    restore() {
      refusing = false;
    },
    /** Stops listening and drops everything. */
    close() {
      refusing = true;
      destroyAll();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
