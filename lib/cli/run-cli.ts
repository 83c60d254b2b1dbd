import { parseCommandLine } from './cli-args.js';
import { resolveCliConfig } from './cli-config.js';
import { CliError, EXIT, describe, withoutPrefix } from './cli-errors.js';
import { processOutput, type CliOutput } from './cli-output.js';
import { CliSession } from './cli-session.js';
import { captureCommand } from './capture-command.js';
import { openDatabase } from './cli-database.js';
import { invalidateCommand } from './invalidate-command.js';
import { readCommandOptions } from './command-options.js';
import { helpText } from './help-text.js';
import { inspectCommand } from './inspect-command.js';
import { statsFromUrl, statsProbe } from './stats-command.js';
import { sweepCommand } from './sweep-command.js';
import { followCommand } from './follow-command.js';

/** Runs one command line and resolves to the exit status; every failure is reported on `io.err`. */
export async function runCli(argv: readonly string[], io: CliOutput = processOutput): Promise<number> {
  try {
    const parsed = parseCommandLine(argv);
    if (!parsed || parsed.values.help) {
      io.out(helpText(parsed?.command));
      return EXIT.ok;
    }
    const options = readCommandOptions(parsed);
    if (parsed.command === 'stats' && options.url !== undefined) return await statsFromUrl(options.url, options, io);
    const config = await resolveCliConfig(parsed);
    for (const warning of config.warnings) io.err(`warning: ${warning}`);
    if (parsed.command === 'follow') return await followCommand(config, options, io);
    if (parsed.command === 'capture') {
      // DDL only: no memcached, and no log table needed (the change table is created next to where it will be).
      const pool = await openDatabase(config, options.connectTimeoutMs);
      try {
        return await captureCommand(pool, config, options, io);
      } finally {
        await pool.end();
      }
    }
    // invalidate writes to memcached only: it works before the application ever created its log table.
    const session = await CliSession.open(config, options.connectTimeoutMs, { needLogTable: parsed.command !== 'invalidate' });
    try {
      const probe = await session.probeMemcached();
      // Wrong credentials fail every server alike; say so rather than go on with warnings per key.
      const [refused] = probe.authFailed.values();
      if (refused) throw CliError.memcachedAuth([...probe.authFailed.keys()].sort(), refused);
      if (probe.reachable.length === 0) throw CliError.unreachableMemcached(probe.unreachable);
      if (parsed.command === 'inspect') return await inspectCommand(session, options, io);
      if (parsed.command === 'sweep') return await sweepCommand(session, options, io);
      if (parsed.command === 'invalidate') return await invalidateCommand(session, options, io);
      return await statsProbe(session, options, io);
    } finally {
      await session.close();
    }
  } catch (error) {
    if (error instanceof CliError) {
      io.err(`mikro-orm-xa-cache: ${withoutPrefix(error.message)}`);
      if (error.hint) io.err(`  ${error.hint}`);
      return error.exitCode;
    }
    io.err(`mikro-orm-xa-cache: ${describe(error)}`);
    if (process.env.XA_CACHE_DEBUG && error instanceof Error && error.stack) io.err(error.stack);
    return EXIT.failed;
  }
}
