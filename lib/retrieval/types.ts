// What a retriever indexes and how it is asked. Products are lib/data's one Product type.
import type { Product } from '../data/types.ts';

export type { Product } from '../data/types.ts';

/** Fields a retriever can search besides the title. */
export type ProductField = 'title' | 'brand' | 'color' | 'bullets' | 'description';

export interface Retriever {
  /** Replaces whatever was indexed before with `products`. */
  index(products: readonly Product[]): Promise<void>;
  /** For each query, the ids of its top `k` products, best first. */
  search(queries: readonly string[], k: number): Promise<string[][]>;
  close?(): Promise<void>;
}
