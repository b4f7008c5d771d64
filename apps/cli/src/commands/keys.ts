import type { Command } from 'commander';
import { apiKeyListSchema, createdApiKeySchema } from '@imagegen/shared/schemas';

// `--url` is the program's own option, shared by every command: read through optsWithGlobals
import { answerAs } from '../client';
import { DEFAULT_URL, loadCliEnv } from '../config';

interface AdminOptions {
  url?: string;
  adminUser?: string;
  adminPassword?: string;
  json?: boolean;
}

/** A failure the user can act on: printed as one line, exit code 1. */
class CliError extends Error {}

function connection(opts: AdminOptions): { base: string; authorization: string } {
  const env = loadCliEnv();
  const base = (opts.url ?? env.IMAGEGEN_URL ?? DEFAULT_URL).replace(/\/+$/, '');
  try {
    new URL(base);
  } catch {
    throw new CliError(`not a URL: ${base} (set IMAGEGEN_URL or --url)`);
  }
  const user = opts.adminUser ?? env.IMAGEGEN_ADMIN_USER ?? 'admin';
  const password = opts.adminPassword ?? env.IMAGEGEN_ADMIN_PASSWORD;
  if (!password) throw new CliError('operator credentials are required: set IMAGEGEN_ADMIN_PASSWORD (and IMAGEGEN_ADMIN_USER) or pass --admin-password');
  return { base, authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` };
}

async function call(opts: AdminOptions, method: string, path: string): Promise<unknown> {
  const { base, authorization } = connection(opts);
  let res: Response;
  try {
    res = await fetch(`${base}${path}`, { method, headers: { Authorization: authorization }, signal: AbortSignal.timeout(30_000) });
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).name;
    throw new CliError(`cannot reach ${base} (${cause})`);
  }
  const text = await res.text();
  let body: unknown;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    body = undefined;
  }
  if (!res.ok) {
    const detail = (body as { detail?: string } | undefined)?.detail;
    if (res.status === 401) throw new CliError(`the server refused the operator credentials (401)${detail ? `: ${detail}` : ''}`);
    throw new CliError(`${method} ${path} failed with ${res.status}${detail ? `: ${detail}` : ''}`);
  }
  return body;
}

function withConnection(cmd: Command): Command {
  return cmd
    .option('--admin-user <user>', 'operator user (default: $IMAGEGEN_ADMIN_USER or admin)')
    .option('--admin-password <password>', 'operator password (default: $IMAGEGEN_ADMIN_PASSWORD)')
    .option('--json', 'print JSON');
}

const segment = (s: string) => encodeURIComponent(s);

/** `imagegen keys create|list|revoke`: a tenant's managed API keys (operator credentials). */
export function register(program: Command): void {
  const keys = program.command('keys').description("manage a tenant's API keys (operator credentials)");

  withConnection(keys.command('create <tenant>').description('make a new key; it is shown once')).action(async (tenant: string, _opts: AdminOptions, cmd: Command) => {
    const opts = cmd.optsWithGlobals<AdminOptions>();
    const created = answerAs(createdApiKeySchema, await call(opts, 'POST', `/admin/tenants/${segment(tenant)}/keys`), connection(opts).base);
    if (opts.json) process.stdout.write(`${JSON.stringify(created)}\n`);
    else process.stdout.write(`${created.key}\n`);
    if (!opts.json) process.stderr.write(`created ${created.id} for ${tenant}; the key above is shown only once\n`);
  });

  withConnection(keys.command('list <tenant>').description("list a tenant's keys (id, prefix, created)")).action(async (tenant: string, _opts: AdminOptions, cmd: Command) => {
    const opts = cmd.optsWithGlobals<AdminOptions>();
    const { data } = answerAs(apiKeyListSchema, await call(opts, 'GET', `/admin/tenants/${segment(tenant)}/keys`), connection(opts).base);
    if (opts.json) process.stdout.write(`${JSON.stringify(data)}\n`);
    else for (const k of data) process.stdout.write(`${k.id}\t${k.prefix}\t${k.createdAt}\n`);
  });

  withConnection(keys.command('revoke <tenant> <id>').description('revoke a key: refused everywhere at once')).action(async (tenant: string, id: string, _opts: AdminOptions, cmd: Command) => {
    const opts = cmd.optsWithGlobals<AdminOptions>();
    await call(opts, 'DELETE', `/admin/tenants/${segment(tenant)}/keys/${segment(id)}`);
    if (opts.json) process.stdout.write(`${JSON.stringify({ id, revoked: true })}\n`);
    else process.stderr.write(`revoked ${id}\n`);
  });
}

export { CliError };
