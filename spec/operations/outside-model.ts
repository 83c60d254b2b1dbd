import { MikroORM, defineEntity, p, type Options } from '@mikro-orm/postgresql';
import { withXaCache } from '../../lib/mikro-orm/with-xa-cache.js';

/**
 * The model of the outside-writers tests and benchmark: teams and their members (a cached 1:m collection), and
 * uncached notes whose trigger renames a member (a write only the database makes).
 */
export const Team = defineEntity({
  name: 'OwTeam',
  tableName: 'ow_team',
  xaCache: true,
  properties: {
    id: p.integer().primary(),
    name: p.string(),
    members: () => p.oneToMany(Member).mappedBy('team'),
  },
});

export const Member = defineEntity({
  name: 'OwMember',
  tableName: 'ow_member',
  xaCache: true,
  properties: {
    id: p.integer().primary(),
    name: p.string(),
    team: () => p.manyToOne(Team).nullable().deleteRule('set null'),
  },
});

export const Note = defineEntity({
  name: 'OwNote',
  tableName: 'ow_note',
  properties: { id: p.integer().primary(), memberId: p.integer(), name: p.string() },
});

export const entities = [Team, Member, Note];
export type MemberT = InstanceType<typeof Member.class>;
export type TeamT = InstanceType<typeof Team.class>;

/** Where the model's database and cache are. */
export interface ModelServers {
  readonly db: string;
  readonly memcached: readonly string[];
  readonly namespace: string;
}

/** The cached ORM config (what an application, and `mikro-orm-xa-cache follow`, start from). */
export function cachedConfig(s: ModelServers): Options {
  return withXaCache({ entities, clientUrl: s.db, pool: { min: 0, max: 4 } }, { servers: s.memcached, namespace: s.namespace, logTable: 'xa_cache_log' });
}

/** A cached ORM over the model. */
export function openCached(s: ModelServers): Promise<MikroORM> {
  return MikroORM.init(cachedConfig(s));
}

/** A plain MikroORM over the same tables, without the cache: another service, from the cache's point of view. */
export function openPlain(db: string): Promise<MikroORM> {
  return MikroORM.init({ entities, clientUrl: db, pool: { min: 0, max: 2 } });
}

/** DDL of the parts MikroORM does not create: the note trigger that renames a member. */
export const NOTE_TRIGGER = `
  CREATE OR REPLACE FUNCTION ow_note_renames() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN UPDATE ow_member SET name = NEW.name WHERE id = NEW.member_id; RETURN NEW; END $$;
  DROP TRIGGER IF EXISTS ow_note_renames ON ow_note;
  CREATE TRIGGER ow_note_renames AFTER INSERT ON ow_note FOR EACH ROW EXECUTE FUNCTION ow_note_renames();`;
