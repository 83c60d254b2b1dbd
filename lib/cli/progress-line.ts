import { CliError } from './cli-errors.js';
import type { CliOutput } from './cli-output.js';

/**
 * When long work draws progress, from `XA_CACHE_PROGRESS`: `auto` (the default) when stderr is a terminal,
 * `always` also when it is not (a terminal Node does not recognise, or a test), `never` not at all. `--json`
 * and `--quiet` draw none whatever it says: their readers are scripts and logs.
 */
export type ProgressMode = 'auto' | 'always' | 'never';

const MODES: readonly ProgressMode[] = ['auto', 'always', 'never'];

/** The mode `XA_CACHE_PROGRESS` names; anything else is a usage error (exit 2), not a silent default. */
export function progressModeOf(value: string | undefined, command?: string): ProgressMode {
  if (value === undefined || value === '') return 'auto';
  if ((MODES as readonly string[]).includes(value)) return value as ProgressMode;
  throw CliError.usage(`XA_CACHE_PROGRESS must be auto, always or never, not "${value}"`, command);
}

/** Redraws at most this often: a sweep of small batches must not spend its time writing to the terminal. */
const REDRAW_MS = 100;

/**
 * One line of progress on stderr, rewritten in place (carriage return, the text, erase to the end of the line)
 * and erased by {@link clear}, so it leaves nothing behind in the terminal or in what the command prints. The
 * first update is drawn at once, later ones at most every 100 ms. A disabled line ignores every call, so the
 * commands need not ask.
 */
export class ProgressLine {
  #shown = false;
  #drawnAt = -Infinity;

  private constructor(private readonly io: CliOutput | undefined) {}

  /** The progress line of a command: drawn per `XA_CACHE_PROGRESS` and the terminal, never with --json or -q. */
  static of(io: CliOutput, options: { readonly json: boolean; readonly quiet: boolean; readonly progress: ProgressMode }): ProgressLine {
    const draw = !options.json && !options.quiet && (options.progress === 'always' || (options.progress === 'auto' && io.interactive));
    return new ProgressLine(draw ? io : undefined);
  }

  /** Whether anything is drawn (so a command can skip work that only feeds the line). */
  get enabled(): boolean {
    return this.io !== undefined;
  }

  /** Shows `text` in place of the previous update (unless one was drawn less than 100 ms ago). */
  update(text: string): void {
    if (!this.io) return;
    const now = performance.now();
    if (this.#shown && now - this.#drawnAt < REDRAW_MS) return;
    const width = this.io.columns;
    // One column short of the width: a line that fills it would wrap on some terminals, and \r then redraws only its tail.
    const line = width !== undefined && width > 1 && text.length >= width ? `${text.slice(0, width - 2)}…` : text;
    this.io.errInPlace(`\r${line}\u001b[K`);
    this.#shown = true;
    this.#drawnAt = now;
  }

  /** Erases the line, if drawn: call it before printing anything else, and when the work is done. */
  clear(): void {
    if (!this.io || !this.#shown) return;
    this.io.errInPlace('\r\u001b[K');
    this.#shown = false;
    this.#drawnAt = -Infinity;
  }
}
