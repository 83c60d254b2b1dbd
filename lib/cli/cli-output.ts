/** Where a command writes: results to `out` (stdout), messages and progress to `err` (stderr). */
export interface CliOutput {
  /** A result line (a newline is added when missing). */
  out(text: string): void;
  /** A message line (a newline is added when missing). */
  err(text: string): void;
  /** Writes to stderr exactly as given: a progress line that rewrites itself in place. */
  errInPlace(text: string): void;
  /** Whether stderr is a terminal (where progress is drawn by default). */
  readonly interactive: boolean;
  /** The width of the stderr terminal, when known: a progress line is cut to it, so it never wraps. */
  readonly columns: number | undefined;
}

const withNewline = (text: string): string => (text.endsWith('\n') ? text : `${text}\n`);

/** The process's own streams. */
export const processOutput: CliOutput = {
  out: (text) => void process.stdout.write(withNewline(text)),
  err: (text) => void process.stderr.write(withNewline(text)),
  errInPlace: (text) => void process.stderr.write(text),
  interactive: process.stderr.isTTY === true,
  get columns() {
    return process.stderr.isTTY ? process.stderr.columns : undefined;
  },
};
