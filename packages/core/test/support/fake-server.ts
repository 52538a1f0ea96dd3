/**
 * A local node:http server for what no real authorization server does (broken bodies, resets,
 * slow answers), so the real axios path runs. Records every request.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface RecordedRequest {
  method: string;
  path: string;
  headers: http.IncomingHttpHeaders;
  body: string;
  form: URLSearchParams;
}

export type Handler = (request: RecordedRequest, response: http.ServerResponse) => void | Promise<void>;

export interface FakeServer {
  /** e.g. http://127.0.0.1:PORT */
  url: string;
  requests: RecordedRequest[];
  /** Requests to one path. */
  requestsTo(path: string): RecordedRequest[];
  /** Replace the handler of a path (exact match on the path without query). */
  on(path: string, handler: Handler): void;
  close(): Promise<void>;
}

/** Answers JSON with a status and optional headers. */
export function json(
  response: http.ServerResponse,
  status: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  response.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  response.end(text);
}

/** Answers a raw body. */
export function raw(
  response: http.ServerResponse,
  status: number,
  body: string | Buffer,
  headers: Record<string, string> = {},
): void {
  response.writeHead(status, headers);
  response.end(body);
}

/** Reads a whole request, then hands it over as a {@link RecordedRequest}. */
export function onRequest(req: http.IncomingMessage, handle: (recorded: RecordedRequest) => void): void {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const body = Buffer.concat(chunks).toString('utf8');
    handle({
      method: req.method ?? 'GET',
      path: (req.url ?? '/').split('?')[0]!,
      headers: req.headers,
      body,
      form: new URLSearchParams(body),
    });
  });
}

export async function startFakeServer(handlers: Record<string, Handler> = {}): Promise<FakeServer> {
  const routes = new Map(Object.entries(handlers));
  const requests: RecordedRequest[] = [];
  const server = http.createServer((req, res) => {
    onRequest(req, (recorded) => {
      const { path } = recorded;
      requests.push(recorded);
      const handler = routes.get(path);
      if (handler === undefined) {
        json(res, 404, { error: 'not_found' });
        return;
      }
      Promise.resolve(handler(recorded, res)).catch((error: unknown) => {
        res.destroy(error instanceof Error ? error : new Error(String(error)));
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    requestsTo: (path) => requests.filter((r) => r.path === path),
    on: (path, handler) => routes.set(path, handler),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
