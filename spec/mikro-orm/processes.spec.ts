import { expect } from 'chai';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { sharedServers } from '../support/global-servers.js';
import { Author, Book, openBookstore, seedBookstore, type Bookstore } from '../support/bookstore.js';

const script = fileURLToPath(new URL('./writer-process.js', import.meta.url));

/**
 * Two ORMs in two processes share memcached and PostgreSQL: one writes, the other must never read a value older
 * than a commit that has returned in the writer (G2), across rows, query results and collections.
 */
describe('two application processes', function () {
  this.timeout(120_000);
  let reader: Bookstore;
  let writer: ChildProcessWithoutNullStreams;
  const answers: string[] = [];
  let wake: (() => void) | undefined;

  before(async () => {
    const s = sharedServers();
    const namespace = `p${randomUUID().slice(0, 8)}`;
    reader = await openBookstore(s.memcachedAddresses, s.db, { namespace });
    await seedBookstore(reader.orm);
    writer = spawn(process.execPath, [script], { env: { ...process.env, MEMCACHED_SERVERS: s.memcachedAddresses.join(','), DATABASE_URL: s.db, NAMESPACE: namespace } });
    writer.stdout.on('data', (d: Buffer) => {
      answers.push(...d.toString().trim().split('\n'));
      wake?.();
    });
  });

  after(async () => {
    writer.stdin.end('quit\n');
    await new Promise((r) => writer.once('exit', r));
    await reader.close();
  });

  /** Sends a command and resolves when the writer's commit has returned. */
  async function commitInWriter(command: string): Promise<void> {
    const expected = answers.length + 1;
    writer.stdin.write(`${command}\n`);
    while (answers.length < expected) await new Promise<void>((r) => (wake = r));
  }

  it('never serves a row older than a commit that returned in the other process', async () => {
    for (let i = 0; i < 40; i++) {
      const id = 1 + (i % 4);
      expect((await reader.orm.em.fork().findOneOrFail(Book, id)).title).to.be.a('string'); // cached now
      await commitInWriter(`title ${id} v${i}`);
      expect((await reader.orm.em.fork().findOneOrFail(Book, id)).title).to.equal(`v${i}`);
    }
    expect(reader.cache().xa.stats.hits).to.be.greaterThan(0);
  });

  it('never serves a stale query result or collection after the other process moved a book', async () => {
    const owned = async (authorId: number): Promise<number[]> => (await reader.orm.em.fork().findOneOrFail(Author, authorId, { populate: ['books'] })).books.getItems().map((b) => b.id);
    const count = (authorId: number): Promise<number> => reader.orm.em.fork().count(Book, { author: authorId }, { cache: 60_000 });
    for (let i = 0; i < 10; i++) {
      const [from, to] = i % 2 === 0 ? [1, 2] : [2, 1];
      const before = await owned(from);
      const moving = before[0] as number;
      const fromCount = await count(from);
      await commitInWriter(`move ${moving} ${to}`);
      expect(await owned(from)).to.not.include(moving);
      expect(await owned(to)).to.include(moving);
      expect(await count(from)).to.equal(fromCount - 1);
    }
  });
});
