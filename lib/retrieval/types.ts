// What a retriever indexes and how it is asked.

export interface Product {
  /** Stable product id (ESCI `product_id`, Home Depot `product_uid` as a string). */
  id: string;
  title: string;
  brand?: string;
  color?: string;
  /** Bullet points / short description text. */
  bullets?: string;
  description?: string;
}

/** Fields a retriever can search besides the title. */
export type ProductField = 'title' | 'brand' | 'color' | 'bullets' | 'description';

export interface Retriever {
  /** Replaces whatever was indexed before with `products`. */
  index(products: readonly Product[]): Promise<void>;
  /** For each query, the ids of its top `k` products, best first. */
  search(queries: readonly string[], k: number): Promise<string[][]>;
  close?(): Promise<void>;
}
