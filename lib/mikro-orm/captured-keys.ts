import { ReferenceKind, type EntityMetadata, type EntityProperty } from '@mikro-orm/core';
import type { CapturedChange, CapturedKeys, CaptureDeriver, SchemeLookup } from '../protocol/write-capture.js';
import type { UnsafeTestSwitches } from '../protocol/protocol-options.js';
import { keys, pkString, regions } from './cache-keys.js';
import { imageValue } from './predicate-values.js';
import { entityCacheOf } from './entity-marker.js';
import { keyedByText } from './text-keys.js';
import { uniqueKeysOf } from './unique-keys.js';

type Row = Record<string, unknown>;

/** Rows one statement may change and still be invalidated key by key; above it, by the table's regions. */
export const ROW_KEYS_PER_STATEMENT = 256;

/** Conjunction regions one statement may renew in one table; above it, the table-wide generation instead. */
export const CONJUNCTIONS_PER_STATEMENT = 128;

/** A cached entity stored in the table: its rows are keyed by this column. */
interface RowsOf {
  readonly kind: 'rows';
  readonly pkColumn: string;
}

/**
 * A cached collection whose members are listed by a column of the table: a 1:m collection (the child's foreign
 * key) or one side of an m:n (a pivot column). `orderColumns`: columns its order depends on.
 */
interface MembersOf {
  readonly kind: 'members';
  readonly owner: EntityMetadata;
  readonly property: string;
  readonly column: string;
  readonly orderColumns: readonly string[];
  /** False when the owner's key does not print in JSON as readers print it: the table's collection region instead. */
  readonly exact: boolean;
}

/** A declared unique key of a cached entity stored in the table: its index entries are keyed by these columns' values. */
interface UniqueOf {
  readonly kind: 'unique';
  readonly columns: readonly string[];
  /** The primary key column: an update that moves a row's key moves what its index entries name. */
  readonly pkColumn: string;
}

type Effect = RowsOf | MembersOf | UniqueOf;

/**
 * What a captured change means for the cache, from the entity metadata: for each table, the rows of cached
 * entities it stores and the cached collections whose membership or order its columns decide.
 *
 * - every change renews the table's query region `t:` (results that read it, and the table's in-flight region);
 * - conjunction regions (`p:`): for every scheme of the table's scheme set, the conjunction of each old and new
 *   image's values (an insert: new, a delete: old). Without the set yet (`schemes` not given, or not read for the
 *   table), the table is listed in `schemeTables` so prepare reads it; an unreachable set, `TRUNCATE`, a statement
 *   recorded table-wide or one naming too many conjunctions renew the table-wide generation `tw:` instead;
 * - a row of a cached entity: its row key, for old and new images;
 * - a declared unique key (`uniqueKeys`): the index entry of the old and of the new values (an insert: the new,
 *   a delete: the old; an update: both, only when one of its columns or the primary key changed — otherwise the
 *   entry still names the right row). Images with a null in the key name no entry (nulls are never looked up);
 * - a child or pivot row: the collection of the owner named by the old and by the new value of its column (for
 *   an update, only when that column or a column of the collection's order changed);
 * - `TRUNCATE`, or a statement too large to carry images: the table's row and collection regions.
 */
export function captureDeriver(all: Iterable<EntityMetadata>, switches: Pick<UnsafeTestSwitches, 'forgetOldUniqueValues' | 'forgetOldConjunctions'> = {}): CaptureDeriver {
  const effects = effectsByTable([...all]);
  const forgetOld = switches.forgetOldUniqueValues === true;
  const forgetOldConjunctions = switches.forgetOldConjunctions === true;
  return (changes, schemes) => derive(changes, effects, forgetOld, schemes, forgetOldConjunctions);
}

