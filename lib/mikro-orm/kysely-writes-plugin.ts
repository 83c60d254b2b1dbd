import type { KyselyPlugin, PluginTransformQueryArgs, PluginTransformResultArgs, QueryResult, RootOperationNode, UnknownRow } from 'kysely';

const WRITE_NODES = new Set(['InsertQueryNode', 'UpdateQueryNode', 'DeleteQueryNode', 'MergeQueryNode']);

/**
 * On the Kysely client `em.getKysely()` returns: after each insert, update, delete or merge built with Kysely's
 * query builder, and before its result reaches the caller, applies the database's captured changes that no
 * prepare took. Such a statement sent outside a transaction commits on its own, without this library's
 * two-phase protocol; applying its captured changes before the call returns keeps read-after-commit (G2) for it.
 * (Inside a transaction its changes are taken by the transaction's prepare instead; the call finds nothing.)
 * MikroORM's own statements are compiled SQL and never pass `transformQuery`.
 */
export class KyselyWritesPlugin implements KyselyPlugin {
  readonly #writes = new WeakSet<object>();

  constructor(private readonly afterWrite: () => Promise<unknown>) {}

  transformQuery(args: PluginTransformQueryArgs): RootOperationNode {
    if (WRITE_NODES.has(args.node.kind)) this.#writes.add(args.queryId);
    return args.node;
  }

  async transformResult(args: PluginTransformResultArgs): Promise<QueryResult<UnknownRow>> {
    if (this.#writes.has(args.queryId)) {
      this.#writes.delete(args.queryId);
      await this.afterWrite();
    }
    return args.result;
  }
}
