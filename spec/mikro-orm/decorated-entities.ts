import 'reflect-metadata';
import { Entity, PrimaryKey, Property } from '@mikro-orm/decorators/legacy';
import { Cacheable } from '../../lib/mikro-orm/entity-marker.js';

/** The decorator form of the entity marker, as a user with class entities writes it. */
@Cacheable({ ttlSeconds: 120 })
@Entity()
export class Genre {
  @PrimaryKey({ type: 'integer' })
  id!: number;

  @Property({ type: 'string' })
  name!: string;
}

/** Cached read-only: reference data that never changes at run time. */
@Cacheable({ strategy: 'read-only' })
@Entity()
export class Country {
  @PrimaryKey({ type: 'string' })
  code!: string;

  @Property({ type: 'string' })
  name!: string;
}

/** A composite key the row cache cannot serve: marking it must fail at startup. */
@Cacheable()
@Entity()
export class Shelf {
  @PrimaryKey({ type: 'integer' })
  room!: number;

  @PrimaryKey({ type: 'integer' })
  position!: number;
}

/** A decorated entity with a cached unique lookup (`uniqueKeys`) backed by a unique column. */
@Cacheable({ uniqueKeys: [['handle']] })
@Entity({ tableName: 'uk_member' })
export class Member {
  @PrimaryKey({ type: 'integer' })
  id!: number;

  @Property({ type: 'string', unique: true })
  handle!: string;
}
