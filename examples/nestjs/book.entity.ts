import { Entity, PrimaryKey, Property } from '@mikro-orm/decorators/legacy';
import { Cacheable } from 'mikro-orm-xa-cache';

/** The example's one entity: cached rows (`@Cacheable`), read by id from memcached with no SQL on a hit. */
@Cacheable({ ttlSeconds: 600 })
@Entity()
export class Book {
  @PrimaryKey({ type: 'integer' })
  id!: number;

  @Property({ type: 'string' })
  title!: string;
}
