/** Where a command writes: results to `out` (stdout), messages and progress to `err` (stderr). */
export interface CliOutput {
  out(text: string): void;
  err(text: string): void;
  /** Whether stderr is a terminal (then progress rewrites one line). */
  readonly interactive: boolean;
}

/** The process's own streams. */
export const processOutput: CliOutput = {
  out: (text) => void process.stdout.write(text.endsWith('\n') ? text : `${text}\n`),
  err: (text) => void process.stderr.write(text.endsWith('\n') || text.endsWith('\r') ? text : `${text}\n`),
  interactive: process.stderr.isTTY === true,
};
