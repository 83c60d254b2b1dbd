import type { OpenContender } from '../contenders/index.js';
import type { Operation } from '../measure.js';

/** The seeded data every contender's copy holds (see `database.ts`). */
export interface DataShape {
  /** Books 1…books, `booksPerAuthor` per author (authors 1…books / booksPerAuthor). */
  readonly books: number;
  readonly booksPerAuthor: number;
  /** Authors after those, with `largeAuthorBooks` books each (book ids after `books`). */
  readonly largeAuthors: number;
  readonly largeAuthorBooks: number;
}

/** The figure a workload's targets are about. */
export type Headline = 'throughput' | 'timedP50';

/** What the report says about a workload (shared by the parent and the contenders' processes). */
export interface WorkloadSpec {
  readonly key: string;
  readonly title: string;
  /** What an operation is, for the report. */
  readonly operation: string;
  readonly inFlight: number;
  readonly headline: Headline;
}

/** A workload as a contender's process runs it. */
export interface Workload extends WorkloadSpec {
  /** Fills what the workload reads (once per process) and returns its operation. */
  prepare(contender: OpenContender, data: DataShape): Promise<Operation>;
}