function derive(changes: readonly CapturedChange[], effects: ReadonlyMap<string, Effect[]>, forgetOld: boolean, schemes: SchemeLookup | undefined, forgetOldConjunctions: boolean): CapturedKeys {
  const found = new Set<string>();
  const touched = new Set<string>();
  const schemeTables = new Map<string, string>();
  const conjunctions = new Map<string, Set<string>>();
  for (const change of changes) {
    const table = `${change.schema}.${change.table}`;
    touched.add(regions.query(table));
    conjunctionsOf(change, table, schemes, forgetOldConjunctions, touched, schemeTables, conjunctions);
    const list = effects.get(change.table) ?? [];
    if (list.length === 0) continue;
    const olds = change.oldRows ?? [];
    const news = change.newRows ?? [];
    // Past a few hundred rows, one region renewal is cheaper than locking and evicting each row's key.
    if (change.op === 'TRUNCATE' || change.op === 'MANY' || Math.max(olds.length, news.length) > ROW_KEYS_PER_STATEMENT) {
      touched.add(regions.rows(table));
      touched.add(regions.collections(table));
      continue;
    }
    for (const effect of list) {
      if (effect.kind === 'rows') {
        for (const row of [...olds, ...news]) {
          const pk = effect.pkColumn === NOT_EXACT ? undefined : row[effect.pkColumn];
          if (pk === undefined || pk === null) touched.add(regions.rows(table));
          else found.add(keys.row(table, pkString(pk)));
        }
        continue;
      }
      if (effect.kind === 'unique') {
        uniqueEntries(effect, change.op, olds, news, table, forgetOld).forEach((k) => found.add(k));
        continue;
      }
      const ownerTable = `${ownerSchema(effect.owner, change.schema)}.${(effect.owner.root ?? effect.owner).tableName}`;
      const add = (row: Row): void => {
        const owner = effect.exact ? row[effect.column] : undefined;
        if (owner === undefined || owner === null) touched.add(regions.collections(table));
        else found.add(keys.collection(ownerTable, effect.property, pkString(owner)));
      };
      if (change.op !== 'UPDATE') {
        olds.forEach(add);
        news.forEach(add);
        continue;
      }
      for (const [before, after] of pairs(olds, news)) {
        const relevant = [effect.column, ...effect.orderColumns];
        if (before && after && relevant.every((c) => sameValue(before[c], after[c]))) continue;
        if (before) add(before);
        if (after) add(after);
      }
    }
  }
  for (const [table, names] of conjunctions) {
    if (names.size > CONJUNCTIONS_PER_STATEMENT) touched.add(regions.tableWide(table));
    else for (const name of names) touched.add(name);
  }
  return { keys: found, regions: touched, schemeTables };
}

/**
 * The conjunction regions of one change (collected per table, so a table over {@link CONJUNCTIONS_PER_STATEMENT}
 * falls back to its table-wide generation), or the table-wide generation when the rows cannot be named.
 */
function conjunctionsOf(
  change: CapturedChange,
  table: string,
  schemes: SchemeLookup | undefined,
  forgetOld: boolean,
  touched: Set<string>,
  schemeTables: Map<string, string>,
  out: Map<string, Set<string>>,
): void {
  const olds = change.oldRows ?? [];
  const news = change.newRows ?? [];
  if (change.op === 'TRUNCATE' || change.op === 'MANY' || Math.max(olds.length, news.length) > ROW_KEYS_PER_STATEMENT) {
    touched.add(regions.tableWide(table));
    return;
  }
  if (olds.length === 0 && news.length === 0) return;
  const view = schemes?.(table);
  if (view === undefined) {
    schemeTables.set(table, regions.query(table));
    return;
  }
  if (view.state === 'unreachable') {
    touched.add(regions.tableWide(table));
    return;
  }
  if (view.state === 'absent' || view.set.schemes.length === 0) return;
  const names = out.get(table) ?? new Set<string>();
  out.set(table, names);
  // `forgetOldConjunctions` (a test switch, the bug the consistency checker must catch): an update renews only the
  // conjunctions of its new values, so a row moved out of a predicate leaves the old result in place.
  const rows = forgetOld && change.op === 'UPDATE' ? news : [...olds, ...news];
  for (const scheme of view.set.schemes) {
    for (const row of rows) names.add(regions.conjunction(table, view.set.version, scheme.columns, scheme.columns.map((c) => imageValue(row[c]))));
  }
}

function uniqueEntries(effect: UniqueOf, op: CapturedChange['op'], olds: readonly Row[], news: readonly Row[], table: string, forgetOld: boolean): string[] {
  const entry = (row: Row | undefined): string | undefined => {
    if (!row) return undefined;
    const values = effect.columns.map((c) => row[c]);
    return values.some((v) => v === undefined || v === null) ? undefined : keys.unique(table, effect.columns, values.map(pkString));
  };
  const changed = op === 'UPDATE' ? pairs(olds, news).filter(([before, after]) => !before || !after || [effect.pkColumn, ...effect.columns].some((c) => !sameValue(before[c], after[c]))) : [];
  // `forgetOldUniqueValues` (a test switch, the bug the consistency checker must catch): new values' entries only.
  const rows = forgetOld ? (op === 'UPDATE' ? changed.map(([, after]) => after) : [...news]) : op === 'UPDATE' ? changed.flat() : [...olds, ...news];
  return rows.map(entry).filter((k): k is string => k !== undefined);
}

