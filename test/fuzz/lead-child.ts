// Runs one input that takes the whole process down (lead-owned bugs in lib/model/model.ts) so that a test can
// watch it from outside with a heap and a time limit. Prints "CODE <MinielmError code>" when the input is
// refused as it should be.
//   node --import tsx --max-old-space-size=512 test/fuzz/lead-child.ts huge-n-layer | huge-array-like
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Model } from '../../lib/model/model.ts';
import { encodeSafetensors } from '../../lib/model/safetensors.ts';
import { TINY } from './fixtures.ts';

const which = process.argv[2];
try {
  if (which === 'huge-n-layer') {
    // 3e6 layers: about 200 bytes of config.json and no weights at all.
    const dir = await mkdtemp(join(tmpdir(), 'minielm-lead-'));
    try {
      await writeFile(join(dir, 'config.json'), JSON.stringify({ model_type: 'gpt2', vocab_size: 10, n_positions: 8, n_layer: 3_000_000, n_head: 1, n_embd: 4 }));
      await writeFile(join(dir, 'model.safetensors'), encodeSafetensors([]));
      await Model.load(dir);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  } else if (which === 'huge-array-like') {
    const m = await Model.create(TINY, { seed: 1 });
    await m.forward({ batch: 1, seq: 1, tokens: { length: 2 ** 31 } as unknown as number[] });
  } else throw new Error(`unknown case ${which}`);
  process.stdout.write('RESOLVED\n');
} catch (err) {
  const code = (err as { code?: unknown }).code;
  process.stdout.write(typeof code === 'string' && code.startsWith('MINIELM_') ? `CODE ${code}\n` : `THREW ${(err as Error).constructor?.name}: ${(err as Error).message}\n`);
}
