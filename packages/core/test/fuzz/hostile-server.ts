/**
 * A hostile authorization server for the fuzz tests: a local node:http server (so the real
 * transport runs) whose answer to every request follows a generated answer plan
 * (./answer-plans.ts).
 *
 * Every case has its own path prefix `/c<id>`: its endpoints, its JWKS and (for discovery) its
 * well-known locations, so a late request of one case never meets another case's plan. Echoes are
 * made from what the request really carried (the Basic header, the client assertion, the DPoP proof,
 * the form); what it did not carry falls back to another secret it did.
 */
import { createHmac, generateKeyPairSync, sign } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { ServerMetadata } from '@tessera/core';
import { onRequest } from '../support/fake-server.js';
import type { RecordedRequest } from '../support/fake-server.js';
import { KID } from './answer-plans.js';
import type {
  Answer,
  Body,
  CasePlan,
  Echo,
  EchoEncoding,
  HeaderPart,
  HttpAnswer,
  Json,
  JwtPlan,
  SecretSource,
  VarName,
} from './answer-plans.js';

// --- the server ----------------------------------------------------------------------------------

/** What the server knows about the client of a case (it is the client's authorization server). */
export interface Registration {
  clientId: string;
  /** The registered secret: a server knows it even when only an HMAC assertion is sent. */
  clientSecret?: string;
}

export interface HostileCase {
  readonly id: number;
  readonly issuer: string;
  /** Metadata of the case's server: every endpoint lives under the case's prefix. */
  readonly metadata: ServerMetadata;
  readonly requests: RecordedRequest[];
  /** Plans the server could not carry out (a harness bug, not an SDK one). */
  readonly harnessErrors: string[];
}

export interface HostileServer {
  readonly url: string;
  open(plan: CasePlan, registration: Registration): HostileCase;
  close(): Promise<void>;
}

interface OpenCase extends HostileCase {
  plan: CasePlan;
  registration: Registration;
  served: number;
}

interface Keys {
  signing: KeyObject;
  other: KeyObject;
  jwk: Record<string, unknown>;
  weakJwk: Record<string, unknown>;
}

