import { addressRange, isPublicAddress, rangePhrase, webhookUrlProblem } from './ssrf';

describe('webhook address classifier', () => {
  it.each([
    ['127.0.0.1', 'loopback'],
    ['127.8.9.10', 'loopback'],
    ['10.1.2.3', 'private'],
    ['172.16.0.1', 'private'],
    ['192.168.1.1', 'private'],
    ['169.254.169.254', 'linkLocal'],
    ['100.64.0.1', 'carrierGradeNat'],
    ['100.100.100.200', 'carrierGradeNat'],
    ['0.0.0.0', 'unspecified'],
    ['224.0.0.1', 'multicast'],
    ['255.255.255.255', 'broadcast'],
    ['::1', 'loopback'],
    ['::', 'unspecified'],
    ['fe80::1', 'linkLocal'],
    ['fd00:ec2::254', 'uniqueLocal'],
    ['ff02::1', 'multicast'],
    ['::ffff:127.0.0.1', 'loopback'],
    ['::ffff:7f00:1', 'loopback'],
    ['::ffff:10.0.0.1', 'private'],
    ['::ffff:169.254.169.254', 'linkLocal'],
    ['[::1]', 'loopback'],
  ])('%s is %s and refused', (address, range) => {
    expect(addressRange(address)).toBe(range);
    expect(isPublicAddress(address)).toBe(false);
  });

  it.each(['64:ff9b::7f00:1', '2002:7f00:1::1', '2001:db8::1', '::7f00:1', '::a00:1', '[::7f00:1]', 'fec0::1', '100::1', '198.18.0.1', 'not-an-ip'])('%s (an embedded or special form) is refused', (address) => {
    expect(isPublicAddress(address)).toBe(false);
  });

  it.each(['8.8.8.8', '1.1.1.1', '93.184.216.34', '2606:4700:4700::1111', '::ffff:8.8.8.8'])('%s is public', (address) => {
    expect(isPublicAddress(address)).toBe(true);
  });
});

describe('webhookUrlProblem', () => {
  const resolvesTo = (...addresses: string[]) => async () => addresses;

  it('refuses credentials and non-http schemes whatever the flag', async () => {
    expect(await webhookUrlProblem('https://user:pw@example.com/hook', { allowPrivate: true })).toMatch(/credentials/);
    expect(await webhookUrlProblem('ftp://example.com/hook', { allowPrivate: true })).toMatch(/http/);
  });

  it('refuses literal private addresses and names that resolve to any private address', async () => {
    expect(await webhookUrlProblem('http://127.0.0.1:8080/x', { allowPrivate: false })).toMatch(/loopback/);
    expect(await webhookUrlProblem('http://[::ffff:127.0.0.1]/x', { allowPrivate: false })).toMatch(/loopback/);
    expect(await webhookUrlProblem('http://hooks.example/x', { allowPrivate: false, lookup: resolvesTo('93.184.216.34', '10.0.0.5') })).toMatch(/private/);
    expect(await webhookUrlProblem('http://hooks.example/x', { allowPrivate: false, lookup: resolvesTo('::ffff:169.254.169.254') })).toBe('resolves to a link-local (or cloud metadata) address, which is not allowed');
  });

  it('judges a name with its final dot as the name, and refuses localhost and every name under it without asking DNS', async () => {
    const asked: string[] = [];
    const lookup = async (host: string) => {
      asked.push(host);
      return host === 'intranet' ? ['10.1.2.3'] : ['93.184.216.34'];
    };
    expect(await webhookUrlProblem('http://intranet./hook', { allowPrivate: false, lookup })).toBe('resolves to a private address, which is not allowed');
    expect(asked).toEqual(['intranet']);
    for (const url of ['http://localhost./x', 'http://LOCALHOST/x', 'http://foo.localhost/x', 'http://a.b.localhost.:8080/x']) {
      expect(await webhookUrlProblem(url, { allowPrivate: false, lookup })).toBe('names a loopback host, which is not allowed');
    }
    expect(asked).toEqual(['intranet']);
    // a name that merely ends in the word is an ordinary name
    expect(await webhookUrlProblem('https://notlocalhost/x', { allowPrivate: false, lookup })).toBeNull();
    expect(await webhookUrlProblem('http://localhost./x', { allowPrivate: true })).toBeNull();
  });

  it('refuses port 0 whatever the flag: nothing can answer there', async () => {
    for (const url of ['http://hooks.example:0/x', 'https://hooks.example:00/x']) {
      expect(await webhookUrlProblem(url, { allowPrivate: true })).toBe('must name a port from 1 to 65535');
    }
    expect(await webhookUrlProblem('http://hooks.example:1/x', { allowPrivate: true })).toBeNull();
  });

  it('names ranges in words, with the right article', () => {
    expect(rangePhrase('127.0.0.1')).toBe('a loopback address');
    expect(rangePhrase('0.0.0.0')).toBe('an unspecified address');
    expect(rangePhrase('100.64.0.1')).toBe('a carrier-grade NAT (CGNAT) address');
    expect(rangePhrase('::7f00:1')).toBe('an IPv4-compatible address');
    expect(rangePhrase('fd00::1')).toBe('a unique-local address');
  });

  it('accepts public targets, and private ones when allowed', async () => {
    expect(await webhookUrlProblem('https://hooks.example/x', { allowPrivate: false, lookup: resolvesTo('93.184.216.34') })).toBeNull();
    expect(await webhookUrlProblem('http://127.0.0.1:8080/x', { allowPrivate: true })).toBeNull();
  });

  it('takes a name that does not resolve now, or not in time, and still refuses one with a private address among others', async () => {
    const fails = async (): Promise<string[]> => {
      throw Object.assign(new Error('getaddrinfo ENOTFOUND'), { code: 'ENOTFOUND' });
    };
    const never = () => new Promise<string[]>(() => undefined);
    expect(await webhookUrlProblem('https://nowhere.invalid/x', { allowPrivate: false, lookup: fails })).toBeNull();
    expect(await webhookUrlProblem('https://slow.example/x', { allowPrivate: false, lookup: never, timeoutMs: 50 })).toBeNull();
    expect(await webhookUrlProblem('https://mixed.example/x', { allowPrivate: false, lookup: async () => ['93.184.216.34', '10.0.0.7'] })).toBe('resolves to a private address, which is not allowed');
  });
});
