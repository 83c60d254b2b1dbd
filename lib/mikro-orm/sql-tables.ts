/**
 * Which tables a PostgreSQL statement reads and writes. A full SQL parser would be slow and brittle on every statement
 * MikroORM issues; the cache needs only table names, so this is one linear tokenizer pass plus a keyword-driven scan.
 *
 * Not tracked, by design: tables touched by functions, triggers, rules or views that a statement invokes (a plain
 * SELECT counts as read-only even if a function it calls writes), and tables named inside dynamic SQL.
 */

/**
 * What a statement does to tables. Names are `schema.table`, lowercased unless quoted.
 * `unknownWrites` means the statement may write but its tables cannot be determined (DO, CALL, EXECUTE, unrecognised
 * or unterminated statements); a plain SELECT reads only, even if it calls functions.
 */
export interface StatementTables {
  /** `other` (BEGIN, SET, SHOW, LOCK, VACUUM, EXPLAIN without ANALYZE, ...) needs no cache action. */
  readonly kind: 'read' | 'write' | 'other';
  /** Tables read: FROM, JOIN, USING, subqueries, COPY ... TO; CTE names and aliases excluded. */
  readonly reads: readonly string[];
  /** Tables written, including DDL targets (CREATE/ALTER/DROP TABLE) and refreshed materialized views. */
  readonly writes: readonly string[];
  /** The statement may write tables that cannot be named; the caller must invalidate broadly. */
  readonly unknownWrites: boolean;
  /**
   * The statement calls a function that is not a known read-only built-in: even a SELECT may then write (through
   * the function), so outside a transaction it is run inside one of the library's, whose prepare takes what the
   * database captured.
   */
  readonly callsFunctions: boolean;
}

type Kind = 'word' | 'qid' | 'lit' | 'op' | '(' | ')' | ',' | ';' | '.';
interface Token { readonly k: Kind; readonly v: string }
interface Ref { readonly schema: string | undefined; readonly name: string }
interface Acc { readonly reads: Ref[]; readonly writes: Ref[]; readonly ctes: Set<string>; unknown: boolean }
interface Frame { readonly query: boolean; from: boolean; readonly cte: boolean }

const LIT: Token = { k: 'lit', v: '' };
// Any of these disables the SELECT quick path, so over-inclusion only costs speed.
const WRITE_WORDS = new Set(['insert', 'update', 'delete', 'merge', 'into', 'copy', 'truncate', 'alter', 'drop', 'create', 'refresh', 'do', 'call', 'execute']);
const WRITE_RE = new RegExp(`\\b(?:${[...WRITE_WORDS].join('|')})\\b`, 'i');
const QUERY_STARTS = new Set(['select', 'with', 'values', 'table', 'insert', 'update', 'delete', 'merge']);
// A word before `(` names a function (whose FROM, as in `extract(x from y)`, is no table) unless it is one of these.
const PAREN_KEYWORDS = new Set(['from', 'join', 'lateral', 'as', 'in', 'exists', 'any', 'all', 'some', 'not', 'materialized', 'using', 'union', 'intersect', 'except', 'select', 'where', 'and', 'or', 'on']);
// Clauses after which a comma no longer introduces another FROM item.
const FROM_ENDERS = new Set(['where', 'group', 'order', 'limit', 'offset', 'fetch', 'having', 'window', 'union', 'intersect', 'except', 'returning', 'for', 'when', 'set']);
const SET_OPS = new Set(['union', 'intersect', 'except', 'all', 'distinct']);
const INTO_SKIP = new Set(['temp', 'temporary', 'unlogged', 'table', 'global', 'local']);
const CREATE_SKIP = new Set(['or', 'replace', 'global', 'local', 'temp', 'temporary', 'unlogged']);
const OTHER = new Set(['begin', 'start', 'commit', 'end', 'rollback', 'abort', 'savepoint', 'release', 'set', 'reset', 'show', 'vacuum', 'analyze', 'analyse', 'listen', 'notify', 'unlisten', 'lock', 'discard', 'deallocate', 'checkpoint', 'prepare', 'declare', 'fetch', 'move', 'close', 'grant', 'revoke', 'comment', 'security', 'load', 'reindex', 'cluster']);

