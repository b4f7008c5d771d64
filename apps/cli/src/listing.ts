/** How many lines of a list of problems are shown: enough to fix a file in one go, not a flood. */
export const SHOWN_AT_MOST = 100;

/** The first `cap` lines, then "and N more" for the rest. */
export function capped(lines: string[], cap = SHOWN_AT_MOST): string[] {
  return lines.length <= cap ? lines : [...lines.slice(0, cap), `and ${lines.length - cap} more`];
}

/** `head`, then the capped lines under it, indented. */
export function listedUnder(head: string, lines: string[]): string {
  return `${head}${capped(lines).map((l) => `\n  ${l}`).join('')}`;
}
