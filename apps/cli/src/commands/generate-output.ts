import { stat } from 'node:fs/promises';
import path from 'node:path';
import { extensionOf } from '../download';
import { ensureWritableFolder } from '../outdir';

/** Where `generate` saves the image: the file --out names, or `<id>.<ext>` in a folder. */
export type Output = { file: string } | { folder: string };

/**
 * Reads --out before anything is submitted: an existing folder, or a path ending in a separator,
 * is a folder to save `<id>.<ext>` into (the id is not known yet); anything else names the file.
 * The folder that will hold the file is made and proved writable here, as a generation is paid for
 * once submitted.
 */
export async function resolveOutput(out: string | undefined): Promise<Output> {
  if (out === undefined) {
    await ensureWritableFolder(process.cwd(), 'the current folder');
    return { folder: process.cwd() };
  }
  const resolved = path.resolve(out);
  const isFolder = out.endsWith('/') || out.endsWith(path.sep) || (await stat(resolved).then((s) => s.isDirectory(), () => false));
  await ensureWritableFolder(isFolder ? resolved : path.dirname(resolved), '--out');
  return isFolder ? { folder: resolved } : { file: resolved };
}

/** The file the image of generation `id`, served at `url`, is saved as. */
export const outputFile = (output: Output, id: string, url: string): string => ('file' in output ? output.file : path.join(output.folder, `${id}.${extensionOf(url)}`));

/** Extensions that name the same format. */
const SAME_FORMAT: Record<string, string> = { jpeg: 'jpg', tif: 'tiff' };
const formatOf = (ext: string): string => SAME_FORMAT[ext] ?? ext;

/**
 * A note when --out names a file whose extension says another format than the image's (the
 * original is saved as it is, byte for byte: `x.jpg` of a PNG still holds PNG); null otherwise.
 */
export function formatNote(output: Output, url: string): string | null {
  if (!('file' in output)) return null;
  const asked = path.extname(output.file).slice(1).toLowerCase();
  const actual = extensionOf(url).toLowerCase();
  if (asked === '' || formatOf(asked) === formatOf(actual)) return null;
  return `note: the image is ${actual.toUpperCase()}; ${output.file} holds it as it is (not converted to ${asked.toUpperCase()})`;
}
