import { createServer, type AddressInfo, type Server } from 'node:net';

function listenOnEphemeralPort(): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

/**
 * Picks `count` distinct ports on 127.0.0.1 that were free a moment ago: the OS assigns each to a
 * listener on port 0, and all listeners are closed before this resolves. Another process may take
 * one before the caller binds it, so the caller must retry on `EADDRINUSE`.
 */
export async function pickFreePorts(count: number): Promise<number[]> {
  const servers: Server[] = [];
  try {
    for (let i = 0; i < count; i += 1) servers.push(await listenOnEphemeralPort());
    return servers.map((server) => (server.address() as AddressInfo).port);
  } finally {
    await Promise.all(servers.map(closeServer));
  }
}
