// Static checks of docker-compose.yml and the Dockerfile(s) it builds: no Docker engine needed.
// Each check is a function that throws on a bad deployment; the "catches" tests feed each one
// a broken copy to prove it can fail.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'yaml';
import { apiEnvShape, loadApiConfig } from '@imagegen/api';
import { loadWorkerConfig, workerEnvShape } from '@imagegen/worker';

const ROOT = path.resolve(__dirname, '..');
const API_MAIN = 'apps/api/dist/main.js';
const WORKER_MAIN = 'apps/worker/dist/main.js';

type Doc = Record<string, any>;

function loadCompose(): Doc {
  return parse(readFileSync(path.join(ROOT, 'docker-compose.yml'), 'utf8'), { merge: true }) as Doc;
}

const clone = <T>(v: T): T => structuredClone(v);

function fail(message: string): never {
  throw new Error(message);
}

function service(doc: Doc, name: string): Doc {
  return doc.services?.[name] ?? fail(`service ${name} is missing`);
}

/** `command` as a list of words, whether written as a string or a list. */
function words(command: unknown): string[] {
  if (command === undefined || command === null) return [];
  if (Array.isArray(command)) return command.map(String);
  return String(command).trim().split(/\s+/);
}

function env(svc: Doc): Record<string, string> {
  const e = svc.environment ?? {};
  if (Array.isArray(e)) {
    return Object.fromEntries(
      e.map((item: string) => {
        const at = item.indexOf('=');
        return at < 0 ? [item, ''] : [item.slice(0, at), item.slice(at + 1)];
      }),
    );
  }
  return Object.fromEntries(Object.entries(e).map(([k, v]) => [k, v === null ? '' : String(v)]));
}

/** Named volumes mounted by a service: target → volume name. Bind mounts are left out. */
function namedMounts(doc: Doc, svc: Doc): Map<string, string> {
  const out = new Map<string, string>();
  for (const v of svc.volumes ?? []) {
    let source: string | undefined;
    let target: string | undefined;
    if (typeof v === 'string') [source, target] = v.split(':');
    else if (v?.type === undefined || v.type === 'volume') ({ source, target } = v);
    if (source && target && doc.volumes && source in doc.volumes) out.set(path.posix.normalize(target), source);
  }
  return out;
}

// ---------------------------------------------------------------- Dockerfile

interface Stage {
  name?: string;
  from: string;
  cmd?: string[];
}

/** Stages of a Dockerfile with their base and their CMD (exec or shell form). */
function parseDockerfile(text: string): Stage[] {
  const lines = text
    .replace(/\\\r?\n/g, ' ')
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));
  const stages: Stage[] = [];
  for (const line of lines) {
    const [instruction = '', ...rest] = line.split(/\s+/);
    const args = rest.join(' ');
    if (instruction.toUpperCase() === 'FROM') {
      const m = /^(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?/i.exec(args) ?? fail(`bad FROM: ${line}`);
      stages.push({ from: m[1]!, name: m[2]?.toLowerCase() });
    } else if (instruction.toUpperCase() === 'CMD') {
      const stage = stages.at(-1) ?? fail('CMD before FROM');
      stage.cmd = args.startsWith('[') ? (JSON.parse(args) as string[]) : ['/bin/sh', '-c', args];
    }
  }
  return stages;
}

/** The CMD a build target ends up with, following `FROM <earlier stage>`. */
function stageCmd(stages: Stage[], target: string | undefined): string[] | undefined {
  let stage = target === undefined ? stages.at(-1) : stages.find((s) => s.name === target.toLowerCase());
  if (!stage) fail(`Dockerfile has no stage ${target}`);
  for (let hops = 0; stage && hops < stages.length; hops++) {
    if (stage.cmd) return stage.cmd;
    const base = stage.from.toLowerCase();
    stage = stages.find((s) => s.name === base);
  }
  return undefined;
}

type ReadFile = (relPath: string) => string;
const readFromRepo: ReadFile = (rel) => {
  const file = path.join(ROOT, rel);
  if (!existsSync(file)) fail(`${rel} does not exist`);
  return readFileSync(file, 'utf8');
};

