// The playground page of GET /: one self-contained HTML file (inline CSS and JS, nothing fetched from
// elsewhere) that sends a query to the server it came from and shows its rewrites and, when the server has
// a retriever, the products each rewrite brings. Text from the server goes in through textContent only.

export function playgroundHtml(o: { expand: boolean; maxN: number }): string {
  const config = JSON.stringify({ expand: o.expand, maxN: o.maxN });
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>minielm rewriter playground</title>
<style>
  body { font: 15px/1.45 system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; padding: 0 1rem; color: #1d232a; }
  form { display: flex; gap: .5rem; flex-wrap: wrap; align-items: center; }
  input[type=search] { flex: 1 1 20rem; font-size: 1.1rem; padding: .4rem .6rem; }
  input[type=number] { width: 4rem; }
  button { font-size: 1rem; padding: .4rem 1rem; }
  #status { color: #666; min-height: 1.4em; }
  #status.error { color: #b00020; }
  .columns { display: grid; grid-template-columns: repeat(auto-fill, minmax(17rem, 1fr)); gap: 1rem; }
  .list { border: 1px solid #d8dde3; border-radius: 6px; padding: .5rem .8rem; }
  .list h3 { margin: .2rem 0 .4rem; font-size: 1rem; }
  .list.query { background: #f3f6f9; }
  .logprob { color: #777; font-size: .85em; margin-left: .4em; }
  li.new::after { content: " new"; color: #0a7d32; font-size: .8em; font-weight: 600; }
  ol { padding-left: 1.4rem; margin: .2rem 0; }
</style>
</head>
<body>
<h1>minielm rewriter</h1>
<form id="form">
  <input id="query" type="search" placeholder="type a search query, e.g. cordless drill" autocomplete="off" autofocus required>
  <label>rewrites <input id="n" type="number" min="1" value="5"></label>
  <select id="strategy"><option value="beam">beam</option><option value="sample">sample</option></select>
  <button type="submit">Rewrite</button>
</form>
<p id="status"></p>
<div id="results" class="columns"></div>
<script>
const CONFIG = ${config};
const form = document.getElementById('form');
const statusLine = document.getElementById('status');
const results = document.getElementById('results');
document.getElementById('n').max = String(CONFIG.maxN);

function el(tag, props, children) {
  const node = document.createElement(tag);
  Object.assign(node, props || {});
  for (const child of children || []) node.append(child);
  return node;
}

function column(title, subtitle, items, isQuery) {
  const head = el('h3', { textContent: title }, subtitle ? [el('span', { className: 'logprob', textContent: subtitle })] : []);
  return el('div', { className: 'list' + (isQuery ? ' query' : '') }, [head, el('ol', {}, items)]);
}

function render(answer) {
  results.replaceChildren();
  if (!CONFIG.expand) {
    const items = answer.rewrites.map((r) => el('li', { textContent: r.text }, [el('span', { className: 'logprob', textContent: r.logprob.toFixed(2) })]));
    results.append(column('Rewrites of "' + answer.query + '"', '', items.length ? items : [el('li', { textContent: '(none)' })], true));
    return answer.rewrites.length + ' rewrites';
  }
  // One column per text: the query's products, then each rewrite's, products the query missed marked new.
  const byText = new Map([[answer.query, []]]);
  for (const r of answer.rewrites) byText.set(r.text, []);
  for (const p of answer.products) {
    for (const s of p.from) if (byText.has(s.text)) byText.get(s.text).push({ rank: s.rank, product: p, isNew: !p.from.some((f) => f.query) });
  }
  const logprobs = new Map(answer.rewrites.map((r) => [r.text, r.logprob]));
  for (const [text, list] of byText) {
    list.sort((a, b) => a.rank - b.rank);
    const items = list.map((x) => el('li', { className: x.isNew ? 'new' : '', textContent: x.product.title || x.product.id }));
    const isQuery = text === answer.query;
    results.append(column(isQuery ? 'query: ' + text : text, isQuery ? '' : 'logprob ' + logprobs.get(text).toFixed(2), items.length ? items : [el('li', { textContent: '(no products)' })], isQuery));
  }
  const added = answer.products.filter((p) => !p.from.some((f) => f.query)).length;
  return answer.rewrites.length + ' rewrites, ' + answer.products.length + ' products, ' + added + ' of them only through a rewrite';
}

form.addEventListener('submit', async (event) => {
  event.preventDefault();
  const body = { query: document.getElementById('query').value, n: Number(document.getElementById('n').value), strategy: document.getElementById('strategy').value };
  statusLine.className = '';
  statusLine.textContent = 'rewriting...';
  try {
    const started = performance.now();
    const res = await fetch(CONFIG.expand ? 'v1/expand' : 'v1/rewrite', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const answer = await res.json();
    if (!res.ok) throw new Error(answer.error ? answer.error.message : 'HTTP ' + res.status);
    const summary = render(answer);
    statusLine.textContent = Math.round(performance.now() - started) + ' ms: ' + summary;
  } catch (err) {
    statusLine.className = 'error';
    statusLine.textContent = String(err.message || err);
  }
});
</script>
</body>
</html>
`;
}
