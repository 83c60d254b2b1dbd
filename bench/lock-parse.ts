/**
 * What a planted lock costs a reader: CPU of decoding a lock of n records and computing its holders, as every
 * read of the key does. Locks of more than MAX_LOCK_RECORDS are refused by the length check before any record is
 * parsed. The quadratic holder computation this replaced is measured alongside for comparison.
 * Run with `node dist/bench/lock-parse.js` (no servers needed).
 */
import { randomUUID } from 'node:crypto';
import { decodeEntry, encodeEntry, encodeLockRecords, MAX_LOCK_RECORDS } from '../lib/protocol/entry-codec.js';
import { lockHolders, type LockEntry, type LockRecord } from '../lib/protocol/entry.js';

function plantedLock(count: number): Buffer {
  const records: LockRecord[] = Array.from({ length: count }, () => ({ op: '+', txId: randomUUID() }));
  return Buffer.concat([encodeEntry({ kind: 'lock', records: records.slice(0, 1), prior: undefined }), encodeLockRecords(records.slice(1))]);
}

/** The holder computation before issue 13: a list scan per record. */
function quadraticHolders(lock: LockEntry): string[] {
  const left = new Set<string>();
  for (const r of lock.records) if (r.op === '-') left.add(r.txId);
  const holders: string[] = [];
  for (const r of lock.records) if (r.op === '+' && !left.has(r.txId) && !holders.includes(r.txId)) holders.push(r.txId);
  return holders;
}

function microsPerRead(bytes: Buffer, holders: (lock: LockEntry) => readonly string[]): number {
  const runs = Math.max(20, Math.floor(200_000 / (bytes.length / 17)));
  const started = process.cpuUsage();
  for (let i = 0; i < runs; i++) {
    const entry = decodeEntry(bytes);
    if (entry.kind === 'lock') holders(entry);
  }
  const used = process.cpuUsage(started);
  return (used.user + used.system) / runs;
}

const rows: string[] = ['| records | bytes | read now (µs CPU) | quadratic holders (µs CPU) |', '| ---: | ---: | ---: | ---: |'];
for (const count of [64, MAX_LOCK_RECORDS, 4096]) {
  const bytes = plantedLock(count);
  const now = microsPerRead(bytes, lockHolders);
  // Over the bound the decoder refuses the lock before parsing a record; the old limit (4,096) parsed it.
  const before = count > MAX_LOCK_RECORDS ? 'parsed before (limit was 4,096)' : microsPerRead(bytes, quadraticHolders).toFixed(1);
  rows.push(`| ${count} | ${bytes.length} | ${now.toFixed(1)}${count > MAX_LOCK_RECORDS ? ' (not parsed: held)' : ''} | ${before} |`);
}
console.log(rows.join('\n'));
