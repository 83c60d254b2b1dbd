import { BadRequestException, Body, Controller, Get, Param, ParseIntPipe, Patch, Post } from '@nestjs/common';
import { BooksService, type BookView } from './books.service.js';

/** `GET /books/:id`, `POST /books {title}`, `PATCH /books/:id {title}`. */
@Controller('books')
export class BooksController {
  constructor(private readonly books: BooksService) {}

  @Get(':id')
  find(@Param('id', ParseIntPipe) id: number): Promise<BookView> {
    return this.books.find(id);
  }

  @Post()
  create(@Body() body: unknown): Promise<BookView> {
    return this.books.create(titleOf(body));
  }

  @Patch(':id')
  rename(@Param('id', ParseIntPipe) id: number, @Body() body: unknown): Promise<BookView> {
    return this.books.rename(id, titleOf(body));
  }
}

function titleOf(body: unknown): string {
  const title = (body as { title?: unknown } | undefined)?.title;
  if (typeof title !== 'string' || title.trim() === '') throw new BadRequestException('body must be {"title": "a non-empty string"}');
  return title;
}
