import { execFile } from 'node:child_process';
import path from 'node:path';
import { REPO_ROOT } from './support/processes';
import { ADMIN, postJson, startStack, type Stack } from './support/stack';

const CLI = path.join(REPO_ROOT, 'apps/cli/dist/main.js');

/** Runs the built CLI (`npx turbo run build` first) with only the environment given. */
function imagegen(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env: { PATH: process.env.PATH ?? '', ...env }, timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

describe('imagegen keys', () => {
  let stack: Stack;
  let env: Record<string, string>;
  beforeAll(async () => {
    stack = await startStack({ name: 'cli-keys', worker: false });
    env = { IMAGEGEN_URL: stack.baseUrl, IMAGEGEN_ADMIN_USER: ADMIN.user, IMAGEGEN_ADMIN_PASSWORD: ADMIN.password };
  });
  afterAll(() => stack.close());

  it('creates a key that works, lists it, revokes it', async () => {
    const created = await imagegen(['keys', 'create', 'acme'], env);
    expect(created).toMatchObject({ code: 0 });
    const key = created.stdout.trim();
    expect(key).toMatch(/^ig_[0-9a-f]{16}_/);
    expect((await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'from the cli key' }, { Authorization: `Bearer ${key}` })).status).toBe(202);

    const listed = await imagegen(['keys', 'list', 'acme', '--json'], env);
    expect(listed.code).toBe(0);
    const [entry] = JSON.parse(listed.stdout);
    expect(key.startsWith(`ig_${entry.prefix}_`)).toBe(true);
    expect(listed.stdout).not.toContain(key);

    // flags override the environment
    const revoked = await imagegen(['keys', 'revoke', 'acme', entry.id, '--url', stack.baseUrl, '--admin-user', ADMIN.user, '--admin-password', ADMIN.password]);
    expect(revoked.code).toBe(0);
    expect((await postJson(`${stack.baseUrl}/v1/generations`, { topic: 'revoked' }, { Authorization: `Bearer ${key}` })).status).toBe(401);
    expect(JSON.parse((await imagegen(['keys', 'list', 'acme', '--json'], env)).stdout)).toEqual([]);
  });

  it('fails with one clear line, never a stack trace', async () => {
    const cases = [
      await imagegen(['keys', 'create', 'acme'], { ...env, IMAGEGEN_ADMIN_PASSWORD: 'wrong' }),
      await imagegen(['keys', 'create', 'acme'], { IMAGEGEN_URL: stack.baseUrl }),
      await imagegen(['keys', 'create', 'a:b'], env),
      await imagegen(['keys', 'revoke', 'acme', 'key_0000000000000000'], env),
      await imagegen(['keys', 'list', 'acme'], { ...env, IMAGEGEN_URL: 'http://127.0.0.1:1' }),
      await imagegen(['keys', 'list', 'acme'], { ...env, IMAGEGEN_URL: 'not a url' }),
      await imagegen(['keys', 'bogus'], env),
    ];
    const messages = cases.map((c) => c.stderr.trim());
    expect(cases.map((c) => c.code)).toEqual([1, 1, 1, 1, 1, 1, 1]);
    expect(messages[0]).toMatch(/refused the operator credentials/);
    expect(messages[1]).toMatch(/IMAGEGEN_ADMIN_PASSWORD/);
    expect(messages[2]).toMatch(/400: The tenant name must be/);
    expect(messages[3]).toMatch(/404/);
    expect(messages[4]).toMatch(/cannot reach http:\/\/127\.0\.0\.1:1/);
    expect(messages[5]).toMatch(/not a URL/);
    for (const m of messages) expect(m).not.toMatch(/^\s+at |node_modules|\.js:\d+/m);
  });
});
