// Worker side of the "main thread and a Worker at once" test: loads the addon in this Worker's own
// environment, creates a model, runs forward passes and training steps, and posts what it saw.
import { parentPort, workerData } from 'node:worker_threads';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const addon = require('node-gyp-build')(workerData.root);
const config = { vocab_size: 32, n_ctx: 8, n_layer: 1, n_head: 2, n_embd: 16 };
const model = await addon.createModel(config, 3);
const tokens = Int32Array.from([1, 2, 3, 4, 5, 6, 7, 8]);
const targets = Int32Array.from([2, 3, 4, 5, 6, 7, 8, 9]);
let last = 0;
for (let i = 0; i < workerData.steps; i++) {
  const r = await model.train([[{ tokens, targets, batch: 2, seq: 4 }]], { lr: 1e-2 });
  last = r.steps[0].loss;
}
const f = await model.forward({ tokens, targets, batch: 2, seq: 4 }, false);
parentPort.postMessage({ trainedLoss: last, loss: f.loss, params: model.numParams() });