/** What the container runs: the service's `command`, else its image's CMD. */
function effectiveCommand(svc: Doc, readFile: ReadFile): string[] {
  const build = typeof svc.build === 'string' ? { context: svc.build } : (svc.build ?? fail('service is not built from this repository'));
  const dockerfile = path.posix.join(build.context ?? '.', build.dockerfile ?? 'Dockerfile');
  const imageCmd = stageCmd(parseDockerfile(readFile(dockerfile)), build.target);
  return svc.command !== undefined ? words(svc.command) : (imageCmd ?? fail(`${dockerfile} target ${build.target} has no CMD`));
}

/** Both must name the entry point: the compose command and the image's own CMD (for `docker run`). */
function checkEntryPoint(doc: Doc, name: string, main: string, readFile: ReadFile = readFromRepo): void {
  const svc = service(doc, name);
  const runs = effectiveCommand(svc, readFile);
  if (!runs.includes(main)) fail(`${name} runs ${JSON.stringify(runs)}, not ${main}`);
  const build = typeof svc.build === 'string' ? { context: svc.build } : svc.build;
  const dockerfile = path.posix.join(build.context ?? '.', build.dockerfile ?? 'Dockerfile');
  const imageCmd = stageCmd(parseDockerfile(readFile(dockerfile)), build.target) ?? [];
  if (!imageCmd.includes(main)) fail(`${dockerfile} target ${build.target} has CMD ${JSON.stringify(imageCmd)}, not ${main}`);
}

// ---------------------------------------------------------------- checks

function checkServices(doc: Doc): void {
  for (const name of ['redis', 'api', 'worker']) service(doc, name);
}

function checkRedis(doc: Doc): void {
  const redis = service(doc, 'redis');
  if (!/^redis(:|$)/.test(String(redis.image ?? ''))) fail(`redis image is ${redis.image}`);
  const cmd = words(redis.command);
  const option = (flag: string) => {
    const i = cmd.indexOf(`--${flag}`);
    return i < 0 ? undefined : cmd[i + 1];
  };
  if (option('appendonly') !== 'yes') fail(`redis command lacks --appendonly yes: ${cmd.join(' ')}`);
  if (option('maxmemory-policy') !== 'noeviction') fail(`redis command lacks --maxmemory-policy noeviction: ${cmd.join(' ')}`);
  if (![...namedMounts(doc, redis).keys()].includes('/data')) fail('redis keeps /data on no named volume');
  if (!redis.healthcheck?.test) fail('redis has no healthcheck');
}

function checkSharedData(doc: Doc): void {
  const [api, worker] = [service(doc, 'api'), service(doc, 'worker')];
  const dataDir = env(api).DATA_DIR;
  if (!dataDir) fail('api has no DATA_DIR');
  if (env(worker).DATA_DIR !== dataDir) fail(`worker DATA_DIR ${env(worker).DATA_DIR} differs from api ${dataDir}`);
  const volumeHolding = (svc: Doc) => {
    const mounts = namedMounts(doc, svc);
    const target = [...mounts.keys()].find((t) => dataDir === t || dataDir.startsWith(`${t.replace(/\/$/, '')}/`));
    return target === undefined ? undefined : `${mounts.get(target)}@${target}`;
  };
  const apiVol = volumeHolding(api) ?? fail(`api's DATA_DIR ${dataDir} is on no named volume`);
  const workerVol = volumeHolding(worker) ?? fail(`worker's DATA_DIR ${dataDir} is on no named volume`);
  if (apiVol !== workerVol) fail(`api stores on ${apiVol}, worker on ${workerVol}`);
}

function checkReplicas(doc: Doc): void {
  const replicas = Number(service(doc, 'worker').deploy?.replicas ?? 1);
  if (!(replicas >= 2)) fail(`worker replicas ${replicas} < 2`);
}

