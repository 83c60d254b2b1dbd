import type { RequestBatch } from './request-batch.js';

/**
 * The batches of one connection in the order they were queued, which is the order memcached answers them and the
 * order their deadlines fall. `Array#shift` would copy the array on every answered batch; a moving head does not.
 */
export class BatchFifo {
  #items: (RequestBatch | undefined)[] = [];
  #head = 0;

  get length(): number {
    return this.#items.length - this.#head;
  }

  push(batch: RequestBatch): void {
    this.#items.push(batch);
  }

  peek(): RequestBatch | undefined {
    return this.#items[this.#head];
  }

  shift(): RequestBatch | undefined {
    const batch = this.#items[this.#head];
    if (batch === undefined) return undefined;
    this.#items[this.#head++] = undefined;
    if (this.#head === this.#items.length) {
      this.#items.length = 0;
      this.#head = 0;
    } else if (this.#head >= 1024 && this.#head * 2 >= this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    return batch;
  }

  /** The `n`th batch from the head. */
  at(n: number): RequestBatch | undefined {
    return this.#items[this.#head + n];
  }

  /** Removes and returns every batch. */
  drain(): RequestBatch[] {
    const all = this.#items.slice(this.#head) as RequestBatch[];
    this.#items = [];
    this.#head = 0;
    return all;
  }
}
