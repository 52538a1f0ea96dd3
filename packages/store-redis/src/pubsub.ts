/**
 * The pub/sub connection the Redis token store and the Redis verification cache each listen on:
 * how it is opened (a duplicate of a standalone or Sentinel client, or a connection to one node of a
 * Cluster), how it is closed, and how listeners are called.
 */
import { Redis } from 'ioredis';
import type { Cluster } from 'ioredis';
import { TokenStoreError } from '@tessera/core';

/** Reconnects of a Cluster's pub/sub connection to one node before another node takes over. */
const CLUSTER_SUBSCRIBER_RETRIES = 3;

/**
 * A new connection for pub/sub, which its owner resubscribes itself after a reconnect
 * (`autoResubscribe: false`): a duplicate of a standalone or Sentinel client; for a Cluster, a
 * connection to one of its nodes (a publish reaches every node), another than `previous` when there
 * is one, which ends after a few failed reconnects so that another node takes over.
 *
 * @param store - the owner's name, for the error when a Cluster has no nodes.
 */
export async function pubSubConnection(
  client: Redis | Cluster,
  store: string,
  previous?: Redis,
): Promise<Redis> {
  if (client instanceof Redis) return client.duplicate({ autoResubscribe: false });
  if (client.nodes('all').length === 0) await client.ping(); // discovers the nodes
  const all = client.nodes('all');
  const at = (redis: Redis | undefined) => `${redis?.options.host}:${redis?.options.port}`;
  const others = all.filter((node) => at(node) !== at(previous));
  const nodes = others.length > 0 ? others : all;
  const node = nodes[Math.floor(Math.random() * nodes.length)];
  if (node === undefined) throw new TokenStoreError('subscribe', `${store}: the cluster has no nodes`);
  const { host, port, username, password, tls, connectionName } = node.options;
  return new Redis({
    host,
    port,
    username,
    password,
    tls,
    connectionName,
    autoResubscribe: false,
    enableOfflineQueue: true,
    retryStrategy: (attempt) => (attempt > CLUSTER_SUBSCRIBER_RETRIES ? null : Math.min(attempt * 100, 1000)),
  });
}

/**
 * QUIT lets commands already sent finish (ioredis re-subscribes after a reconnect without handling
 * a failure, so cutting the connection under it leaves an unhandled rejection); a connection that
 * cannot say goodbye within a second (Redis down) is cut.
 */
export async function closeConnection(connection: Redis | Cluster): Promise<void> {
  if (connection.status === 'end') return;
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      connection.quit(),
      new Promise((_resolve, reject) => {
        timer = setTimeout(() => reject(new Error('quit timed out')), 1000);
        timer.unref();
      }),
    ]);
  } catch {
    connection.disconnect();
  } finally {
    clearTimeout(timer);
  }
}

/** Calls a listener; its failure is its own. */
export function safely(callback: () => void): void {
  try {
    callback();
  } catch {
    // A listener's failure is its own.
  }
}