// Built-ins and type names that read only: a call of any other function may write.
const READ_ONLY_CALLS = new Set([
  'count', 'sum', 'avg', 'min', 'max', 'coalesce', 'nullif', 'greatest', 'least', 'lower', 'upper', 'length', 'char_length', 'trim', 'btrim', 'ltrim', 'rtrim',
  'substring', 'substr', 'position', 'replace', 'concat', 'concat_ws', 'split_part', 'left', 'right', 'to_char', 'to_date', 'to_timestamp', 'to_number', 'format',
  'array_agg', 'string_agg', 'json_agg', 'jsonb_agg', 'json_object_agg', 'jsonb_object_agg', 'json_build_object', 'jsonb_build_object', 'json_build_array',
  'jsonb_build_array', 'row_to_json', 'to_json', 'to_jsonb', 'jsonb_set', 'jsonb_extract_path', 'jsonb_extract_path_text', 'json_extract_path_text', 'array_length', 'cardinality',
  'unnest', 'generate_series', 'array', 'row', 'cast', 'extract', 'date_trunc', 'date_part', 'age', 'now', 'current_timestamp', 'abs', 'round', 'floor', 'ceil', 'ceiling',
  'mod', 'power', 'sqrt', 'random', 'row_number', 'rank', 'dense_rank', 'lag', 'lead', 'first_value', 'last_value', 'ntile', 'bool_and', 'bool_or', 'every',
  'exists', 'any', 'all', 'some', 'in', 'values', 'filter', 'over', 'partition', 'within', 'grouping', 'rollup', 'cube', 'similarity', 'to_tsvector', 'to_tsquery',
  'plainto_tsquery', 'websearch_to_tsquery', 'ts_rank', 'lpad', 'rpad', 'md5', 'encode', 'decode', 'gen_random_uuid', 'pg_xact_status', 'current_setting',
  'varchar', 'char', 'character', 'numeric', 'decimal', 'timestamp', 'timestamptz', 'time', 'timetz', 'interval', 'bit', 'varbit', 'float', 'double', 'precision',
  'into', 'on', 'using', 'returning', 'set', 'where', 'and', 'or', 'not', 'is', 'as', 'from', 'join', 'lateral', 'select', 'union', 'intersect', 'except', 'materialized',
  'with', 'conflict', 'do', 'update', 'insert', 'delete', 'table', 'by', 'then', 'else', 'when', 'case', 'end', 'limit', 'offset', 'order', 'group', 'having',
]);

/** Whether the tokens call a function outside {@link READ_ONLY_CALLS} (`name(`, `schema.name(`, `"Name"(`). */
function callsFunctions(t: Token[]): boolean {
  for (let i = 0; i + 1 < t.length; i++) {
    const tok = t[i] as Token;
    if (t[i + 1]?.k !== '(') continue;
    if (tok.k === 'qid' || (tok.k === 'word' && !READ_ONLY_CALLS.has(tok.v))) return true;
  }
  return false;
}

