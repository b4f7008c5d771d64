import { Writable } from 'node:stream';
import { createLogger } from './logger';

/** Lines a logger writes, as parsed JSON. */
function capture(): { lines: Record<string, unknown>[]; destination: Writable } {
  const lines: Record<string, unknown>[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(l) as Record<string, unknown>);
      done();
    },
  });
  return { lines, destination };
}

it('never writes credentials, bodies or file tokens, at the top of a line or one level down', () => {
  const { lines, destination } = capture();
  const logger = createLogger('test', 'info', { format: 'json', destination });
  const secrets = { password: 'p-1', adminPassword: 'p-2', secret: 's-1', apiKey: 'k-1', key: 'k-2', token: 't-1', fileToken: 't-2', authorization: 'Bearer a-1', body: 'b-1' };
  logger.warn('top level', { ...secrets, id: 'gen_1' });
  logger.child({ generationId: 'gen_2' }).info('nested', { record: secrets });
  const text = JSON.stringify(lines);
  for (const value of Object.values(secrets)) expect(text).not.toContain(value);
  expect(lines[0]).toMatchObject({ msg: 'top level', id: 'gen_1', adminPassword: '[redacted]', token: '[redacted]' });
  expect(lines[1]).toMatchObject({ msg: 'nested', generationId: 'gen_2', record: { fileToken: '[redacted]' } });
});
