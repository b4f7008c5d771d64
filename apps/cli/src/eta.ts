/**
 * Time left, from the rate so far: '-' until anything has finished (cli-progress's own ETA prints
 * "NULL" or "INF" then, and swings on a rate of zero).
 */
export function formatEta(remaining: number, perSecond: number): string {
  if (remaining <= 0) return '0s';
  if (!(perSecond > 0) || !Number.isFinite(perSecond)) return '-';
  const s = Math.ceil(remaining / perSecond);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}
