import { expect } from 'chai';
import { statementTables, type StatementTables } from '../../lib/mikro-orm/sql-tables.js';

/** Sorted so assertions do not depend on the order tables appear in. */
function tables(sql: string, defaultSchema?: string): { kind: StatementTables['kind']; reads: string[]; writes: string[]; unknown: boolean } {
  const r = statementTables(sql, defaultSchema);
  return { kind: r.kind, reads: [...r.reads].sort(), writes: [...r.writes].sort(), unknown: r.unknownWrites };
}

function read(...reads: string[]) {
  return { kind: 'read', reads: reads.sort(), writes: [], unknown: false };
}

function write(writes: string[], reads: string[] = []) {
  return { kind: 'write', reads: reads.sort(), writes: writes.sort(), unknown: false };
}

const OTHER = { kind: 'other', reads: [], writes: [], unknown: false };
const UNKNOWN = { kind: 'write', reads: [], writes: [], unknown: true };

describe('statementTables', () => {
  describe('MikroORM query builder SQL', () => {
    it('reads a select with a schema-qualified join, ignoring aliases', () => {
      const sql =
        'select "b0".*, "a1"."id" as "a1__id" from "book" as "b0" left join "public"."author" as "a1" on "b0"."author_id" = "a1"."id" where "b0"."id" in (?, ?)';
      expect(tables(sql)).to.deep.equal(read('public.book', 'public.author'));
    });

    it('writes an update', () => {
      expect(tables('update "book" set "title" = ? where "id" = ?')).to.deep.equal(write(['public.book']));
    });

    it('writes an insert with returning', () => {
      expect(tables('insert into "book" ("title") values (?) returning "id"')).to.deep.equal(write(['public.book']));
    });

    it('writes a delete', () => {
      expect(tables('delete from "book" where "id" in (?)')).to.deep.equal(write(['public.book']));
    });

    it('writes a batch update with case when', () => {
      const sql =
        'update "book" set "title" = case when ("id" = ?) then ? when ("id" = ?) then ? else "title" end, "version" = "version" + 1 where "id" in (?, ?) returning "version"';
      expect(tables(sql)).to.deep.equal(write(['public.book']));
    });

    it('keeps the upsert target as the only write of ON CONFLICT DO UPDATE', () => {
      const sql = 'insert into "book" ("id", "title") values (?, ?) on conflict ("id") do update set "title" = excluded."title", "price" = excluded."price" returning "id"';
      expect(tables(sql)).to.deep.equal(write(['public.book']));
    });

    it('reads the tables of a populate query with a subquery in the where clause', () => {
      const sql = 'select "t0".* from "tag" as "t0" where "t0"."id" in (select "bt"."tag_id" from "book_tags" as "bt" where "bt"."book_id" = ?) order by "t0"."name" asc';
      expect(tables(sql)).to.deep.equal(read('public.tag', 'public.book_tags'));
    });

    it('reads a pessimistic lock select without writing', () => {
      expect(tables('select "b0".* from "book" as "b0" where "b0"."id" = ? for update of "b0"')).to.deep.equal(read('public.book'));
      expect(tables('select * from "book" for no key update skip locked')).to.deep.equal(read('public.book'));
    });
  });

  describe('raw SQL reads', () => {
    it('lowercases unquoted names and keeps quoted case', () => {
      expect(tables('SELECT * FROM Book b JOIN "Author" a ON a.id = b.author_id')).to.deep.equal(read('public.book', 'public.Author'));
    });

    it('applies the default schema only to unqualified names', () => {
      expect(tables('select * from book, audit.log, "Sales"."Order" o', 'app')).to.deep.equal(read('app.book', 'audit.log', 'Sales.Order'));
    });

    it('unescapes doubled quotes in quoted identifiers', () => {
      expect(tables('select * from "we""ird"')).to.deep.equal(read('public.we"ird'));
    });

    it('excludes CTE names, including recursive ones and ones with column lists', () => {
      const sql = `with recursive tree(id, parent) as (select id, parent_id from category union all select c.id, c.parent_id from category c join tree t on c.parent_id = t.id),
        counts as materialized (select count(*) from tree) select * from tree, counts, other.tree`;
      expect(tables(sql)).to.deep.equal(read('public.category', 'other.tree'));
    });

    it('reads subqueries in select lists, lateral joins and derived tables', () => {
      const sql = `select (select max(p.price) from price p where p.book_id = b.id), x.n
        from book b cross join lateral (select count(*) n from review r where r.book_id = b.id) x, (select 1 from shelf) s`;
      expect(tables(sql)).to.deep.equal(read('public.book', 'public.price', 'public.review', 'public.shelf'));
    });

    it('ignores FROM inside function arguments and IS DISTINCT FROM', () => {
      const sql = "select extract(epoch from created_at), substring(title from 1 for 3), trim(both ' ' from name) from book where a is distinct from b";
      expect(tables(sql)).to.deep.equal(read('public.book'));
    });

    it('does not take set-returning functions for tables', () => {
      expect(tables('select * from generate_series(1, 3) g, book, unnest(array[1,2]) with ordinality as u(x, n)')).to.deep.equal(read('public.book'));
    });

    it('reads parenthesised joins, ONLY and TABLE', () => {
      expect(tables('select * from (a join b using (id)) join only c on true')).to.deep.equal(read('public.a', 'public.b', 'public.c'));
      expect(tables('table book union table archive.book')).to.deep.equal(read('public.book', 'archive.book'));
    });

    it('reads set operations and VALUES', () => {
      expect(tables('(select id from a) union all (select id from b) except select id from c')).to.deep.equal(read('public.a', 'public.b', 'public.c'));
      expect(tables('values (1, 2), (3, 4)')).to.deep.equal(read());
    });
  });

  describe('raw SQL writes', () => {
    it('puts the reads of write statements in reads', () => {
      expect(tables('UPDATE a SET x = (SELECT y FROM b WHERE b.id = a.id)')).to.deep.equal(write(['public.a'], ['public.b']));
      expect(tables('INSERT INTO a SELECT * FROM b')).to.deep.equal(write(['public.a'], ['public.b']));
      expect(tables('update only a set x = b.y from b, c where b.id = a.id')).to.deep.equal(write(['public.a'], ['public.b', 'public.c']));
      expect(tables('delete from only a using b, c where a.id = b.id')).to.deep.equal(write(['public.a'], ['public.b', 'public.c']));
    });

    it('writes the MERGE target and reads its source, ignoring the WHEN actions', () => {
      const sql = `MERGE INTO stock s USING (select * from delivery) d ON s.item = d.item
        WHEN MATCHED AND d.qty = 0 THEN DELETE WHEN MATCHED THEN UPDATE SET qty = s.qty + d.qty, at = now()
        WHEN NOT MATCHED THEN INSERT (item, qty) VALUES (d.item, d.qty)`;
      expect(tables(sql)).to.deep.equal(write(['public.stock'], ['public.delivery']));
      expect(tables('merge into stock using delivery on true when matched then do nothing')).to.deep.equal(write(['public.stock'], ['public.delivery']));
    });

    it('finds data-modifying CTEs and excludes the CTE name from reads', () => {
      expect(tables('WITH d AS (DELETE FROM x RETURNING *) INSERT INTO y SELECT * FROM d')).to.deep.equal(write(['public.x', 'public.y']));
      expect(tables('with u as (update a set n = 1 returning id) select * from u join b on b.id = u.id')).to.deep.equal(write(['public.a'], ['public.b']));
    });

    it('writes TRUNCATE lists', () => {
      expect(tables('TRUNCATE TABLE ONLY a, s.b * RESTART IDENTITY CASCADE')).to.deep.equal(write(['public.a', 's.b']));
      expect(tables('truncate "Book"')).to.deep.equal(write(['public.Book']));
    });

    it('writes COPY FROM and reads COPY TO', () => {
      expect(tables('copy book (id, title) from stdin with (format csv)')).to.deep.equal(write(['public.book']));
      expect(tables('COPY book TO STDOUT')).to.deep.equal(read('public.book'));
      expect(tables('copy (select * from book join author on true) to stdout')).to.deep.equal(read('public.book', 'public.author'));
      expect(tables("copy 'x' from stdin")).to.deep.equal(UNKNOWN);
    });

    it('writes DDL targets', () => {
      expect(tables('ALTER TABLE IF EXISTS ONLY book ADD COLUMN isbn text')).to.deep.equal(write(['public.book']));
      expect(tables('drop table if exists a, s.b cascade')).to.deep.equal(write(['public.a', 's.b']));
      expect(tables('create table if not exists book (id int primary key, title text)')).to.deep.equal(write(['public.book']));
      expect(tables('create unlogged table t as select * from book where id > 5')).to.deep.equal(write(['public.t'], ['public.book']));
      expect(tables('create or replace view v as select * from book')).to.deep.equal(write(['public.v'], ['public.book']));
    });

    it('writes the new table of SELECT INTO', () => {
      expect(tables('select * into temp table t from book')).to.deep.equal(write(['public.t'], ['public.book']));
    });

    it('writes refreshed materialized views', () => {
      expect(tables('REFRESH MATERIALIZED VIEW CONCURRENTLY stats.daily')).to.deep.equal(write(['stats.daily']));
    });

    it('combines multiple statements', () => {
      expect(tables('insert into a values (1); select * from b; update c set x = 1;')).to.deep.equal(write(['public.a', 'public.c'], ['public.b']));
      expect(tables('select * from a; select * from b')).to.deep.equal(read('public.a', 'public.b'));
    });
  });

  describe('other and unknown statements', () => {
    it('classifies transaction control and session statements as other', () => {
      for (const sql of ['begin', 'COMMIT', 'rollback to savepoint s1', 'savepoint s1', 'release savepoint s1', "set search_path to 'x'", 'show work_mem', 'vacuum analyze book', 'analyze book', 'listen ch', "notify ch, 'update'", 'lock table book in exclusive mode', 'create index i on book using btree (title)', '', '  -- nothing\n']) {
        expect(tables(sql), sql).to.deep.equal(OTHER);
      }
    });

    it('treats EXPLAIN as other unless it analyzes, then as the statement', () => {
      expect(tables('explain select * from book')).to.deep.equal(OTHER);
      expect(tables('explain (analyze false) delete from book')).to.deep.equal(OTHER);
      expect(tables('EXPLAIN ANALYZE VERBOSE delete from book')).to.deep.equal(write(['public.book']));
      expect(tables('explain (analyze, buffers) update book set x = 1 from author')).to.deep.equal(write(['public.book'], ['public.author']));
      expect(tables('explain analyse select * from book')).to.deep.equal(read('public.book'));
    });

    it('reports unknown writes for DO, CALL, EXECUTE and unrecognised statements', () => {
      expect(tables('DO $$ BEGIN DELETE FROM book; END $$')).to.deep.equal(UNKNOWN);
      expect(tables('call archive_books(1)')).to.deep.equal(UNKNOWN);
      expect(tables('execute stmt1(1, 2)')).to.deep.equal(UNKNOWN);
      expect(tables('frobnicate book')).to.deep.equal(UNKNOWN);
      expect(tables('drop schema app cascade')).to.deep.equal(UNKNOWN);
    });

    it('keeps unknown writes alongside known tables in multi-statement strings', () => {
      expect(tables('select * from a; do $x$ begin perform 1; end $x$; update b set y = 2')).to.deep.equal({
        kind: 'write',
        reads: ['public.a'],
        writes: ['public.b'],
        unknown: true,
      });
    });

    it('does not report a plain SELECT of a function as an unknown write', () => {
      expect(tables('select archive_books(1)')).to.deep.equal(read());
    });
  });

  describe('adversarial input', () => {
    it('ignores keywords inside string literals, including escaped quotes', () => {
      expect(tables("select 'x''; delete from book; --' from a where t = 'update b set'")).to.deep.equal(read('public.a'));
    });

    it('ignores keywords inside E strings with backslash escapes', () => {
      expect(tables("select E'it\\'s; delete from book', e'\\\\' from a")).to.deep.equal(read('public.a'));
    });

    it('ignores keywords inside dollar-quoted strings, tagged or not', () => {
      expect(tables('select $$ delete from x $$, $fn$ $$ update y set $$ $fn$ from a')).to.deep.equal(read('public.a'));
    });

    it('ignores keywords inside line and nested block comments', () => {
      const sql = 'select /* outer /* inner */ still comment: delete from x; */ * -- update y set z = 1\n from a';
      expect(tables(sql)).to.deep.equal(read('public.a'));
    });

    it('treats quoted identifiers and qualified columns named like keywords as names', () => {
      expect(tables('select "update", "delete" from "into" where "from" = 1')).to.deep.equal(read('public.into'));
      expect(tables('update "update" set "delete" = ? where "select" = ?')).to.deep.equal(write(['public.update']));
      expect(tables('insert into t (update, "insert") values (1, 2)')).to.deep.equal(write(['public.t']));
      expect(tables('select t.update, t.into from t')).to.deep.equal(read('public.t'));
    });

    it('does not take the U& prefix or ROWS FROM for tables', () => {
      expect(tables('select * from U&"bo\\006fk", rows from (f(1), g(2)) r')).to.deep.equal(read('public.bo\\006fk'));
    });

    it('survives long EXPLAIN chains without recursion', () => {
      expect(tables(`${'explain analyze '.repeat(100_000)}delete from book`)).to.deep.equal(write(['public.book']));
    });

    it('skips positional and anonymous parameters', () => {
      expect(tables('select * from book where id = $1 and title = ? and x = $12')).to.deep.equal(read('public.book'));
    });

    it('reports unknown writes for unterminated input that may write', () => {
      expect(tables("select 'unterminated from a")).to.deep.equal(read());
      expect(tables('select * from a /* never closed')).to.deep.equal(read('public.a'));
      expect(tables("update book set title = 'oops")).to.deep.equal({ kind: 'write', reads: [], writes: ['public.book'], unknown: true });
      expect(tables('select $$ delete from x')).to.deep.equal(UNKNOWN);
      expect(tables('vacuum "book')).to.deep.equal(UNKNOWN);
    });

    it('analyses very long and deeply nested input: no recursion limit, no quadratic blow-up', () => {
      // Sized so that a lexer quadratic in the input (2 * 10^5 list items: ~10^11 steps) would not finish within the
      // test's timeout, while a linear one takes a fraction of a second; and nested past any recursion limit.
      const wide = `select * from a where x in (${Array.from({ length: 200_000 }, () => '?').join(', ')})`;
      const deep = `${'select * from ('.repeat(20_000)}select 1${') s'.repeat(20_000)}`;
      const junk = 'with x ( '.repeat(50_000);
      expect(tables(wide)).to.deep.equal(read('public.a'));
      expect(tables(deep)).to.deep.equal(read());
      expect(tables(junk).kind).to.equal('read');
    });
  });
});
