import { Injectable, NotFoundException } from '@nestjs/common';
// The core EntityManager: @mikro-orm/nestjs registers it (and the driver's XaEntityManager), not the one
// @mikro-orm/postgresql exports.
import { EntityManager } from '@mikro-orm/core';
import { Book } from './book.entity.js';

/** A book as the API shows it. */
export interface BookView {
  readonly id: number;
  readonly title: string;
}

/**
 * Plain MikroORM code: nothing here knows about the cache. The injected EntityManager is the request's fork
 * (@mikro-orm/nestjs's request context), so every request starts with an empty identity map and a read by id
 * goes to the second-level cache.
 */
@Injectable()
export class BooksService {
  constructor(private readonly em: EntityManager) {}

  async find(id: number): Promise<BookView> {
    const book = await this.em.findOne(Book, id);
    if (!book) throw new NotFoundException(`no book ${id}`);
    return view(book);
  }

  async create(title: string): Promise<BookView> {
    const book = this.em.create(Book, { title });
    await this.em.flush();
    return view(book);
  }

  async rename(id: number, title: string): Promise<BookView> {
    const book = await this.em.findOne(Book, id);
    if (!book) throw new NotFoundException(`no book ${id}`);
    book.title = title;
    await this.em.flush(); // prepare, COMMIT, promote: no process reads the old title after this returns
    return view(book);
  }
}

function view(book: Book): BookView {
  return { id: book.id, title: book.title };
}
