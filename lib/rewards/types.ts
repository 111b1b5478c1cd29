// Shapes shared by rewards and simulated users. Products are lib/data's one Product type.
import type { Product } from '../data/types.ts';

/** The name rewards and simulated users know the product type by: lib/data's Product itself, not a copy. */
export type ProductLike = Product;

/** Interaction counts one simulated user produces on one product list (expected counts for the embedded judge). */
export interface Engagement {
  clicks: number;
  addToCart: number;
  purchases: number;
  /** |P~|: the number of products the user was shown; rates divide by it. */
  listLength: number;
}
