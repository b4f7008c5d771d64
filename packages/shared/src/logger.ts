import pino, { type DestinationStream } from 'pino';
import pretty from 'pino-pretty';

export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';
/** `json`: JSON lines; `pretty`: coloured lines for a person; `auto`: pretty when stdout is a terminal. */
export type LogFormat = 'json' | 'pretty' | 'auto';

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  /** A logger whose every line carries `fields` too (a generation, a job, a request). */
  child(fields: Record<string, unknown>): Logger;
}

/** Fields never written, at the top of a line or one level down, whatever a caller passes. */
const SECRET_FIELDS = ['authorization', 'password', 'adminPassword', 'secret', 'apiKey', 'key', 'body', 'token', 'fileToken'];

/**
 * Field paths never written: credentials, bodies and file tokens (a file token is the
 * unguessable part of a generation's file URLs, so it opens them). Lines carry ids and codes;
 * these catch a mistake before it reaches a log store.
 */
export const REDACTED_PATHS = [
  ...SECRET_FIELDS,
  ...SECRET_FIELDS.map((f) => `*.${f}`),
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["proxy-authorization"]',
  'req.headers["idempotency-key"]',
  'res.headers["set-cookie"]',
];

const pinos = new WeakMap<Logger, pino.Logger>();

/** The pino instance behind a logger made here (pino-http writes through it), if any. */
export function pinoOf(logger: Logger): pino.Logger | undefined {
  return pinos.get(logger);
}

function wrap(p: pino.Logger): Logger {
  const logger: Logger = {
    debug: (m, f) => (f ? p.debug(f, m) : p.debug(m)),
    info: (m, f) => (f ? p.info(f, m) : p.info(m)),
    warn: (m, f) => (f ? p.warn(f, m) : p.warn(m)),
    error: (m, f) => (f ? p.error(f, m) : p.error(m)),
    child: (fields) => wrap(p.child(fields)),
  };
  pinos.set(logger, p);
  return logger;
}

export interface LoggerOptions {
  format?: LogFormat;
  /** Where lines go (tests capture them); stdout by default. */
  destination?: DestinationStream;
}

/** pino underneath: JSON lines on stdout, or readable lines on a terminal. */
export function createLogger(service: string, level: LogLevel = 'info', opts: LoggerOptions = {}): Logger {
  const format = opts.format ?? 'auto';
  const readable = format === 'pretty' || (format === 'auto' && process.stdout.isTTY === true && !opts.destination);
  // synchronous writes: a line logged just before process.exit is not lost
  const destination =
    opts.destination ??
    (readable ? pretty({ colorize: true, sync: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname,service' }) : pino.destination({ dest: 1, sync: true }));
  const p = pino(
    {
      level,
      base: { service },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
    },
    destination,
  );
  return wrap(p);
}
