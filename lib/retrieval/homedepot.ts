// The Home Depot relevance CSV (latin-1; id, product_uid, product_title, search_term, relevance) as a catalog and
// judged queries, for retrieval tests and the bench. A thin wrapper: lib/data's table loader reads the file with
// its "homedepot" preset; this only insists that every row is usable and groups the judgements by query.
import { existsSync } from 'node:fs';
import { MinielmError } from '../errors.ts';
import { HOMEDEPOT_LABELS } from '../data/labels.ts';
import { TABLE_PRESETS, judgedQueries, loadRelevanceTable, type JudgedQuery } from '../data/table.ts';
import type { Product } from '../data/types.ts';

export type { JudgedQuery } from '../data/table.ts';

export interface HomeDepotSet {
  products: Product[];
  /** Judgements on the 1..3 scale (the mean of the raters), by query in file order. */
  queries: JudgedQuery[];
}

export const HOMEDEPOT_TRAIN_CSV = new URL('../../../shared/data/homedepot/train.csv', import.meta.url).pathname;

export function homeDepotAvailable(file = HOMEDEPOT_TRAIN_CSV): boolean {
  return existsSync(file);
}

/** Reads train.csv whole; a malformed row is an error here (loadRelevanceTable itself would skip and report it). */
export async function readHomeDepot(file = HOMEDEPOT_TRAIN_CSV): Promise<HomeDepotSet> {
  if (!existsSync(file)) throw new MinielmError('MINIELM_NOT_FOUND', `${file} does not exist: put the Home Depot train.csv there.`);
  const { columns, encoding } = TABLE_PRESETS.homedepot;
  const data = await loadRelevanceTable({ path: file, columns, labels: HOMEDEPOT_LABELS, encoding, maxExamples: 1 });
  const first = data.report.malformedExamples[0];
  if (first) {
    throw new MinielmError(
      'MINIELM_BAD_FILE',
      `${file} line ${first.line}: ${first.reason} (${data.report.malformed} unusable rows). readHomeDepot expects every row to have product_uid, product_title, search_term and a relevance in 1..3; load other tables with loadRelevanceTable, which skips and reports such rows.`,
    );
  }
  return { products: [...data.products.values()], queries: judgedQueries(data.judgements, HOMEDEPOT_LABELS) };
}