function checkRedisUrl(doc: Doc): void {
  for (const name of ['api', 'worker']) {
    const raw = env(service(doc, name)).REDIS_URL ?? fail(`${name} has no REDIS_URL`);
    const url = new URL(raw);
    if (url.protocol !== 'redis:' || url.hostname !== 'redis' || (url.port || '6379') !== '6379') {
      fail(`${name} REDIS_URL ${raw} does not point at the redis service`);
    }
  }
}

function checkApiWiring(doc: Doc): void {
  const api = service(doc, 'api');
  const ports = (api.ports ?? []).map((p: unknown) => (typeof p === 'object' ? `${(p as Doc).published}:${(p as Doc).target}` : String(p)));
  if (!ports.some((p: string) => /(^|:)(\$\{PORT:-3000\}|3000):3000$/.test(p))) fail(`api does not publish 3000: ${ports}`);
  if (api.depends_on?.redis?.condition !== 'service_healthy') fail('api does not wait for a healthy redis');
  if (!JSON.stringify(api.healthcheck?.test ?? '').includes('/healthz')) fail('api healthcheck does not use /healthz');
  if (!service(doc, 'worker').depends_on?.redis) fail('worker does not depend on redis');
}

// ---------------------------------------------------------------- profile s3

const S3_OVERRIDE = 'docker-compose.s3.yml';

function loadS3Override(): Doc {
  return parse(readFromRepo(S3_OVERRIDE), { merge: true }) as Doc;
}

/** `${NAME:-default}` as compose resolves it when NAME is unset (and `$$` as a literal `$`). */
function interpolate(value: string, vars: Record<string, string> = {}): string {
  return value.replace(/\$\{([A-Z0-9_]+)(?::-([^}]*))?\}/g, (_m, name: string, def: string | undefined) => vars[name] ?? def ?? '').replace(/\$\$/g, '$');
}

function inProfile(svc: Doc, profile: string): boolean {
  return Array.isArray(svc.profiles) && svc.profiles.includes(profile);
}

/** MinIO and its bucket job only in the s3 profile; the default stack starts without them. */
function checkS3Profile(doc: Doc): void {
  const minio = service(doc, 'minio');
  const bucketJob = service(doc, 'minio-bucket');
  for (const [name, svc] of [['minio', minio], ['minio-bucket', bucketJob]] as const) if (!inProfile(svc, 's3')) fail(`${name} is not in the s3 profile`);
  for (const name of ['redis', 'api', 'worker']) if (service(doc, name).profiles) fail(`${name} has profiles: the default stack must start it`);
  if (!/^minio\/minio(:|$)/.test(String(minio.image ?? ''))) fail(`minio image is ${minio.image}`);
  if (!/^minio\/mc(:|$)/.test(String(bucketJob.image ?? ''))) fail(`minio-bucket image is ${bucketJob.image}`);
  if (!words(minio.command).includes('server')) fail(`minio runs ${JSON.stringify(minio.command)}, not the server`);
  const dataTarget = words(minio.command)[words(minio.command).indexOf('server') + 1];
  if (!dataTarget || !namedMounts(doc, minio).has(dataTarget)) fail(`minio keeps ${dataTarget} on no named volume`);
  if (!minio.healthcheck?.test) fail('minio has no healthcheck');
  if (bucketJob.depends_on?.minio?.condition !== 'service_healthy') fail('minio-bucket does not wait for a healthy minio');
  if (!/mc mb/.test(JSON.stringify([bucketJob.entrypoint, bucketJob.command]))) fail('minio-bucket does not make the bucket');
  if (String(bucketJob.restart ?? 'no') !== 'no') fail('minio-bucket is restarted: it is a one-shot job');
}

