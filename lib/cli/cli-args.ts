import { parseArgs, type ParseArgsConfig } from 'node:util';
import { CliError } from './cli-errors.js';

/** The commands of the tool. */
export type CommandName = 'inspect' | 'sweep' | 'stats' | 'capture' | 'invalidate' | 'follow';
export const COMMANDS: readonly CommandName[] = ['inspect', 'sweep', 'stats', 'capture', 'invalidate', 'follow'];

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
  'secrets-env': { type: 'string' },
  'no-config': { type: 'boolean' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
};

const COMMAND_OPTIONS: Record<CommandName, OptionSpec> = {
  inspect: { 'min-age': { type: 'string' }, limit: { type: 'string' }, 'scan-locks': { type: 'boolean' } },
  sweep: { 'min-age': { type: 'string' }, limit: { type: 'string' }, 'batch-size': { type: 'string' }, watch: { type: 'boolean' }, interval: { type: 'string' }, quiet: { type: 'boolean', short: 'q' } },
  stats: { url: { type: 'string' }, 'min-age': { type: 'string' } },
  capture: { apply: { type: 'boolean' }, drop: { type: 'boolean' }, schema: { type: 'string', multiple: true }, table: { type: 'string', multiple: true } },
  // --table is taken as a list so that a second one is refused rather than silently replacing the first.
  invalidate: { table: { type: 'string', multiple: true }, id: { type: 'string', multiple: true }, key: { type: 'string', multiple: true } },
  follow: { interval: { type: 'string' }, 'max-lag': { type: 'string' }, schema: { type: 'string', multiple: true }, quiet: { type: 'boolean', short: 'q' } },
};

/** A parsed command line. */
export interface ParsedCommand {
  readonly command: CommandName;
  readonly values: Readonly<Record<string, string | boolean | string[] | undefined>>;
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
  const options = { ...CONNECTION_OPTIONS, ...COMMAND_OPTIONS[first] };
  // Help wins over everything else on the line, so `sweep --watch --interval 0 --help` shows the help it asks for.
  const ended = rest.indexOf('--');
  if ((ended < 0 ? rest : rest.slice(0, ended)).some((arg) => arg === '--help' || arg === '-h')) return { command: first, values: { help: true } };
  try {
    const { values, positionals } = parseArgs({ args: joinNegativeValues(rest, options), options, strict: true, allowPositionals: true });
    if (positionals.length > 0) throw CliError.usage(`unexpected argument "${positionals[0]}"`, first);
    return { command: first, values: values as Record<string, string | boolean | string[] | undefined> };
  } catch (error) {
    if (error instanceof CliError) throw error;
    throw CliError.usage(((error as Error).message.split('\n')[0] ?? '').replace(/\. To specify.*$/, ''), first);
  }
}

function isCommand(word: string): word is CommandName {
  return (COMMANDS as readonly string[]).includes(word);
}

/**
 * parseArgs takes `--min-age -5s` for two options and calls the value ambiguous; a string flag followed by
 * something that reads as a negative number is joined into `--min-age=-5s`, so the flag's own check can say
 * what is wrong with the value.
 */
function joinNegativeValues(args: readonly string[], options: OptionSpec): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] as string;
    if (arg === '--') {
      out.push(...args.slice(i));
      break;
    }
    const next = args[i + 1];
    const name = arg.startsWith('--') ? arg.slice(2) : undefined;
    if (name !== undefined && options[name]?.type === 'string' && next !== undefined && /^-\.?\d/.test(next)) {
      out.push(`${arg}=${next}`);
      i++;
    } else out.push(arg);
  }
  return out;
}
