import { hash } from 'node:crypto';

/**
 * A consistent-hashing ring laid out like libketama: each server gets 160 points, four per MD5 digest of
 * `"<server>-<n>"`, and a key belongs to the first point at or after the MD5 of the key. Adding or removing a
 * server moves only the keys of the points it gains or loses, about `1 / servers` of all keys.
 */
export class KetamaRing {
  /** Points per server, as in libketama. */
  static readonly POINTS_PER_SERVER = 160;

  readonly servers: readonly string[];
  #points: Uint32Array;
  #owners: Uint16Array;

  constructor(servers: readonly string[]) {
    if (servers.length === 0 || servers.length > 0xffff) throw new RangeError('a ring needs 1 to 65535 servers');
    this.servers = [...servers];
    const total = servers.length * KetamaRing.POINTS_PER_SERVER;
    const entries = new Array<{ point: number; owner: number }>(total);
    let n = 0;
    servers.forEach((server, owner) => {
      for (let i = 0; i < KetamaRing.POINTS_PER_SERVER / 4; i++) {
        const digest = hash('md5', `${server}-${i}`, 'buffer');
        for (let j = 0; j < 4; j++) entries[n++] = { point: digest.readUInt32LE(j * 4), owner };
      }
    });
    // Ties (vanishingly rare) are broken by server name so every process builds the same ring.
    entries.sort((a, b) => a.point - b.point || compare(servers[a.owner], servers[b.owner]));
    this.#points = Uint32Array.from(entries, (e) => e.point);
    this.#owners = Uint16Array.from(entries, (e) => e.owner);
  }

  /** Index in {@link KetamaRing.servers} of the server that owns `key`. */
  indexFor(key: string): number {
    if (this.servers.length === 1) return 0;
    const point = hash('md5', key, 'buffer').readUInt32LE(0);
    const points = this.#points;
    let lo = 0;
    let hi = points.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((points[mid] as number) < point) lo = mid + 1;
      else hi = mid;
    }
    return this.#owners[lo === points.length ? 0 : lo] as number;
  }

  /** The server that owns `key`. */
  serverFor(key: string): string {
    return this.servers[this.indexFor(key)] as string;
  }
}

function compare(a: string | undefined, b: string | undefined): number {
  return a === b ? 0 : (a ?? '') < (b ?? '') ? -1 : 1;
}
