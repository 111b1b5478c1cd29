// Reads the Home Depot relevance CSV (latin-1; id, product_uid, product_title, search_term, relevance) into a
// catalog and judged queries. A small fixture reader for retrieval tests and the bench; the general
// relevance-table loader lives in lib/data.
import { readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { parse } from 'csv-parse/sync';
import iconv from 'iconv-lite';
import { MinielmError } from '../errors.ts';
import type { Product } from './types.ts';

export interface JudgedQuery {
  query: string;
  /** product id -> mean rater relevance on the 1..3 scale. */
  judgements: Map<string, number>;
}

export interface HomeDepotSet {
  products: Product[];
  queries: JudgedQuery[];
}

export const HOMEDEPOT_TRAIN_CSV = new URL('../../../shared/data/homedepot/train.csv', import.meta.url).pathname;

export function homeDepotAvailable(file = HOMEDEPOT_TRAIN_CSV): boolean {
  return existsSync(file);
}

export async function readHomeDepot(file = HOMEDEPOT_TRAIN_CSV): Promise<HomeDepotSet> {
  if (!existsSync(file)) throw new MinielmError('MINIELM_NOT_FOUND', `${file} does not exist: put the Home Depot train.csv there.`);
  const text = iconv.decode(await readFile(file), 'latin1');
  const rows = parse(text, { columns: true, skip_empty_lines: true }) as Record<string, string>[];
  const titles = new Map<string, string>();
  const byQuery = new Map<string, Map<string, number>>();
  for (const [i, row] of rows.entries()) {
    const id = row.product_uid;
    const query = row.search_term;
    const relevance = Number(row.relevance);
    if (!id || row.product_title === undefined || query === undefined || !Number.isFinite(relevance)) {
      throw new MinielmError('MINIELM_BAD_FILE', `${file} row ${i + 2}: expected columns product_uid, product_title, search_term, relevance.`);
    }
    titles.set(id, row.product_title);
    let judged = byQuery.get(query);
    if (!judged) byQuery.set(query, (judged = new Map()));
    // train.csv judges each (query, product) pair once; should a pair repeat, keep the mean.
    const previous = judged.get(id);
    judged.set(id, previous === undefined ? relevance : (previous + relevance) / 2);
  }
  const products = [...titles].map(([id, title]) => ({ id, title }));
  const queries = [...byQuery].map(([query, judgements]) => ({ query, judgements }));
  return { products, queries };
}
