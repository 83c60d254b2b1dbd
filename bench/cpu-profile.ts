import { readFileSync } from 'node:fs';

/** The parts of a V8 `.cpuprofile` the summary reads. */
interface CpuProfile {
  nodes: Array<{ id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] }>;
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface FrameShare {
  readonly frame: string;
  readonly area: string;
  /** Share of the samples in the window, 0…1. */
  readonly share: number;
}

export interface ProfileDigest {
  readonly samples: number;
  readonly byArea: FrameShare[];
  readonly topSelf: FrameShare[];
  /** Inclusive (self + callees) shares of this library's functions. */
  readonly topInclusiveLib: FrameShare[];
}

/** Which layer a frame belongs to, from its script URL. */
export function areaOf(url: string, functionName: string): string {
  if (!url) {
    if (functionName === '(garbage collector)') return 'GC';
    if (functionName === '(idle)') return 'idle (waiting for I/O)';
    if (functionName === '(program)') return 'V8 / native';
    return 'native';
  }
  if (url.includes('/dist/lib/store/')) return 'xa-cache: store';
  if (url.includes('/dist/lib/protocol/')) return 'xa-cache: protocol';
  if (url.includes('/dist/lib/mikro-orm/')) return 'xa-cache: MikroORM integration';
  if (url.includes('/dist/bench/')) return 'bench harness';
  if (url.includes('/@mikro-orm/core/')) return 'MikroORM core';
  if (url.includes('/@mikro-orm/')) return 'MikroORM sql/postgresql';
  if (url.includes('/kysely/')) return 'kysely';
  if (url.includes('/node_modules/pg') || url.includes('/pg-protocol/') || url.includes('/pg-types/')) return 'pg driver';
  if (url.includes('/memjs/')) return 'memjs';
  if (url.includes('/uuid/')) return 'uuid';
  if (url.startsWith('node:')) return 'Node.js internals';
  return 'other';
}

const shortUrl = (url: string): string => url.replace(/^file:\/\/.*?\/(dist|node_modules)\//, '$1/');

/** Summarises the samples of a profile taken between `start` and `end` (profiler clock, µs). */
export function digestProfile(path: string, window?: { start: number; end: number }, top = 15): ProfileDigest {
  const profile = JSON.parse(readFileSync(path, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  const frameOf = (id: number): { key: string; area: string } => {
    const { functionName, url, lineNumber } = (byId.get(id) as CpuProfile['nodes'][number]).callFrame;
    return { key: `${functionName || '(anonymous)'} ${url ? `${shortUrl(url)}:${lineNumber + 1}` : ''}`.trim(), area: areaOf(url, functionName) };
  };
  const self = new Map<string, number>();
  const area = new Map<string, number>();
  const inclusive = new Map<string, number>();
  const areaOfKey = new Map<string, string>();
  let t = profile.startTime;
  let counted = 0;
  profile.samples.forEach((id, i) => {
    t += profile.timeDeltas[i] ?? 0;
    if (window && (t < window.start || t > window.end)) return;
    counted++;
    const leaf = frameOf(id);
    self.set(leaf.key, (self.get(leaf.key) ?? 0) + 1);
    area.set(leaf.area, (area.get(leaf.area) ?? 0) + 1);
    areaOfKey.set(leaf.key, leaf.area);
    const seen = new Set<string>();
    for (let node: number | undefined = id; node !== undefined; node = parent.get(node)) {
      const f = frameOf(node);
      if (!f.area.startsWith('xa-cache') || seen.has(f.key)) continue;
      seen.add(f.key);
      areaOfKey.set(f.key, f.area);
      inclusive.set(f.key, (inclusive.get(f.key) ?? 0) + 1);
    }
  });
  const shares = (m: Map<string, number>, n: number): FrameShare[] =>
    [...m.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([frame, count]) => ({ frame, area: areaOfKey.get(frame) ?? frame, share: counted > 0 ? count / counted : 0 }));
  return {
    samples: counted,
    byArea: [...area.entries()].sort((a, b) => b[1] - a[1]).map(([name, count]) => ({ frame: name, area: name, share: count / Math.max(1, counted) })),
    topSelf: shares(self, top),
    topInclusiveLib: shares(inclusive, top),
  };
}
