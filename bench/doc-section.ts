/**
 * Sections of docs/benchmarks.md that other scripts (or hand runs) write: `npm run bench` regenerates the file and
 * keeps them (see `report.ts`), `npm run bench:capture` and `npm run bench:unique` replace their own.
 */

/** The headings of sections written by scripts other than `npm run bench`, and of hand-run measurements. */
export const KEPT_SECTIONS = [
  '## Write capture',
  '## Commit floor',
  "## Promote off the commit's critical path (issue 15, hand-run)",
  '## Value codec: V8 serialisation vs msgpackr and JSON (issue 15, hand-run)',
  '## Query results: table-level vs predicate-level invalidation (issue 16, hand-run)',
  '## Lookups by unique keys',
] as const;

/** The section under `heading` in `doc` (up to the next `## ` heading), or undefined. */
export function sectionOf(doc: string, heading: string): string | undefined {
  const lines = doc.split('\n');
  const start = lines.findIndex((l) => l.trim() === heading);
  if (start < 0) return undefined;
  let end = lines.findIndex((l, i) => i > start && /^## /.test(l));
  if (end < 0) end = lines.length;
  return lines.slice(start, end).join('\n').trimEnd();
}

/** Puts `section` in place of the existing section of the same heading, else before the analysis (or at the end). */
export function spliceSection(doc: string, section: string): string {
  const heading = section.split('\n', 1)[0]?.trim() ?? '';
  const lines = doc.replace(/\s+$/, '').split('\n');
  const start = lines.findIndex((l) => l.trim() === heading);
  if (start >= 0) {
    let end = lines.findIndex((l, i) => i > start && /^## /.test(l));
    if (end < 0) end = lines.length;
    lines.splice(start, end - start, ...section.trimEnd().split('\n'), '');
  } else {
    let at = lines.findIndex((l) => /^## (Where the time goes|CPU profiles)/.test(l));
    if (at < 0) at = lines.length;
    lines.splice(at, 0, ...section.trimEnd().split('\n'), '');
  }
  return `${lines.join('\n').replace(/\n{3,}/g, '\n\n').trimEnd()}\n`;
}

