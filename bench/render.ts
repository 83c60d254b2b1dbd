/**
 * Re-renders docs/benchmarks.md and docs/benchmarks.svg from the figures of the last run
 * (dist/bench/results.json), e.g. after editing bench/analysis.md: `node dist/bench/render.js [results.json] [outDir]`.
 */
import { readFileSync } from 'node:fs';
import { writeReport, type BenchResults } from './report.js';

const [file = 'dist/bench/results.json', outDir] = process.argv.slice(2);
const results = JSON.parse(readFileSync(file, 'utf8')) as BenchResults;
console.log(`wrote ${writeReport(results, outDir ?? results.config.outDir).join(', ')}`);
