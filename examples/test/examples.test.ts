/**
 * Smoke tests: every example runs unattended to the end, as a newcomer would run it.
 */
import { describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));

function run(script: string, ...args: string[]): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--conditions=tessera-source', '--import', 'tsx', script, ...args],
      { cwd: root, timeout: 60_000, env: { ...process.env, NODE_OPTIONS: '' } },
      (error, stdout, stderr) =>
        resolve({ code: error ? Number(error.code ?? 1) : 0, output: stdout + stderr }),
    );
  });
}

describe('examples', () => {
  it('quickstart (pnpm demo): a TokenManager prints its events as they happen', async () => {
    const { code, output } = await run('examples/quickstart.ts');
    for (const line of [
      /event token\.acquired +key=default .*grantType=client_credentials/,
      /event token\.stored +key=alice/,
      /event token\.refreshed +key=alice .*rotated=true/,
      /event token\.introspected key=alice active=true/,
      /event token\.cleared +key=alice reason=revoked/,
      /event token\.revoked +key=alice/,
      /alice's tokens after revocation: none/,
    ]) {
      expect(output).toMatch(line);
    }
    expect(code).toBe(0);
  }, 60_000);

  it('express-service: an Express route calls an API with a managed token, one token for both requests', async () => {
    const { code, output } = await run('examples/express-service.ts');
    expect(output.match(/token\.acquired key=default/g)).toHaveLength(1);
    expect(output).toMatch(/GET \/invoices #1 -> 200 \[\{"id":"inv-1"/);
    expect(output).toMatch(/GET \/invoices #2 -> 200/);
    expect(output).toContain('GET /healthz -> 200');
    expect(output).toContain('done.');
    expect(code).toBe(0);
  }, 60_000);

  it('resource-server: an API guarded by requireToken, a managed client, an evicted token refused', async () => {
    const { code, output } = await run('examples/resource-server.ts');
    expect(output).toMatch(/GET \/orders without a token -> 401/);
    expect(output).toMatch(/WWW-Authenticate: Bearer realm="api", resource_metadata=/);
    expect(output).toMatch(
      /GET \/\.well-known\/oauth-protected-resource -> 200 \{"resource":"https:\/\/api\.tessera\.test"/,
    );
    expect(output).toMatch(/GET \/orders with the managed token -> 200/);
    expect(output).toMatch(/token\.verified kind=jwt clientId=basic-client cached=true/);
    expect(output).toMatch(/GET \/orders with the revoked token -> 401 .*the token was revoked/);
    expect(output).toMatch(/GET \/orders through manager\.fetch\(\) -> 200/);
    expect(output).toContain('done.');
    expect(code).toBe(0);
  }, 60_000);

  it('observability: pino lines, nested spans and metrics for an acquisition, a refresh and a failure', async () => {
    const { code, output } = await run('examples/observability.ts');
    // Logs: every exchange at debug, the events at info, the refused refresh token at error.
    expect(output).toMatch(/"level":20,.*"endpoint":"token endpoint",.*"status":200/);
    expect(output).toMatch(/"level":30,.*"event":"token\.acquired","key":"default".*"token":"[0-9a-f]{16}"/);
    expect(output).toMatch(/"level":30,.*"event":"token\.refreshed","key":"ada",.*"rotated":true/);
    expect(output).toMatch(/"level":50,.*"event":"refresh\.failed","key":"ada","errorCode":"OAUTH_ERROR"/);
    // Spans: the renewal inside the handler's span; its outcome; the metrics at shutdown.
    expect(output).toContain("name: 'GET /reports'");
    expect(output).toContain("'tessera.refresh.outcome': 'acquired'");
    expect(output).toContain("'tessera.refresh.rotated': true");
    expect(output).toContain("'tessera.refresh.outcome': 'failed'");
    for (const metric of [
      'tessera.token.requests',
      'tessera.token.request.duration',
      'tessera.refresh.failures',
    ]) {
      expect(output).toContain(`name: '${metric}'`);
    }
    // No token: opaque ones never show, and no JWT (an ID token) either.
    expect(output).not.toMatch(/eyJ[\w-]+\.eyJ/);
    expect(output).not.toMatch(/access_token|refresh_token"|Authorization:|Basic [A-Za-z0-9+/=]{8}/);
    expect(output).toContain('done.');
    expect(code).toBe(0);
  }, 60_000);

  it('client-basics: discovers, gets, introspects and revokes a token', async () => {
    const { code, output } = await run('examples/client-basics.ts');
    expect(output).toContain('active             true');
    expect(output).toContain('active             false');
    expect(output).toContain('Done.');
    expect(code).toBe(0);
  }, 60_000);

  it('redis-fleet: one refresh serves every worker', async () => {
    const { code, output } = await run('examples/redis-fleet.ts', '3');
    expect(output.match(/token\.refreshed key=user:alice rotated=true/g)).toHaveLength(1);
    expect(output.match(/100 calls answered with 1 token/g)).toHaveLength(3);
    expect(output).toContain('refresh requests the authorization server received: 1');
    expect(code).toBe(0);
  }, 60_000);

  it('file-store: two processes share one encrypted directory, one refresh serves both', async () => {
    const { code, output } = await run('examples/file-store.ts');
    expect(output.match(/event token\.acquired +key=default .*grantType=client_credentials/g)).toHaveLength(
      1,
    );
    expect(output).toMatch(/\[A\] B got the service token sha256:\w+: A's, read from the directory/);
    expect(output).toMatch(/\[A\] event token\.stored +key=alice/);
    expect(output).toMatch(/\[A\] B got alice's token sha256:\w+: the one A stored/);
    expect(output.match(/\[[AB]\] event token\.refreshed key=alice .*rotated=true/g)).toHaveLength(1);
    expect(output).toMatch(/A has (sha256:\w+), B has \1: the same new token/);
    expect(output).toMatch(/one refresh for both: ([AB]) refreshed, [AB] used the token \1 stored/);
    expect(output).toContain('refresh requests the authorization server received: 1');
    expect(output).not.toMatch(/refresh\.failed|store\.failed|\?!/);
    expect(output).toContain('done.');
    expect(code).toBe(0);
  }, 60_000);

  it('device-flow --auto-approve: shows the code, counts down, prints the claims', async () => {
    const { code, output } = await run('examples/device-flow.ts', '--auto-approve');
    expect(output).toMatch(/enter the code {2}[A-Z]{4}-[A-Z]{4}/);
    expect(output).toContain('waiting for approval: next check in 1 s');
    expect(output).toContain('sub        alice');
    expect(code).toBe(0);
  }, 60_000);

  it("testing/node-test: the README's service test passes under node:test", async () => {
    const { code, output } = await run(
      '--test',
      '--test-reporter=tap',
      'examples/testing/node-test/token-renewal.test.ts',
    );
    expect(output).toMatch(/^# pass 1$/m);
    expect(output).toMatch(/^# fail 0$/m);
    expect(code).toBe(0);
  }, 60_000);

  it("testing/vitest: the README's service test passes under vitest", async () => {
    const vitest = fileURLToPath(new URL('../node_modules/vitest/vitest.mjs', import.meta.url));
    const { code, output } = await new Promise<{ code: number; output: string }>((resolve) => {
      execFile(
        process.execPath,
        [vitest, 'run', '--reporter=verbose'],
        {
          cwd: fileURLToPath(new URL('../testing/vitest/', import.meta.url)),
          timeout: 60_000,
          env: { ...process.env, NODE_OPTIONS: '', NO_COLOR: '1', FORCE_COLOR: '0' },
        },
        (error, stdout, stderr) =>
          resolve({ code: error ? Number(error.code ?? 1) : 0, output: stdout + stderr }),
      );
    });
    expect(output).toContain('gets a new token once the old one has expired, and none before');
    expect(output).toMatch(/Tests +1 passed/);
    expect(code).toBe(0);
  }, 60_000);
});
