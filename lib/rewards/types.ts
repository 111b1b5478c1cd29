// Shapes shared by rewards and simulated users. Kept minimal so lib/data's richer Product fits structurally.

/** What a reward or a simulated user needs to know about one retrieved product. */
export interface ProductLike {
  id: string;
  title: string;
  brand?: string;
  color?: string;
  price?: number;
  /** Free text (bullets, description) a scorer may read after the title. */
  text?: string;
  /** Material words, when the catalog has them (the simulated user's material preference reads it). */
  material?: string;
  /** Style words, when the catalog has them. */
  style?: string;
}

/** Interaction counts one simulated user produces on one product list (expected counts for the embedded judge). */
export interface Engagement {
  clicks: number;
  addToCart: number;
  purchases: number;
  /** |P~|: the number of products the user was shown; rates divide by it. */
  listLength: number;
}
