import { ConfigError } from '@imagegen/shared';
import { loadApiConfig, parseApiKeys } from './config';

function refusal(env: Record<string, string>): string {
  try {
    loadApiConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('the configuration was accepted');
}

describe('API_KEYS', () => {
  it('reads tenant:key pairs, trimming spaces; a tenant may hold several keys', () => {
    expect(parseApiKeys(' acme:k-1 , globex : k-2,acme:k-3,,acme:k-1')).toEqual({
      keys: [
        { tenant: 'acme', key: 'k-1' },
        { tenant: 'globex', key: 'k-2' },
        { tenant: 'acme', key: 'k-3' },
      ],
      problems: [],
    });
    expect(parseApiKeys('a:b:c').keys).toEqual([{ tenant: 'a', key: 'b:c' }]);
    expect(parseApiKeys('')).toEqual({ keys: [], problems: [] });
  });

  it('refuses a key given to two tenants, naming the tenants and never the key', () => {
    const message = refusal({ API_KEYS: 'a:shared-secret-1,b:shared-secret-1,c:own-key' });
    expect(message).toBe('Invalid configuration: API_KEYS: key given to two tenants (a, b)');
    expect(parseApiKeys('x:k,y:k,z:k').problems).toEqual(['key given to 3 tenants (x, y, z)']);
  });

  it('refuses malformed pairs by position, never echoing them', () => {
    for (const [raw, position] of [
      ['a:k1,just-a-secret-key', 2],
      [':secret-without-tenant', 1],
      ['tenant-without-key:', 1],
      ['a:k1,b:k2,  :  ', 3],
    ] as const) {
      const message = refusal({ API_KEYS: raw });
      expect(message).toBe(`Invalid configuration: API_KEYS: pair ${position} is not tenant:key`);
      expect(message).not.toMatch(/secret/);
    }
  });

  it('names each problem on a line of its own', () => {
    const lines = refusal({ API_KEYS: 'a:k,b:k,oops', PUBLIC_BASE_URL: 'localhost' }).split('\n');
    expect(lines.sort()).toEqual([
      'Invalid configuration: API_KEYS: key given to two tenants (a, b)',
      'Invalid configuration: API_KEYS: pair 3 is not tenant:key',
      'Invalid configuration: PUBLIC_BASE_URL: must be an absolute http:// or https:// URL (a path prefix is fine; no query, fragment or credentials)',
    ]);
  });
});

describe('PUBLIC_BASE_URL', () => {
  it('keeps a path prefix, without a trailing slash, and defaults to localhost:$PORT', () => {
    expect(loadApiConfig({ PUBLIC_BASE_URL: 'http://host/imagegen/' }).PUBLIC_BASE_URL).toBe('http://host/imagegen');
    expect(loadApiConfig({ PORT: '8080' }).PUBLIC_BASE_URL).toBe('http://localhost:8080');
  });
});

describe('storage', () => {
  it('hands out file URLs under /files of PUBLIC_BASE_URL, or under S3_PUBLIC_BASE_URL when the store serves them', () => {
    expect(loadApiConfig({ PUBLIC_BASE_URL: 'https://img.example.com/imagegen' }).filesBaseUrl).toBe('https://img.example.com/imagegen/files');
    const s3 = loadApiConfig({ STORAGE: 's3', S3_BUCKET: 'images', S3_PUBLIC_BASE_URL: 'https://cdn.example.com/i/' });
    expect(s3).toMatchObject({ STORAGE: 's3', S3_BUCKET: 'images', filesBaseUrl: 'https://cdn.example.com/i' });
  });

  it('refuses STORAGE=s3 without S3_BUCKET, with the other problems at once', () => {
    expect(refusal({ STORAGE: 's3' })).toBe('Invalid configuration: S3_BUCKET: required when STORAGE=s3');
    expect(refusal({ STORAGE: 's3', PORT: 'x' }).split('\n')).toEqual(['Invalid configuration: PORT: must be a whole number', 'Invalid configuration: S3_BUCKET: required when STORAGE=s3']);
  });
});

describe('tenant names in API_KEYS', () => {
  it('refuses names that would break key names, naming the pair only', () => {
    const { keys, problems } = parseApiKeys('ok:k1,bad:name:k2,a*:k3');
    expect(keys.map((k) => k.tenant)).toEqual(['ok', 'bad']);
    expect(problems).toEqual([expect.stringMatching(/^tenant of pair 3 must be/)]);
  });
});