/** The override points api and workers at that MinIO, with its credentials and bucket, after the bucket exists. */
function checkS3Wiring(doc: Doc, override: Doc): void {
  const minio = env(service(doc, 'minio'));
  const bucketJob = env(service(doc, 'minio-bucket'));
  for (const name of ['api', 'worker']) {
    const svc = override.services?.[name] ?? fail(`${S3_OVERRIDE} does not configure ${name}`);
    const e = Object.fromEntries(Object.entries(env(svc)).map(([k, v]) => [k, interpolate(v)]));
    if (e.STORAGE !== 's3') fail(`${name} has STORAGE=${e.STORAGE} in ${S3_OVERRIDE}`);
    const endpoint = new URL(e.S3_ENDPOINT ?? fail(`${name} has no S3_ENDPOINT`));
    if (endpoint.hostname !== 'minio' || endpoint.port !== '9000') fail(`${name} S3_ENDPOINT ${e.S3_ENDPOINT} is not the minio service`);
    if (e.S3_FORCE_PATH_STYLE !== 'true') fail(`${name} does not use path-style requests, which MinIO needs`);
    if (!e.S3_BUCKET || e.S3_BUCKET !== interpolate(bucketJob.S3_BUCKET ?? '')) fail(`${name} uses bucket ${e.S3_BUCKET}, minio-bucket makes ${interpolate(bucketJob.S3_BUCKET ?? '')}`);
    if (e.AWS_ACCESS_KEY_ID !== interpolate(minio.MINIO_ROOT_USER ?? '') || e.AWS_SECRET_ACCESS_KEY !== interpolate(minio.MINIO_ROOT_PASSWORD ?? '')) fail(`${name} credentials are not minio's`);
    if (svc.depends_on?.['minio-bucket']?.condition !== 'service_completed_successfully') fail(`${name} does not wait for the bucket`);
    // the settings as the process reads them: accepted, and on object storage
    const config = name === 'api' ? loadApiConfig(e) : loadWorkerConfig(e);
    if (config.STORAGE !== 's3' || config.S3_BUCKET !== e.S3_BUCKET) fail(`${name} config does not read STORAGE=s3`);
  }
}

// ---------------------------------------------------------------- settings

/** Every variable the config schemas define, derived from their shapes: what the API and the workers read. */
const SETTINGS = [...new Set([...Object.keys(apiEnvShape), ...Object.keys(workerEnvShape)])].sort();

/** What compose decides for the containers themselves (METRICS_PORT: what the monitoring profile scrapes); every other setting comes through env_file. */
const CONTAINER_ENV = new Set(['REDIS_URL', 'DATA_DIR', 'PORT', 'PUBLIC_BASE_URL', 'METRICS_PORT']);

/** A service's env_file entries in their long form. */
function envFiles(svc: Doc): { path: string; required: boolean }[] {
  const raw = svc.env_file;
  if (raw === undefined || raw === null) return [];
  return (Array.isArray(raw) ? raw : [raw]).map((f: unknown) =>
    typeof f === 'string' ? { path: f, required: true } : { path: String((f as Doc).path), required: (f as Doc).required !== false },
  );
}

function checkEnvFile(doc: Doc, exists: (rel: string) => boolean = (rel) => existsSync(path.join(ROOT, rel))): void {
  for (const name of ['api', 'worker']) {
    const svc = service(doc, name);
    const files = envFiles(svc);
    if (!files.some((f) => path.posix.normalize(f.path) === '.env')) fail(`${name} does not read .env through env_file`);
    for (const f of files) if (f.required && !exists(f.path)) fail(`${name} requires env_file ${f.path}, which a fresh checkout lacks`);
    const extra = Object.keys(env(svc)).filter((k) => !CONTAINER_ENV.has(k));
    if (extra.length > 0) fail(`${name} sets ${extra.join(', ')} in compose instead of through env_file`);
  }
}

interface ExampleSetting {
  name: string;
  value: string;
}