export async function startHostileServer(): Promise<HostileServer> {
  const keys = makeKeys();
  const cases = new Map<number, OpenCase>();
  const strays: string[] = [];
  let nextId = 0;
  const server = http.createServer((req, res) => {
    onRequest(req, (recorded) => {
      const { path } = recorded;
      const id = /\/c(\d+)(?=\/|$)/.exec(path)?.[1];
      const fuzzCase = id === undefined ? undefined : cases.get(Number(id));
      if (fuzzCase === undefined) {
        strays.push(path);
        res.writeHead(404).end();
        return;
      }
      fuzzCase.requests.push(recorded);
      const jwks = path.endsWith('/jwks');
      const answer = jwks
        ? (fuzzCase.plan.jwks ?? validJwks)
        : fuzzCase.plan.answers[Math.min(fuzzCase.served++, fuzzCase.plan.answers.length - 1)]!;
      const context: RenderContext = { fuzzCase, keys, received: received(recorded, fuzzCase.registration) };
      try {
        serve(answer, req.socket, res, context);
      } catch (error) {
        fuzzCase.harnessErrors.push(
          `could not serve ${JSON.stringify(answer).slice(0, 300)}: ${String(error)}`,
        );
        req.socket.destroy();
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    open(plan, registration) {
      const id = ++nextId;
      const issuer = `${url}/c${id}`;
      const fuzzCase: OpenCase = {
        id,
        issuer,
        metadata: {
          issuer,
          token_endpoint: `${issuer}/token`,
          introspection_endpoint: `${issuer}/introspect`,
          revocation_endpoint: `${issuer}/revoke`,
          device_authorization_endpoint: `${issuer}/device`,
          backchannel_authentication_endpoint: `${issuer}/ciba`,
          jwks_uri: `${issuer}/jwks`,
          token_endpoint_auth_methods_supported: [
            'client_secret_basic',
            'client_secret_post',
            'client_secret_jwt',
            'private_key_jwt',
          ],
          grant_types_supported: [
            'client_credentials',
            'refresh_token',
            'urn:ietf:params:oauth:grant-type:token-exchange',
          ],
          dpop_signing_alg_values_supported: ['ES256'],
          introspection_signing_alg_values_supported: ['RS256'],
          backchannel_token_delivery_modes_supported: ['poll'],
        },
        requests: [],
        harnessErrors: strays.length > 0 ? [`requests to unknown cases: ${strays.splice(0).join(', ')}`] : [],
        plan,
        registration,
        served: 0,
      };
      // Only the latest few cases can still be asked; older plans are dropped.
      cases.delete(id - 64);
      cases.set(id, fuzzCase);
      return fuzzCase;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

function makeKeys(): Keys {
  const signing = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const other = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const weak = generateKeyPairSync('rsa', { modulusLength: 1024 });
  return {
    signing: signing.privateKey,
    other: other.privateKey,
    jwk: { ...signing.publicKey.export({ format: 'jwk' }), kid: KID, alg: 'RS256', use: 'sig' },
    weakJwk: { ...weak.publicKey.export({ format: 'jwk' }), kid: KID, alg: 'RS256', use: 'sig' },
  };
}

const validJwks: Answer = {
  answer: 'http',
  status: 200,
  interim: [],
  contentType: 'application/json',
  headers: [],
  body: { json: { $object: [['keys', [{ $var: 'jwk' }]]] } },
  framing: 'length',
};

// --- rendering -----------------------------------------------------------------------------------

interface RenderContext {
  fuzzCase: OpenCase;
  keys: Keys;
  received: Partial<Record<SecretSource, string>>;
}

/** Used in order when the request did not carry what the plan asks to echo. */
const FALLBACK: readonly SecretSource[] = [
  'token',
  'refresh_token',
  'device_code',
  'auth_req_id',
  'subject_token',
  'client_secret',
  'basic_credentials',
  'client_assertion',
  'dpop',
];

function received(
  request: RecordedRequest,
  registration: Registration,
): Partial<Record<SecretSource, string>> {
  const { form } = request;
  const authorization = request.headers.authorization;
  const basic = authorization === undefined ? undefined : /^Basic\s+(\S+)/i.exec(authorization)?.[1];
  const dpop = request.headers.dpop;
  const found: Partial<Record<SecretSource, string>> = {};
  const set = (name: SecretSource, value: string | null | undefined): void => {
    if (typeof value === 'string' && value !== '') found[name] = value;
  };
  // A server knows the registered secret; it can only say it in answer to an authenticated request.
  set(
    'client_secret',
    form.get('client_secret') ?? (request.method === 'POST' ? registration.clientSecret : undefined),
  );
  set('client_assertion', form.get('client_assertion'));
  set('authorization', authorization);
  set('basic_credentials', basic);
  set('basic_decoded', basic === undefined ? undefined : Buffer.from(basic, 'base64').toString('utf8'));
  set('dpop', typeof dpop === 'string' ? dpop : undefined);
  for (const name of ['refresh_token', 'token', 'device_code', 'auth_req_id', 'subject_token'] as const)
    set(name, form.get(name));
  set('request_body', request.body);
  return found;
}

/** Writes `value` as the encoding says (also used by the checks to know every form of a secret). */
export function encodeEcho(value: string, as: EchoEncoding): string {
  switch (as) {
    case 'raw':
      return value;
    case 'form':
      return new URLSearchParams([['', value]]).toString().slice(1);
    case 'form-lower':
      return lowerHex(new URLSearchParams([['', value]]).toString().slice(1));
    case 'percent':
      return encodeURIComponent(value);
    case 'percent-lower':
      return lowerHex(encodeURIComponent(value));
    case 'upper':
      return value.toUpperCase();
    case 'lower':
      return value.toLowerCase();
    case 'base64':
      return Buffer.from(value, 'utf8').toString('base64');
    case 'base64url':
      return Buffer.from(value, 'utf8').toString('base64url');
    case 'json-php':
      return JSON.stringify(value)
        .slice(1, -1)
        .replace(/\//g, '\\/')
        .replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
    case 'json-go':
      return JSON.stringify(value)
        .slice(1, -1)
        .replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  }
}

function lowerHex(text: string): string {
  return text.replace(/%[0-9A-F]{2}/g, (escape) => escape.toLowerCase());
}

/** The echo's text as it goes on the wire, outside a JSON string. */
function echoText(echo: Echo, context: RenderContext): string {
  const value =
    context.received[echo.echo] ??
    FALLBACK.map((name) => context.received[name]).find((v) => v !== undefined) ??
    '';
  const encoded = encodeEcho(value, echo.as);
  if (echo.keep === undefined) return encoded;
  return 'prefix' in echo.keep ? encoded.slice(0, echo.keep.prefix) : encoded.slice(-echo.keep.suffix);
}

/** The echo inside a JSON string: the json-* encodings are already escaped, the others are escaped now. */
function echoInJson(echo: Echo, context: RenderContext): string {
  const text = echoText(echo, context);
  return echo.as === 'json-php' || echo.as === 'json-go' ? text : JSON.stringify(text).slice(1, -1);
}

function isEcho(part: unknown): part is Echo {
  return typeof part === 'object' && part !== null && 'echo' in part;
}

function vars(name: VarName, context: RenderContext): string {
  const { fuzzCase, keys } = context;
  switch (name) {
    case 'issuer':
      return JSON.stringify(fuzzCase.issuer);
    case 'client_id':
      return JSON.stringify(fuzzCase.registration.clientId);
    case 'jwk':
      return JSON.stringify(keys.jwk);
    case 'weak_jwk':
      return JSON.stringify(keys.weakJwk);
    default:
      return JSON.stringify(fuzzCase.metadata[name]);
  }
}

/** The JSON text of a planned value. */
export function renderJson(value: Json, context: RenderContext): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map((item) => renderJson(item, context)).join(',')}]`;
  if ('$object' in value) {
    return `{${value.$object.map(([key, member]) => `${JSON.stringify(key)}:${renderJson(member, context)}`).join(',')}}`;
  }
  if ('$raw' in value) return value.$raw;
  if ('$nested' in value) {
    const { depth, shape } = value.$nested;
    return shape === 'array'
      ? `${'['.repeat(depth)}${']'.repeat(depth)}`
      : `${'{"a":'.repeat(depth)}{}${'}'.repeat(depth)}`;
  }
  if ('$text' in value) {
    return `"${value.$text.map((part) => (isEcho(part) ? echoInJson(part, context) : JSON.stringify(part).slice(1, -1))).join('')}"`;
  }
  if ('$long' in value) return `"${'x'.repeat(value.$long)}"`;
  if ('$var' in value) return vars(value.$var, context);
  if ('$now' in value) return String(Math.floor(Date.now() / 1000) + value.$now);
  return JSON.stringify(renderJwt(value.$jwt, context));
}

function renderJwt(plan: JwtPlan, context: RenderContext): string {
  const header = Buffer.from(renderJson(plan.header, context)).toString('base64url');
  const payload = Buffer.from(renderJson(plan.payload, context)).toString('base64url');
  const input = `${header}.${payload}`;
  let signature: string;
  switch (plan.sign) {
    case 'rs256':
      signature = sign('sha256', Buffer.from(input), context.keys.signing).toString('base64url');
      break;
    case 'rs256-other-key':
      signature = sign('sha256', Buffer.from(input), context.keys.other).toString('base64url');
      break;
    case 'hs256-client-secret':
      signature = createHmac('sha256', context.fuzzCase.registration.clientSecret ?? '')
        .update(input)
        .digest('base64url');
      break;
    case 'none':
      signature = '';
      break;
    case 'garbage':
      signature = Buffer.from('not a signature, just bytes').toString('base64url');
      break;
    case 'truncated':
      signature = sign('sha256', Buffer.from(input), context.keys.signing).toString('base64url').slice(0, -6);
      break;
  }
  switch (plan.shape) {
    case 'jws':
      return `${input}.${signature}`;
    case 'five-parts':
      return `${input}.${signature}.AAAA.BBBB`;
    case 'two-parts':
      return input;
    case 'not-base64':
      return `${header}.!!${payload}*.${signature}`;
    case 'padded':
      return ` ${input}.${signature}\n`;
    case 'empty':
      return '';
  }
}

const MAX_BODY_IN_ERROR = 2048;

function renderBody(body: Body, context: RenderContext): Buffer {
  if ('json' in body) {
    let text = renderJson(body.json, context);
    if (body.bom) text = `\ufeff${text}`;
    let bytes = Buffer.from(text, body.utf16 ? 'utf16le' : 'utf8');
    if (body.truncate !== undefined) bytes = bytes.subarray(0, Math.floor(bytes.length * body.truncate));
    return bytes;
  }
  if ('text' in body)
    return Buffer.from(body.text.map((part) => (isEcho(part) ? echoText(part, context) : part)).join(''));
  if ('jwt' in body) return Buffer.from(renderJwt(body.jwt, context));
  if ('bytes' in body) {
    switch (body.bytes) {
      case 'empty':
        return Buffer.alloc(0);
      case 'nul':
        return Buffer.from([0, 0, 0, 0]);
      case 'invalid-utf8':
        return Buffer.from([0xff, 0xfe, 0x7b, 0x22, 0xc3, 0x28, 0x22, 0x7d]);
      case 'whitespace':
        return Buffer.from(' \r\n\t \n');
      case 'bom-only':
        return Buffer.from([0xef, 0xbb, 0xbf]);
    }
  }
  if ('huge' in body) {
    const { bytes, as } = body.huge;
    if (as === 'text') return Buffer.alloc(bytes, 'x');
    if (as === 'json-array') return Buffer.from(`[${'0,'.repeat(Math.floor(bytes / 2))}0]`);
    return Buffer.from(`{"access_token":"${'x'.repeat(bytes)}","token_type":"Bearer"}`);
  }
  const { echo, overlap, wrap } = body.straddle;
  const open = { text: 'error: ', json: '{"detail":"', html: '<html><body><h1>Bad Request</h1><p>' }[wrap];
  const close = { text: '\n', json: '"}', html: '</p></body></html>' }[wrap];
  const secret = wrap === 'json' ? echoInJson(echo, context) : echoText(echo, context);
  const padding = Math.max(0, MAX_BODY_IN_ERROR - overlap - Buffer.byteLength(open));
  return Buffer.from(`${open}${'.'.repeat(padding)}${secret}${'.'.repeat(600)}${close}`);
}

function renderHeader(parts: HeaderPart[], context: RenderContext): string {
  return parts
    .map((part) =>
      typeof part === 'string' ? part : isEcho(part) ? echoText(part, context) : 'h'.repeat(part.$long),
    )
    .join('');
}

const REASONS: Record<number, string> = {
  100: 'Continue',
  102: 'Processing',
  103: 'Early Hints',
  199: 'Odd',
};

/**
 * Sends an answer. What is written to the socket directly (not through `res`) leaves `res`
 * unfinished, so node would queue the next response on that connection forever: such answers
 * close the connection, unless hanging is the point.
 */
function serve(answer: Answer, socket: Socket, res: http.ServerResponse, context: RenderContext): void {
  switch (answer.answer) {
    case 'reset-before-headers':
      if (answer.how === 'rst') socket.resetAndDestroy();
      else if (answer.how === 'end') socket.end();
      else socket.destroy();
      return;
    case 'hang':
      if (answer.after === 'interim') socket.write('HTTP/1.1 102 Processing\r\n\r\n');
      return;
    case 'switching-protocols':
      socket.write('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n');
      if (answer.then === 'close') socket.end();
      else if (answer.then === 'garbage')
        socket.write(Buffer.from([0, 0, 0x12, 4, 0, 0, 0, 0, 0, 0xde, 0xad]));
      else if (answer.then === 'response') {
        const body = '{"access_token":"at-after-101-0123456789","token_type":"Bearer"}';
        socket.end(
          `HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
        );
      }
      return;
    case 'raw':
      socket.end(answer.text, 'latin1');
      return;
    case 'http':
      serveHttp(answer, res, socket, context);
  }
}

function serveHttp(
  answer: HttpAnswer,
  res: http.ServerResponse,
  socket: Socket,
  context: RenderContext,
): void {
  for (const interim of answer.interim) {
    if (interim.via === 'raw' || interim.status === 199) {
      const link = interim.status === 103 ? 'Link: </style.css>; rel=preload; as=style\r\n' : '';
      socket.write(`HTTP/1.1 ${interim.status} ${REASONS[interim.status]}\r\n${link}\r\n`);
    } else if (interim.status === 100) res.writeContinue();
    else if (interim.status === 102) res.writeProcessing();
    else res.writeEarlyHints({ link: '</style.css>; rel=preload; as=style' });
  }
  const body = renderBody(answer.body, context);
  const headers = new Map<string, string[]>();
  const add = (name: string, value: string): void => {
    headers.set(name, [...(headers.get(name) ?? []), value]);
  };
  if (answer.contentType !== null) add('content-type', answer.contentType);
  for (const [name, parts] of answer.headers) add(name, renderHeader(parts, context));
  const half = body.subarray(0, Math.floor(body.length / 2));
  const withLength = (length: number): Record<string, string[]> => {
    const all = Object.fromEntries(headers);
    all['content-length'] = [...(all['content-length'] ?? []), String(length)];
    return all;
  };
  switch (answer.framing) {
    case 'length':
      res.writeHead(answer.status, withLength(body.length));
      res.end(body);
      return;
    case 'chunked':
      res.writeHead(answer.status, Object.fromEntries(headers));
      res.write(half);
      res.end(body.subarray(half.length));
      return;
    case 'close':
      socket.end(
        Buffer.concat([
          rawHead(answer.status, { ...Object.fromEntries(headers), connection: ['close'] }),
          body,
        ]),
      );
      return;
    case 'length-short':
      socket.end(Buffer.concat([rawHead(answer.status, withLength(Math.floor(body.length / 2))), body]));
      return;
    case 'length-long':
      socket.write(Buffer.concat([rawHead(answer.status, withLength(body.length + 16)), body]));
      return;
    case 'reset-after-headers':
      socket.write(rawHead(answer.status, withLength(body.length)), () => socket.destroy());
      return;
    case 'reset-mid-body':
      socket.write(Buffer.concat([rawHead(answer.status, withLength(body.length)), half]), () =>
        socket.destroy(),
      );
      return;
    case 'rst-mid-body':
      socket.write(Buffer.concat([rawHead(answer.status, withLength(body.length)), half]), () =>
        socket.resetAndDestroy(),
      );
      return;
    case 'hang-after-headers':
      socket.write(rawHead(answer.status, withLength(body.length)));
      return;
    case 'hang-mid-body':
      socket.write(Buffer.concat([rawHead(answer.status, withLength(body.length)), half]));
  }
}

function rawHead(status: number, headers: Record<string, string[]>): Buffer {
  const lines = Object.entries(headers).flatMap(([name, values]) =>
    values.map((value) => `${name}: ${value}\r\n`),
  );
  return Buffer.from(`HTTP/1.1 ${status} Fuzz\r\n${lines.join('')}\r\n`, 'latin1');
}