const isIdentStart = (c: number): boolean => (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || c === 95 || c >= 128;
const isIdentPart = (c: number): boolean => isIdentStart(c) || (c >= 48 && c <= 57) || c === 36;
const isDigit = (c: number): boolean => c >= 48 && c <= 57;
const isName = (t: Token | undefined): t is Token => t !== undefined && (t.k === 'word' || t.k === 'qid');
const isWord = (t: Token | undefined, v: string): boolean => t !== undefined && t.k === 'word' && t.v === v;
const isAnalyze = (t: Token | undefined): boolean => isWord(t, 'analyze') || isWord(t, 'analyse');

/** Index just past the `quote` that closes a literal whose body starts at `i`, or -1 if unterminated. */
function skipQuoted(sql: string, i: number, quote: '"' | "'", backslashes: boolean): number {
  for (let q = sql.indexOf(quote, i); q >= 0; q = sql.indexOf(quote, i)) {
    let b = q - 1;
    // In an E'' string an odd run of backslashes escapes the quote.
    while (backslashes && b >= i && sql.charCodeAt(b) === 92) b--;
    if ((q - 1 - b) % 2 === 1) i = q + 1;
    else if (sql[q + 1] === quote) i = q + 2;
    else return q + 1;
  }
  return -1;
}

/** Index just past a block comment starting at `i`, or -1; PostgreSQL's nest, unlike the SQL standard's. */
function skipComment(sql: string, i: number): number {
  let j = i + 2;
  for (let depth = 1; depth > 0; j++) {
    if (j >= sql.length) return -1;
    const a = sql.charCodeAt(j);
    const b = sql.charCodeAt(j + 1);
    if (a === 47 && b === 42) depth++;
    else if (a === 42 && b === 47) depth--;
    else continue;
    j++;
  }
  return j;
}

/** Tokens that matter for table names: literals, parameters and comments collapse or vanish. */
function lex(sql: string): { tokens: Token[]; clean: boolean; writeWord: boolean; semicolons: number } {
  const tokens: Token[] = [];
  const n = sql.length;
  let writeWord = false;
  let semicolons = 0;
  for (let i = 0, end = 0; i < n; i = end) {
    const c = sql.charCodeAt(i);
    const d = sql.charCodeAt(i + 1);
    let tok: Token | undefined = LIT; // undefined for whitespace and comments
    if (c <= 32) {
      end = i + 1;
      tok = undefined;
    } else if ((c === 45 && d === 45) || (c === 47 && d === 42)) {
      end = d === 42 ? skipComment(sql, i) : sql.indexOf('\n', i) < 0 ? n : sql.indexOf('\n', i) + 1;
      tok = undefined;
    } else if (c === 39 || ((c === 69 || c === 101) && d === 39)) {
      end = skipQuoted(sql, c === 39 ? i + 1 : i + 2, "'", c !== 39);
    } else if (c === 34) {
      end = skipQuoted(sql, i + 1, '"', false);
      tok = { k: 'qid', v: sql.slice(i + 1, end - 1).replaceAll('""', '"') };
    } else if (c === 36 && isDigit(d)) {
      for (end = i + 2; isDigit(sql.charCodeAt(end)); end++);
    } else if (c === 36) {
      let j = i + 1;
      while (j < n && sql.charCodeAt(j) !== 36 && isIdentPart(sql.charCodeAt(j))) j++;
      const tag = sql.slice(i, j + 1);
      const close = sql.charCodeAt(j) === 36 ? sql.indexOf(tag, j + 1) : -2;
      end = close >= 0 ? close + tag.length : close === -1 ? -1 : i + 1;
      // A `$` that opens no tag is an operator character; what follows lexes normally.
      if (close === -2) tok = { k: 'op', v: '$' };
    } else if ((c === 85 || c === 117) && d === 38 && (sql[i + 2] === '"' || sql[i + 2] === "'")) {
      // U&"..." and U&'...': the prefix is no name (Unicode escapes in the name stay undecoded).
      end = i + 2;
      tok = undefined;
    } else if (isIdentStart(c)) {
      for (end = i + 1; end < n && isIdentPart(sql.charCodeAt(end)); end++);
      tok = { k: 'word', v: sql.slice(i, end).toLowerCase() };
      writeWord ||= WRITE_WORDS.has(tok.v);
    } else if (isDigit(c)) {
      for (end = i + 1; end < n && (isIdentPart(sql.charCodeAt(end)) || sql.charCodeAt(end) === 46); end++);
    } else {
      const ch = sql[i] as string;
      const k: Kind = ch === '(' || ch === '[' ? '(' : ch === ')' || ch === ']' ? ')' : ch === ',' || ch === ';' || ch === '.' ? ch : 'op';
      if (k === ';') semicolons++;
      end = i + 1;
      tok = { k, v: ch };
    }
    // Whatever follows an unterminated literal is unknown, so a write word anywhere in it counts.
    if (end < 0) return { tokens, clean: false, writeWord: writeWord || WRITE_RE.test(sql.slice(i)), semicolons };
    if (tok) tokens.push(tok);
  }
  return { tokens, clean: true, writeWord, semicolons };
}

/** A possibly qualified name at `i` (`db.schema.table` keeps the last two parts) and the index after it. */
function readName(t: Token[], i: number): { ref: Ref; next: number } | undefined {
  const parts: string[] = [];
  let j = i;
  for (let tok = t[j]; isName(tok); tok = t[j]) {
    parts.push(tok.v);
    if (t[++j]?.k !== '.' || !isName(t[j + 1])) break;
    j++;
  }
  const name = parts[parts.length - 1];
  return name === undefined ? undefined : { ref: { schema: parts[parts.length - 2], name }, next: j };
}

/**
 * Records the table at `i`, if any, and returns the last index consumed. A read followed by `(` is a function call
 * (or `ROWS FROM (...)` when followed by FROM); a write target followed by `(` has a column list.
 */
function tableRef(t: Token[], i: number, sink: Ref[], write = false): number {
  let j = i;
  while (isWord(t[j], 'only') || isWord(t[j], 'lateral')) j++;
  const r = readName(t, j);
  if (!r || (!write && (t[r.next]?.k === '(' || isWord(t[r.next], 'from')))) return j - 1;
  sink.push(r.ref);
  return t[r.next]?.k === 'op' && t[r.next]?.v === '*' ? r.next : r.next - 1;
}

/** Index of the `)` matching the `(` at `i`, or the last index before `end`. */
function matching(t: Token[], i: number, end: number): number {
  for (let j = i, depth = 0; j < end; j++) {
    const k = t[j]?.k;
    if (k === '(') depth++;
    else if (k === ')' && --depth === 0) return j;
  }
  return end - 1;
}

/** Parses `name [(cols)] AS [NOT] [MATERIALIZED] (` at `j`, recording the CTE name; returns the body's `(` index. */
function cteHeader(t: Token[], j: number, acc: Acc): number | undefined {
  const name = t[j];
  let k = j + 1;
  // A column list holds only names and commas; stopping at anything else keeps adversarial input linear.
  if (t[k]?.k === '(') for (k++; isName(t[k]) || t[k]?.k === ','; k++);
  if (t[k]?.k === ')' && t[j + 1]?.k === '(') k++;
  if (!isName(name) || !isWord(t[k++], 'as')) return undefined;
  if (isWord(t[k], 'not')) k++;
  if (isWord(t[k], 'materialized')) k++;
  if (t[k]?.k !== '(') return undefined;
  acc.ctes.add(name.v);
  return k;
}

/** Scans queries and DML at any nesting, tracking parentheses to tell subqueries from function arguments. */
function scan(t: Token[], start: number, end: number, acc: Acc): void {
  const frames: Frame[] = [{ query: true, from: false, cte: false }];
  let cteNext = false;
  for (let i = start; i < end; i++) {
    const tok = t[i] as Token;
    const prev = i > start ? t[i - 1] : undefined;
    const frame = frames[frames.length - 1] as Frame;
    const w = tok.k === 'word' && prev?.k !== '.' ? tok.v : ''; // after a dot, `t.update` is a column
    if (tok.k === '(') {
      const nextQuery = t[i + 1]?.k === 'word' && QUERY_STARTS.has((t[i + 1] as Token).v);
      const call = isName(prev) && !(prev.k === 'word' && PAREN_KEYWORDS.has(prev.v));
      const inner: Frame = { query: nextQuery || !call, from: false, cte: cteNext };
      frames.push(inner);
      cteNext = false;
      // A parenthesised join, `FROM (a JOIN b ON ...)`, starts with a table rather than a query.
      if (!nextQuery && frame.query && (isWord(prev, 'from') || isWord(prev, 'join') || (prev?.k === ',' && frame.from))) {
        inner.from = true;
        i = tableRef(t, i + 1, acc.reads);
      }
    } else if (tok.k === ')') {
      const closed = frames.length > 1 ? frames.pop() : undefined;
      const body = closed?.cte && t[i + 1]?.k === ',' ? cteHeader(t, i + 2, acc) : undefined;
      if (body !== undefined) [cteNext, i] = [true, body - 1];
    } else if (tok.k === ';') {
      frames.length = 1;
      frame.from = false;
    } else if (!frame.query) {
      continue;
    } else if (tok.k === ',') {
      if (frame.from) i = tableRef(t, i + 1, acc.reads);
    } else if ((w === 'from' && !isWord(prev, 'distinct')) || w === 'join' || (w === 'using' && isName(t[i + 1]))) {
      // `JOIN b USING (id)` lists columns; `DELETE ... USING b` and `MERGE ... USING b` name tables.
      frame.from = true;
      i = tableRef(t, i + 1, acc.reads);
    } else if (((w === 'insert' || w === 'merge') && isWord(t[i + 1], 'into')) || (w === 'delete' && isWord(t[i + 1], 'from'))) {
      // Without INTO/FROM these are MERGE's `THEN INSERT`/`THEN DELETE`, acting on the MERGE target.
      frame.from = false;
      i = tableRef(t, i + 2, acc.writes, true);
    } else if (w === 'update' && (!prev || prev.k === '(' || prev.k === ')')) {
      // Only at a statement start: FOR [NO KEY] UPDATE, DO UPDATE and THEN UPDATE follow other words.
      frame.from = false;
      i = tableRef(t, i + 1, acc.writes, true);
    } else if (w === 'into') {
      // INSERT and MERGE consumed their INTO, so this is SELECT INTO creating a table.
      let j = i + 1;
      while (t[j]?.k === 'word' && INTO_SKIP.has((t[j] as Token).v)) j++;
      i = Math.max(i, tableRef(t, j, acc.writes, true));
    } else if (w === 'with' && (!prev || prev.k === '(' || prev.k === ')' || isWord(prev, 'as'))) {
      const body = cteHeader(t, isWord(t[i + 1], 'recursive') ? i + 2 : i + 1, acc);
      if (body !== undefined) [cteNext, i] = [true, body - 1];
    } else if (w === 'table' && (!prev || prev.k === '(' || (prev.k === 'word' && SET_OPS.has(prev.v)))) {
      i = tableRef(t, i + 1, acc.reads);
    } else if (FROM_ENDERS.has(w)) {
      frame.from = false;
    }
  }
}

/** Index after `TABLE`, `VIEW`, `MATERIALIZED VIEW` or `FOREIGN TABLE` (and `IF [NOT] EXISTS`) at `j`, or -1. */
function relationAfter(t: Token[], j: number): number {
  let k = -1;
  if (isWord(t[j], 'table') || isWord(t[j], 'view')) k = j + 1;
  else if ((isWord(t[j], 'materialized') && isWord(t[j + 1], 'view')) || (isWord(t[j], 'foreign') && isWord(t[j + 1], 'table'))) k = j + 2;
  if (k >= 0 && isWord(t[k], 'if')) k += isWord(t[k + 1], 'not') ? 3 : 2;
  return k;
}

/** Records comma-separated table names at `j` (TRUNCATE, DROP, ALTER); returns how many. */
function nameList(t: Token[], j: number, sink: Ref[]): number {
  let count = 0;
  for (let r = readName(t, isWord(t[j], 'only') ? j + 1 : j); r; count++) {
    sink.push(r.ref);
    const k = t[r.next]?.v === '*' ? r.next + 1 : r.next;
    r = t[k]?.k === ',' ? readName(t, isWord(t[k + 1], 'only') ? k + 2 : k + 1) : undefined;
  }
  return count;
}

/** Handles one statement in [s, e); returns whether it is a query (a read, unless it also writes). */
function statement(t: Token[], s: number, e: number, acc: Acc): boolean {
  let h = s;
  // Plain EXPLAIN only plans; EXPLAIN ANALYZE runs the statement. A loop, not recursion, for `EXPLAIN ANALYZE EXPLAIN ...`.
  for (; isWord(t[h], 'explain'); s = h) {
    let analyze = false;
    if (t[++h]?.k === '(') {
      const close = matching(t, h, e);
      for (; h < close; h++) analyze ||= isAnalyze(t[h]) && !isWord(t[h + 1], 'false') && !isWord(t[h + 1], 'off');
      h = close + 1;
    }
    for (; isAnalyze(t[h]) || isWord(t[h], 'verbose'); h++) analyze ||= isAnalyze(t[h]);
    if (!analyze) return false;
  }
  while (t[h]?.k === '(') h++;
  if (h >= e) return false;
  const v = t[h]?.k === 'word' ? (t[h] as Token).v : '';
  const writesBefore = acc.writes.length;
  switch (v) {
    case 'select': case 'values': case 'table': case 'with':
      scan(t, s, e, acc);
      return true;
    case 'insert': case 'update': case 'delete': case 'merge':
      scan(t, s, e, acc);
      break;
    case 'copy': {
      if (t[h + 1]?.k === '(') {
        scan(t, h + 1, matching(t, h + 1, e) + 1, acc);
        return true;
      }
      const r = readName(t, h + 1);
      const k = r && t[r.next]?.k === '(' ? matching(t, r.next, e) + 1 : (r?.next ?? e);
      if (r && isWord(t[k], 'from')) acc.writes.push(r.ref);
      if (!r || !isWord(t[k], 'to')) break;
      acc.reads.push(r.ref);
      return true;
      break;
    }
    case 'truncate':
      nameList(t, isWord(t[h + 1], 'table') ? h + 2 : h + 1, acc.writes);
      break;
    case 'drop': case 'alter': {
      const k = relationAfter(t, h + 1);
      if (k >= 0) nameList(t, k, acc.writes);
      // Other objects write no table, except DROP SCHEMA ... CASCADE and DROP OWNED, which drop tables unnamed.
      else if (v === 'alter' || !(isWord(t[h + 1], 'schema') || isWord(t[h + 1], 'owned'))) return false;
      break;
    }
    case 'create': {
      let j = h + 1;
      while (t[j]?.k === 'word' && CREATE_SKIP.has((t[j] as Token).v)) j++;
      const k = relationAfter(t, j);
      if (k < 0) return false; // indexes, functions, sequences, ...
      const r = readName(t, k);
      if (r) acc.writes.push(r.ref);
      // CREATE TABLE/VIEW ... AS query: the query's tables are read.
      for (let i = r?.next ?? e, depth = 0; i < e; i++) {
        depth += t[i]?.k === '(' ? 1 : t[i]?.k === ')' ? -1 : 0;
        if (depth === 0 && isWord(t[i], 'as')) {
          scan(t, i + 1, e, acc);
          break;
        }
      }
      break;
    }
    case 'refresh': {
      const r = isWord(t[h + 1], 'materialized') && isWord(t[h + 2], 'view') ? readName(t, isWord(t[h + 3], 'concurrently') ? h + 4 : h + 3) : undefined;
      if (r) acc.writes.push(r.ref);
      break;
    }
    default:
      // DO, CALL, EXECUTE and anything unrecognised may write anything.
      if (OTHER.has(v)) return false;
  }
  // A write statement whose target could not be found is an unknown write.
  if (acc.writes.length === writesBefore) acc.unknown = true;
  return false;
}

/**
 * The tables `sql` reads and writes; `sql` may hold several `;`-separated statements. Unqualified names get
 * `defaultSchema`. Runs in time linear in the length of `sql`.
 */
export function statementTables(sql: string, defaultSchema = 'public'): StatementTables {
  const { tokens: t, clean, writeWord, semicolons } = lex(sql);
  const reads = new Set<string>();
  const writes = new Set<string>();
  let unknown = false;
  let read = false;
  const run = (s: number, e: number, quick: boolean): void => {
    const acc: Acc = { reads: [], writes: [], ctes: new Set(), unknown: false };
    if (quick) scan(t, s, e, acc);
    if (quick || statement(t, s, e, acc)) read = true;
    for (const r of acc.reads) if (r.schema !== undefined || !acc.ctes.has(r.name)) reads.add(`${r.schema ?? defaultSchema}.${r.name}`);
    for (const r of acc.writes) writes.add(`${r.schema ?? defaultSchema}.${r.name}`);
    unknown ||= acc.unknown;
  };
  const startsWithSelect = isWord(t[0], 'select');
  if (clean && startsWithSelect && !writeWord && (semicolons === 0 || (semicolons === 1 && t[t.length - 1]?.k === ';'))) {
    run(0, t.length, true); // the common case: one SELECT with no write keyword anywhere
  } else {
    for (let s = 0, i = 0; i <= t.length; i++) {
      if (i < t.length && t[i]?.k !== ';') continue;
      run(s, i, false);
      s = i + 1;
    }
  }
  // A statement cut short by an unterminated literal or comment may hide anything after the cut.
  if (!clean && (writeWord || !startsWithSelect)) unknown = true;
  const kind = unknown || writes.size > 0 ? 'write' : read ? 'read' : 'other';
  return { kind, reads: [...reads], writes: [...writes], unknownWrites: unknown, callsFunctions: callsFunctions(t) };
}
