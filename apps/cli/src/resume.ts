/** A word as a POSIX shell reads it back unchanged: plain words as they are, anything else single-quoted. */
export function shellWord(word: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(word)) return word;
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

/** The command that continues batch `id`, ready to paste. */
export function resumeCommand(file: string, out: string, id: string): string {
  return `imagegen batch ${shellWord(file)} --out ${shellWord(out)} --resume ${shellWord(id)}`;
}