/** `NAME=value` lines of an env file, each right below a comment line saying what it is. */
function parseEnvExample(text: string): ExampleSetting[] {
  const out: ExampleSetting[] = [];
  let previous = '';
  for (const line of text.split(/\r?\n/).map((l) => l.trim())) {
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (m) {
      if (!previous.startsWith('#') || previous.replace(/^#+/, '').trim() === '') fail(`${m[1]} has no comment line above it`);
      if (out.some((e) => e.name === m[1])) fail(`${m[1]} is listed twice`);
      out.push({ name: m[1]!, value: m[2]! });
    } else if (line && !line.startsWith('#')) {
      fail(`not a comment or NAME=value: ${line}`);
    }
    previous = line;
  }
  return out;
}

function sameNames(what: string, listed: string[], settings: string[] = SETTINGS): void {
  const missing = settings.filter((n) => !listed.includes(n));
  const unknown = listed.filter((n) => !settings.includes(n));
  if (missing.length) fail(`${what} lacks ${missing.join(', ')}`);
  if (unknown.length) fail(`${what} lists ${unknown.join(', ')}, which no config schema reads`);
}

function checkEnvExample(text: string, settings: string[] = SETTINGS): void {
  sameNames('.env.example', parseEnvExample(text).map((e) => e.name), settings);
}

/** Names in the first column of the README's configuration table. */
function readmeSettings(readme: string): string[] {
  const start = readme.indexOf('\n## Configuration');
  if (start < 0) fail('README has no Configuration section');
  const end = readme.indexOf('\n## ', start + 1);
  const section = readme.slice(start, end < 0 ? undefined : end);
  return section
    .split('\n')
    .filter((l) => /^\|\s*`/.test(l))
    .flatMap((l) => [...l.split('|')[1]!.matchAll(/`([A-Z][A-Z0-9_]*)`/g)].map((m) => m[1]!));
}

function checkReadme(readme: string, settings: string[] = SETTINGS): void {
  sameNames("README's configuration table", readmeSettings(readme), settings);
}

// ---------------------------------------------------------------- tests

describe('docker-compose.yml', () => {
  const doc = loadCompose();

  it('defines redis, api and worker', () => checkServices(doc));
  it('runs redis with AOF persistence and noeviction, on a volume, with a healthcheck', () => checkRedis(doc));
  it('gives api and worker the same DATA_DIR on the same named volume', () => checkSharedData(doc));
  it('runs at least two workers', () => checkReplicas(doc));
  it('points REDIS_URL of api and worker at the redis service', () => checkRedisUrl(doc));
  it('publishes the API on 3000, health-checked, after redis is healthy', () => checkApiWiring(doc));
  it('runs apps/api/dist/main.js in the api container', () => checkEntryPoint(doc, 'api', API_MAIN));
  it('runs apps/worker/dist/main.js in the worker containers', () => checkEntryPoint(doc, 'worker', WORKER_MAIN));

  it('passes every setting through env_file (.env, optional), setting in compose only what containers need', () => checkEnvFile(doc));

  it('.env.example lists every setting the config schemas define, each with a comment, and nothing else', () => {
    expect(SETTINGS.length).toBeGreaterThan(30);
    checkEnvExample(readFromRepo('.env.example'));
  });

  it('.env.example gives each setting its default', () => {
    const example = Object.fromEntries(parseEnvExample(readFromRepo('.env.example')).map((e) => [e.name, e.value]));
    expect(loadApiConfig(example)).toEqual(loadApiConfig({}));
    expect(loadWorkerConfig(example)).toEqual(loadWorkerConfig({}));
  });

  it("the README's configuration table lists every setting", () => checkReadme(readFromRepo('README.md')));

  it('has an s3 profile: MinIO with a healthcheck and a volume, and a one-shot minio/mc job making the bucket', () => checkS3Profile(doc));
  it(`${S3_OVERRIDE} runs the api and workers with STORAGE=s3 against that MinIO, its bucket and credentials`, () => checkS3Wiring(doc, loadS3Override()));

  it('builds images as a non-root user in production mode from node:20-bookworm-slim', () => {
    const files = new Set(['api', 'worker'].map((n) => {
      const b = service(doc, n).build;
      return path.posix.join(b.context ?? '.', b.dockerfile ?? 'Dockerfile');
    }));
    for (const file of files) {
      const text = readFromRepo(file);
      expect(text).toMatch(/^FROM node:20-bookworm-slim/m);
      expect(text).toMatch(/^USER (?!root\b)\S+/m);
      expect(text).toMatch(/NODE_ENV=production/);
      expect(text).toMatch(/npm ci/);
    }
  });

  describe('catches', () => {
    const broken = (mutate: (d: Doc) => void) => {
      const d = clone(doc);
      mutate(d);
      return d;
    };

    it('a missing service', () => {
      expect(() => checkServices(broken((d) => delete d.services.worker))).toThrow(/worker is missing/);
    });
    it('redis without AOF or with an evicting policy', () => {
      expect(() => checkRedis(broken((d) => (d.services.redis.command = 'redis-server --maxmemory-policy noeviction')))).toThrow(/appendonly/);
      expect(() => checkRedis(broken((d) => (d.services.redis.command = ['redis-server', '--appendonly', 'yes', '--maxmemory-policy', 'allkeys-lru'])))).toThrow(/noeviction/);
    });
    it('api and worker storing in different places', () => {
      expect(() => checkSharedData(broken((d) => (d.services.worker.environment.DATA_DIR = '/elsewhere')))).toThrow(/differs/);
      expect(() =>
        checkSharedData(
          broken((d) => {
            d.volumes.other = null;
            d.services.worker.volumes = [`other:${env(d.services.worker).DATA_DIR}`];
          }),
        ),
      ).toThrow(/api stores on .*, worker on other/);
      expect(() => checkSharedData(broken((d) => (d.services.api.volumes = [])))).toThrow(/no named volume/);
    });
    it('a single worker', () => {
      expect(() => checkReplicas(broken((d) => (d.services.worker.deploy.replicas = 1)))).toThrow(/< 2/);
      expect(() => checkReplicas(broken((d) => delete d.services.worker.deploy))).toThrow(/< 2/);
    });
    it('REDIS_URL pointing elsewhere', () => {
      expect(() => checkRedisUrl(broken((d) => (d.services.api.environment.REDIS_URL = 'redis://127.0.0.1:6379')))).toThrow(/api REDIS_URL/);
      expect(() => checkRedisUrl(broken((d) => delete d.services.worker.environment.REDIS_URL))).toThrow(/worker has no REDIS_URL/);
    });
    it('an API that is not published or not health-checked', () => {
      expect(() => checkApiWiring(broken((d) => (d.services.api.ports = ['8080:8080'])))).toThrow(/3000/);
      expect(() => checkApiWiring(broken((d) => delete d.services.api.healthcheck))).toThrow(/healthz/);
    });
    it('settings passed by name instead of env_file, or an env_file a checkout lacks', () => {
      expect(() => checkEnvFile(broken((d) => delete d.services.worker.env_file))).toThrow(/worker does not read .env/);
      expect(() => checkEnvFile(broken((d) => (d.services.api.env_file = '.env')), () => false)).toThrow(/api requires env_file .env/);
      expect(() => checkEnvFile(broken((d) => (d.services.api.environment.API_KEYS = '${API_KEYS:-}')))).toThrow(/api sets API_KEYS in compose/);
    });
    it('an s3 profile that is missing, unhealthy, or started by default', () => {
      expect(() => checkS3Profile(broken((d) => delete d.services.minio.profiles))).toThrow(/minio is not in the s3 profile/);
      expect(() => checkS3Profile(broken((d) => (d.services.api.profiles = ['s3'])))).toThrow(/api has profiles/);
      expect(() => checkS3Profile(broken((d) => delete d.services.minio.healthcheck))).toThrow(/no healthcheck/);
      expect(() => checkS3Profile(broken((d) => (d.services['minio-bucket'].image = 'alpine')))).toThrow(/minio-bucket image/);
      expect(() => checkS3Profile(broken((d) => (d.services['minio-bucket'].entrypoint = ['/bin/sh', '-c', 'true'])))).toThrow(/does not make the bucket/);
      expect(() => checkS3Profile(broken((d) => (d.services.minio.volumes = [])))).toThrow(/no named volume/);
      expect(() => checkS3Profile(broken((d) => delete d.services.minio))).toThrow(/minio is missing/);
    });
    it('api or workers not wired to that MinIO', () => {
      const override = loadS3Override();
      const brokenOverride = (mutate: (o: Doc) => void) => {
        const o = clone(override);
        mutate(o);
        return o;
      };
      expect(() => checkS3Wiring(doc, brokenOverride((o) => (o.services.worker.environment = { ...o.services.worker.environment, STORAGE: 'fs' })))).toThrow(/worker has STORAGE=fs/);
      expect(() => checkS3Wiring(doc, brokenOverride((o) => (o.services.api.environment = { ...o.services.api.environment, S3_BUCKET: 'other' })))).toThrow(/api uses bucket other/);
      expect(() => checkS3Wiring(doc, brokenOverride((o) => (o.services.api.environment = { ...o.services.api.environment, S3_ENDPOINT: 'http://localhost:9000' })))).toThrow(/not the minio service/);
      expect(() => checkS3Wiring(doc, brokenOverride((o) => (o.services.worker.environment = { ...o.services.worker.environment, AWS_SECRET_ACCESS_KEY: 'x' })))).toThrow(/credentials/);
      expect(() => checkS3Wiring(doc, brokenOverride((o) => delete o.services.worker.depends_on))).toThrow(/does not wait for the bucket/);
      expect(() => checkS3Wiring(doc, brokenOverride((o) => delete o.services.api))).toThrow(/does not configure api/);
    });
    it('a setting missing from .env.example, unknown to the schemas, or without its comment', () => {
      const text = readFromRepo('.env.example');
      expect(() => checkEnvExample(text.replace(/^THUMBHASH=.*$/m, ''))).toThrow(/lacks THUMBHASH/);
      expect(() => checkEnvExample(`${text}\n# something new\nNEW_SETTING=1\n`)).toThrow(/lists NEW_SETTING/);
      expect(() => checkEnvExample(text, [...SETTINGS, 'UNDOCUMENTED_SETTING'])).toThrow(/lacks UNDOCUMENTED_SETTING/);
      expect(() => checkEnvExample(text.replace(/^# .*\n(?=HOST=)/m, '\n'))).toThrow(/HOST has no comment/);
    });
    it('a setting missing from the README', () => {
      expect(() => checkReadme(readFromRepo('README.md').replace(/^\| `THUMBHASH` .*$/m, ''))).toThrow(/lacks THUMBHASH/);
      expect(() => checkReadme(readFromRepo('README.md'), [...SETTINGS, 'UNDOCUMENTED_SETTING'])).toThrow(/lacks UNDOCUMENTED_SETTING/);
    });
    it('a wrong entry point, in compose or in the Dockerfile', () => {
      expect(() => checkEntryPoint(broken((d) => (d.services.worker.command = 'node apps/api/dist/main.js')), 'worker', WORKER_MAIN)).toThrow(/not apps\/worker/);
      const swapped: ReadFile = (rel) => readFromRepo(rel).replaceAll(WORKER_MAIN, 'apps/worker/dist/oops.js');
      expect(() => checkEntryPoint(doc, 'worker', WORKER_MAIN, swapped)).toThrow(/CMD/);
      const noCommand = broken((d) => delete d.services.api.command);
      const noCmd: ReadFile = (rel) => readFromRepo(rel).replace(/^CMD .*api\/dist\/main\.js.*$/m, '');
      expect(() => checkEntryPoint(noCommand, 'api', API_MAIN, noCmd)).toThrow(/api/);
    });
  });

  it('parses Dockerfile stages and inherited CMDs', () => {
    const stages = parseDockerfile('FROM node:20 AS base\nCMD ["node","a.js"]\nFROM base AS child\nRUN x \\\n  y\nFROM base AS other\nCMD node b.js\n');
    expect(stageCmd(stages, 'child')).toEqual(['node', 'a.js']);
    expect(stageCmd(stages, 'other')).toEqual(['/bin/sh', '-c', 'node b.js']);
    expect(stageCmd(stages, undefined)).toEqual(['/bin/sh', '-c', 'node b.js']);
    expect(() => stageCmd(stages, 'missing')).toThrow(/no stage/);
  });
});
