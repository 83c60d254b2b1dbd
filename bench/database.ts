import { MikroORM } from '@mikro-orm/postgresql';
import pg from 'pg';
import { entities } from '../spec/support/bookstore.js';

/**
 * The benchmark's data, the same for every contender: the bookstore schema with `books` books, 50 per author,
 * 10 publishers, 20 tags (two per book) and one review per book. Seeded once into a template database, then every
 * contender gets a fresh copy (`CREATE DATABASE … TEMPLATE`), so no contender sees another's writes. `large` adds
 * authors with many books after those (author and book ids after the others; no tags, no reviews).
 */
export async function createTemplate(adminUrl: string, name: string, books: number, booksPerAuthor: number, large?: { authors: number; books: number }): Promise<string> {
  const url = await recreate(adminUrl, name);
  const orm = await MikroORM.init({ entities, clientUrl: url });
  try {
    await orm.schema.refresh();
  } finally {
    await orm.close(true);
  }
  const authors = Math.ceil(books / booksPerAuthor);
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(`INSERT INTO publisher (id, name) SELECT g, 'Publisher ' || g FROM generate_series(1, 10) g`);
    await client.query(
      `INSERT INTO author (id, name, email, born) SELECT g, 'Author ' || g, 'a' || g || '@example.org', timestamp '1950-01-01' + g * interval '17 days' FROM generate_series(1, $1) g`,
      [authors],
    );
    await client.query(`INSERT INTO tag (id, label) SELECT g, 'tag-' || g FROM generate_series(1, 20) g`);
    // Prices stay below 1000; the mixed workload writes prices from 1,000,000 up, so a read can tell old from new.
    await client.query(
      `INSERT INTO book (id, title, price, author_id, publisher_id) SELECT g, 'Book ' || g, 10 + g % 90, (g - 1) / $2 + 1, g % 10 + 1 FROM generate_series(1, $1) g`,
      [books, booksPerAuthor],
    );
    await client.query(`INSERT INTO book_tags (book_id, tag_id) SELECT g, g % 20 + 1 FROM generate_series(1, $1) g UNION ALL SELECT g, (g + 7) % 20 + 1 FROM generate_series(1, $1) g`, [books]);
    await client.query(`INSERT INTO review (id, book_id, stars) SELECT g, g, g % 5 + 1 FROM generate_series(1, $1) g`, [books]);
    if (large && large.authors > 0) {
      await client.query(`INSERT INTO author (id, name, email) SELECT $1 + g, 'Author ' || ($1 + g), 'a' || ($1 + g) || '@example.org' FROM generate_series(1, $2) g`, [authors, large.authors]);
      await client.query(
        `INSERT INTO book (id, title, price, author_id, publisher_id) SELECT $1 + g, 'Book ' || ($1 + g), 10 + g % 90, $2 + (g - 1) / $3 + 1, g % 10 + 1 FROM generate_series(1, $4) g`,
        [books, authors, large.books, large.authors * large.books],
      );
    }
    await client.query('VACUUM ANALYZE');
  } finally {
    await client.end();
  }
  return url;
}

/** A fresh copy of the template for one contender. */
export async function cloneDatabase(adminUrl: string, template: string, name: string): Promise<string> {
  return recreate(adminUrl, name, template);
}

export async function dropDatabase(adminUrl: string, name: string): Promise<void> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    await client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  } finally {
    await client.end();
  }
}

async function recreate(adminUrl: string, name: string, template?: string): Promise<string> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    await client.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    await client.query(`CREATE DATABASE "${name}"${template ? ` TEMPLATE "${template}"` : ''}`);
  } finally {
    await client.end();
  }
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

/** The admin URL (database `postgres`) of the server behind a database URL. */
export function adminUrlOf(databaseUrl: string): string {
  const url = new URL(databaseUrl);
  url.pathname = '/postgres';
  return url.toString();
}

export async function postgresVersion(url: string): Promise<string> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query('SHOW server_version');
    return String((rows[0] as { server_version: string }).server_version);
  } finally {
    await client.end();
  }
}
