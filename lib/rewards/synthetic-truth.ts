// M1 with known ground truth for the synthetic catalog: the relevance of a product to an original query is
// the gain of the label the generator itself defines (labelFor on the query's intent). Lets the demo and the
// tests measure reward improvements without a learned scorer's noise. SYNTHETIC: never for real data.
import { labelFor, type SyntheticCatalog } from '../data/synthetic.ts';
import { ESCI_GAINS, type RelevancePair, type RelevanceScorer } from './relevance.ts';
import { invalidArgument } from '../errors.ts';

export class SyntheticTruthScorer implements RelevanceScorer {
  readonly name = 'synthetic-truth';
  readonly #catalog: SyntheticCatalog;
  readonly #intents = new Map<string, SyntheticCatalog['queries'][number]['intent']>();

  constructor(catalog: SyntheticCatalog) {
    this.#catalog = catalog;
    for (const q of catalog.queries) this.#intents.set(q.text, q.intent);
  }

  async scoreBatch(pairs: readonly RelevancePair[]): Promise<number[]> {
    return pairs.map(({ query, product }) => {
      const intent = this.#intents.get(query);
      if (!intent) throw invalidArgument(`synthetic-truth relevance: "${query}" is not a query of the synthetic catalog (the ground truth is only known for its own queries)`);
      const p = this.#catalog.products.get(product.id);
      if (!p) throw invalidArgument(`synthetic-truth relevance: product "${product.id}" is not in the synthetic catalog`);
      return ESCI_GAINS[labelFor(intent, p)];
    });
  }
}
