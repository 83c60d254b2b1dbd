import { parseArgs, type ParseArgsConfig } from 'node:util';
import { CliError } from './cli-errors.js';

/** The commands of the tool. */
export type CommandName = 'inspect' | 'sweep' | 'stats';
export const COMMANDS: readonly CommandName[] = ['inspect', 'sweep', 'stats'];

type OptionSpec = NonNullable<ParseArgsConfig['options']>;

/** Options every command takes: where the database and memcached are, and how to print. */
export const CONNECTION_OPTIONS: OptionSpec = {
  config: { type: 'string' },
  context: { type: 'string' },
  db: { type: 'string' },
  memcached: { type: 'string' },
  namespace: { type: 'string' },
  'log-table': { type: 'string' },
  'connect-timeout': { type: 'string' },
  'no-config': { type: 'boolean' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
};

const COMMAND_OPTIONS: Record<CommandName, OptionSpec> = {
  inspect: { 'min-age': { type: 'string' }, limit: { type: 'string' }, 'scan-locks': { type: 'boolean' } },
  sweep: { 'min-age': { type: 'string' }, limit: { type: 'string' }, 'batch-size': { type: 'string' }, watch: { type: 'boolean' }, interval: { type: 'string' }, quiet: { type: 'boolean', short: 'q' } },
  stats: { url: { type: 'string' }, 'min-age': { type: 'string' } },
};

/** A parsed command line. */
export interface ParsedCommand {
  readonly command: CommandName;
  readonly values: Readonly<Record<string, string | boolean | undefined>>;
}

/** Parses `argv` (without node and the script), or throws a usage {@link CliError}; undefined means top-level help. */
export function parseCommandLine(argv: readonly string[]): ParsedCommand | undefined {
  const [first, ...rest] = argv;
  if (first === undefined || first === '--help' || first === '-h' || first === 'help') {
    if (first === 'help' && rest[0] && isCommand(rest[0])) return { command: rest[0], values: { help: true } };
    return undefined;
  }
  if (!isCommand(first)) {
    throw first.startsWith('-') ? CliError.usage(`a command comes first (${COMMANDS.join(', ')}), found ${first}`) : CliError.usage(`unknown command "${first}"; the commands are ${COMMANDS.join(', ')}`);
  }
  try {
    const { values, positionals } = parseArgs({ args: [...rest], options: { ...CONNECTION_OPTIONS, ...COMMAND_OPTIONS[first] }, strict: true, allowPositionals: true });
    if (positionals.length > 0) throw CliError.usage(`unexpected argument "${positionals[0]}"`, first);
    return { command: first, values: values as Record<string, string | boolean | undefined> };
  } catch (error) {
    if (error instanceof CliError) throw error;
    throw CliError.usage(((error as Error).message.split('\n')[0] ?? '').replace(/\. To specify.*$/, ''), first);
  }
}

function isCommand(word: string): word is CommandName {
  return (COMMANDS as readonly string[]).includes(word);
}

/** A duration flag: `500ms`, `10s`, `2m`, `1h`, or a bare number of milliseconds. */
export function durationFlag(values: ParsedCommand['values'], name: string, fallbackMs: number, command: string): number {
  const raw = values[name];
  if (raw === undefined) return fallbackMs;
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(String(raw).trim());
  if (!match) throw CliError.usage(`--${name} ${String(raw)} is not a duration; write 500ms, 10s, 2m, 1h or a number of milliseconds`, command);
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[(match[2] ?? 'ms') as 'ms' | 's' | 'm' | 'h'];
  return Math.round(Number(match[1]) * unit);
}

/** A positive whole-number flag. */
export function countFlag(values: ParsedCommand['values'], name: string, fallback: number, command: string): number {
  const raw = values[name];
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw CliError.usage(`--${name} ${String(raw)} is not a whole number of 1 or more`, command);
  return n;
}
