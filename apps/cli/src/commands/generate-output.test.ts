import path from 'node:path';
import { formatNote } from './generate-output';

const png = 'http://api.example/files/tok/original-ab12cd34.png';

it('says when the file --out names has the extension of another format than the image', () => {
  expect(formatNote({ file: path.resolve('cat.jpg') }, png)).toBe(`note: the image is PNG; ${path.resolve('cat.jpg')} holds it as it is (not converted to JPG)`);
  expect(formatNote({ file: '/tmp/cat.WEBP' }, png)).toMatch(/^note: the image is PNG; .* \(not converted to WEBP\)$/);
});

it('says nothing when the extension agrees (in any case, jpg or jpeg), there is none, or --out is a folder', () => {
  expect(formatNote({ file: '/tmp/cat.png' }, png)).toBeNull();
  expect(formatNote({ file: '/tmp/cat.PNG' }, png)).toBeNull();
  expect(formatNote({ file: '/tmp/cat.jpeg' }, 'http://api.example/files/tok/original-1.jpg')).toBeNull();
  expect(formatNote({ file: '/tmp/cat' }, png)).toBeNull();
  expect(formatNote({ folder: '/tmp' }, png)).toBeNull();
});
