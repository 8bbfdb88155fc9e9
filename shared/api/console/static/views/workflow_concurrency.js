// A workflow's concurrency usage (GET /workflows/{id}/concurrency): per key value, the
// slots held against the limit, the executions queued and how long the oldest waited.
// Re-read every 5 s while the panel is on the page.
import { h, clear } from '../lib/dom.js';
import { duration, absoluteTime } from '../lib/format.js';

const REFRESH_MS = 5000;

function limitText(spec) {
  const per = spec.key ? `per value of ${spec.key}` : 'for the workflow';
  return `at most ${spec.limit} running ${per}${spec.scope === 'tenant' ? ' (shared by the tenant)' : ''}`;
}

/** The panel (a <section>); it stops refreshing once it is off the page. */
export function concurrencyPanel(ctx, workflowId) {
  const body = h('div', {class: 'concurrency-body', 'aria-live': 'polite'}, 'Loading…');
  const panel = h('section', {class: 'card concurrency-panel', 'aria-labelledby': 'concurrency-title',
    'data-workflow-id': workflowId}, h('h3', {id: 'concurrency-title'}, 'Concurrency'), body);

  async function load() {
    try {
      render(await ctx.api.get(`/workflows/${encodeURIComponent(workflowId)}/concurrency`));
    } catch (e) {
      clear(body).append(h('p', {class: 'muted'}, `Usage unavailable: ${e.message}`));
    }
    if (panel.isConnected) setTimeout(() => { if (panel.isConnected) load(); }, REFRESH_MS);
  }

  function render(usage) {
    clear(body).append(h('p', {class: 'muted'}, (usage.limits || []).map(limitText).join('; ')));
    const keys = usage.keys || [];
    if (!keys.length) {
      body.append(h('p', {class: 'muted concurrency-idle'}, 'Nothing running or queued.'));
      return;
    }
    const rows = keys.map((k) => h('tr', {'data-key': k.key, 'data-queued': String(k.queued)},
      h('td', {}, k.key === '' ? h('span', {class: 'muted'}, '(one shared key)') : k.key),
      h('td', {class: 'num'}, `${k.running} / ${k.limit}`),
      h('td', {class: 'num'}, String(k.queued)),
      h('td', {class: 'num', title: absoluteTime(k.oldestQueuedAt)},
        k.oldestQueuedSeconds === undefined || k.oldestQueuedSeconds === null ? '—' : duration(k.oldestQueuedSeconds * 1000))));
    body.append(h('table', {class: 'data concurrency-keys', 'aria-label': 'Concurrency keys'},
      h('thead', {}, h('tr', {}, h('th', {scope: 'col'}, 'Key'), h('th', {scope: 'col', class: 'num'}, 'Running / limit'),
        h('th', {scope: 'col', class: 'num'}, 'Queued'), h('th', {scope: 'col', class: 'num'}, 'Oldest waiting'))),
      h('tbody', {}, rows)),
    ...(usage.truncated ? [h('p', {class: 'muted'}, 'The busiest keys only.')] : []));
  }

  load();
  return panel;
}
