// A child process for the ESCI parquet property: it loads the files the parent sends and answers with the
// outcome. hyparquet 1.31 / 1.33 can loop for minutes on a corrupted data page (an RLE run longer than the
// page), synchronously, so the parent runs loadEsci here and kills the child when it does not answer in time.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadEsci, type EsciOptions } from '../../lib/data/esci.ts';
import { MinielmError } from '../../lib/errors.ts';

export interface EsciRequest {
  id: number;
  examples: Uint8Array | 'missing';
  products?: Uint8Array | 'missing';
  options: Omit<EsciOptions, 'examplesPath' | 'productsPath' | 'onProgress'> & { onProgress?: boolean };
}

export type EsciReply = { id: number; ok: true; judgements: number } | { id: number; ok: false; code?: string; name: string; message: string; stack?: string };

const dir = await mkdtemp(join(tmpdir(), 'minielm-fuzz-esci-'));
process.once('disconnect', () => void rm(dir, { recursive: true, force: true }).finally(() => process.exit(0)));

process.on('message', (raw) => {
  const req = raw as EsciRequest;
  void (async (): Promise<EsciReply> => {
    const examplesPath = join(dir, 'examples.parquet');
    const productsPath = join(dir, 'products.parquet');
    await rm(examplesPath, { force: true });
    await rm(productsPath, { force: true });
    if (req.examples !== 'missing') await writeFile(examplesPath, req.examples);
    if (req.products && req.products !== 'missing') await writeFile(productsPath, req.products);
    const { onProgress, ...rest } = req.options;
    try {
      const d = await loadEsci({ ...rest, examplesPath, ...(req.products ? { productsPath } : {}), ...(onProgress ? { onProgress: () => undefined } : {}) });
      return { id: req.id, ok: true, judgements: d.judgements.length };
    } catch (err) {
      const e = err as Error;
      return { id: req.id, ok: false, ...(err instanceof MinielmError ? { code: err.code } : {}), name: e?.constructor?.name ?? typeof err, message: String(e?.message ?? err), stack: e?.stack };
    }
  })().then((reply) => process.send?.(reply));
});
process.send?.({ id: -1, ok: true, judgements: 0 });