/** Old and new images of an UPDATE paired row by row (transition tables keep one order for both). */
function pairs(olds: readonly Row[], news: readonly Row[]): Array<[Row | undefined, Row | undefined]> {
  const out: Array<[Row | undefined, Row | undefined]> = [];
  for (let i = 0; i < Math.max(olds.length, news.length); i++) out.push([olds[i], news[i]]);
  return out;
}

function sameValue(a: unknown, b: unknown): boolean {
  return a === b || JSON.stringify(a) === JSON.stringify(b);
}

function ownerSchema(owner: EntityMetadata, changeSchema: string): string {
  const schema = (owner.root ?? owner).schema;
  return schema && schema !== '*' ? schema : changeSchema;
}

function effectsByTable(all: readonly EntityMetadata[]): Map<string, Effect[]> {
  const byTable = new Map<string, Effect[]>();
  const add = (table: string | undefined, effect: Effect): void => {
    if (!table) return;
    const list = byTable.get(table) ?? [];
    list.push(effect);
    byTable.set(table, list);
  };
  for (const meta of all) {
    if (meta.embeddable || meta.virtual) continue;
    const root = meta.root ?? meta;
    const settings = entityCacheOf(meta);
    if (settings && meta === root && meta.primaryKeys.length === 1) {
      const pk = meta.properties[meta.primaryKeys[0] as string];
      if (pk?.fieldNames?.length === 1) add(meta.tableName, keyedByText(pk) ? { kind: 'rows', pkColumn: pk.fieldNames[0] as string } : { kind: 'rows', pkColumn: NOT_EXACT });
      for (const unique of uniqueKeysOf(meta)) if (pk?.fieldNames?.length === 1) add(meta.tableName, { kind: 'unique', columns: unique.columns, pkColumn: pk.fieldNames[0] as string });
    }
    if (!settings?.collections) continue;
    for (const prop of Object.values(meta.properties) as EntityProperty[]) {
      if (prop.kind === ReferenceKind.ONE_TO_MANY && prop.mappedBy && prop.targetMeta) {
        const child = prop.targetMeta;
        const fk = child.properties[prop.mappedBy];
        if (fk?.fieldNames?.length !== 1) continue;
        add((child.root ?? child).tableName, { kind: 'members', owner: meta, property: prop.name, column: fk.fieldNames[0] as string, orderColumns: orderColumns(child, prop.orderBy), exact: ownerKeyedByText(meta) });
      } else if (prop.kind === ReferenceKind.MANY_TO_MANY && prop.pivotEntity) {
        const pivot = metaOf(all, prop.pivotEntity);
        const side = pivot?.relations[prop.owner ? 0 : 1];
        if (!pivot || side?.fieldNames?.length !== 1) continue;
        add(pivot.tableName, { kind: 'members', owner: meta, property: prop.name, column: side.fieldNames[0] as string, orderColumns: pivot.relations.flatMap((r) => r.fieldNames ?? []), exact: ownerKeyedByText(meta) });
      }
    }
  }
  return byTable;
}

const NOT_EXACT = '';
function ownerKeyedByText(owner: EntityMetadata): boolean {
  const pk = owner.properties[owner.primaryKeys[0] as string];
  return owner.primaryKeys.length === 1 && pk !== undefined && keyedByText(pk);
}

function metaOf(all: readonly EntityMetadata[], entity: unknown): EntityMetadata | undefined {
  for (const meta of all) if (meta.class === entity || meta === entity || meta.className === (entity as { name?: string })?.name) return meta;
  return undefined;
}

/** Columns of the child an `orderBy` declaration names (any nesting flattened to its first-level properties). */
function orderColumns(child: EntityMetadata, orderBy: unknown): string[] {
  const names = new Set<string>();
  for (const part of Array.isArray(orderBy) ? orderBy : orderBy ? [orderBy] : []) {
    for (const name of Object.keys(part as object)) for (const field of child.properties[name]?.fieldNames ?? []) names.add(field);
  }
  return [...names];
}
