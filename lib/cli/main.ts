// The `minielm` command: one dispatcher, one module per subcommand family (lib/cli/<name>.ts).
// Each module exports `help` (its usage text) and `run(argv)` resolving to an exit code.

export interface Command {
  readonly help: string;
  run(argv: string[]): Promise<number>;
}

const commands: Record<string, { summary: string; load: () => Promise<Command> }> = {
  run: { summary: 'run the whole pipeline on a judged relevance table (Home Depot by default)', load: () => import('./run.ts') },
  demo: { summary: 'run the whole pipeline on the synthetic catalog (embedded defaults)', load: () => import('./demo.ts') },
  data: { summary: 'load ESCI / relevance tables, generate a synthetic catalog, build Q2Q pairs', load: () => import('./data.ts') },
  tokenizer: { summary: 'train a byte-level BPE tokenizer', load: () => import('./tokenizer.ts') },
  relevance: { summary: 'train and evaluate the learned relevance scorer (M1)', load: () => import('./relevance.ts') },
  train: { summary: 'train models: pretrain (catalog LM), sft (teacher/student on Q2Q pairs), distill (reverse KL), online (DPO)', load: () => import('./train.ts') },
  eval: { summary: 'evaluate models: offline (Table 2), online (Table 3), coverage (Table 4), judged recall, probe table', load: () => import('./eval.ts') },
  report: { summary: 're-render a run report (Markdown + SVG) from its report.json', load: () => import('./report.ts') },
  serve: { summary: 'serve a trained rewriter over HTTP: /v1/rewrite, /v1/expand, /healthz, /metrics and a playground page', load: () => import('./serve.ts') },
  info: { summary: 'show the native addon in use, the CPU level each kernel family runs at, GEMM backend and threads', load: () => import('./info.ts') },
  judge: { summary: 'score a product list for a query under a simulated-user judge', load: () => import('./judge.ts') },
  bandit: { summary: 'simulate the LTR&R bandit that picks which rewrites go to the engine: cumulative regret vs uniform and top beams', load: () => import('./bandit.ts') },
};

function usage(): string {
  const width = Math.max(...Object.keys(commands).map((k) => k.length));
  const lines = Object.entries(commands).map(([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`);
  return `Usage: minielm <command> [options]\n\nCommands:\n${lines.join('\n')}\n\nRun "minielm <command> --help" for a command's options.`;
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    console.log(usage());
    return name ? 0 : 1;
  }
  const entry = commands[name];
  if (!entry) {
    console.error(`minielm: unknown command "${name}".\n\n${usage()}`);
    return 2;
  }
  const command = await entry.load();
  if (rest.includes('--help') || rest.includes('-h')) {
    console.log(command.help);
    return 0;
  }
  return command.run(rest);
}

const code = await main(process.argv.slice(2)).catch((err: unknown) => {
  const e = err as { code?: string; message?: string };
  console.error(`minielm: ${e.code ? `[${e.code}] ` : ''}${e.message ?? String(err)}`);
  return 1;
});
process.exitCode = code;
