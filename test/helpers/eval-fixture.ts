// A small relevance table in Home Depot's CSV layout for the evaluation suites: 40 groups of two queries
// that share two products rated 3 (so the Q2Q builder pairs them, k = 2), one product rated 1 per group,
// and one query whose judged products are all below 2.33. Titles repeat the query words so BM25 finds them.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

const NOUNS = ['drill', 'hose', 'mower', 'faucet', 'ladder', 'heater', 'vanity', 'toilet', 'shovel', 'fan'];

export function writeHomeDepotFixture(dir: string): string {
  const rows: string[] = ['"id","product_uid","product_title","search_term","relevance"'];
  let id = 1;
  const row = (uid: number, title: string, query: string, rating: number): void => void rows.push(`${id++},${uid},"${title}","${query}",${rating}`);
  for (let g = 0; g < 40; g++) {
    const noun = NOUNS[g % NOUNS.length];
    const model = `m${g}`;
    const deluxe = 100000 + 3 * g, basic = deluxe + 1, other = deluxe + 2;
    const a = `${noun} model ${model}`, b = `acme ${noun} ${model}`;
    for (const q of [a, b]) {
      row(deluxe, `Acme ${noun} ${model} Deluxe`, q, 3);
      row(basic, `Acme ${noun} ${model} Basic`, q, 2.67);
      row(other, `Generic ${noun} cover ${model}`, q, 1);
    }
  }
  row(100000, 'Acme drill m0 Deluxe', 'nothing relevant here', 2);
  const file = join(dir, 'train.csv');
  writeFileSync(file, `${rows.join('\n')}\n`, 'latin1');
  return file;
}
