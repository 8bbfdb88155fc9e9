// Workflows: search, tag and active filters, last run, success rate and p95 duration per
// workflow (from the listing's executionStats), and create / import / export / delete.
import { h, clear, confirmDialog, modal } from '../lib/dom.js';
import { duration, percent, relativeTime, absoluteTime, statusBadge } from '../lib/format.js';
import { importDialog, exportWorkflow } from './workflow_transfer.js';

const FINISHED = ['succeeded', 'failed', 'cancelled', 'timed_out'];

function successRate(stats) {
  const by = (stats && stats.byStatus) || {};
  const finished = FINISHED.reduce((sum, s) => sum + (by[s] || 0), 0);
  return finished ? (by.succeeded || 0) / finished : null;
}

export async function mount(root, ctx, params) {
  const state = {items: [], cursor: null, search: params.q || '', tags: new Set(params.tags ? params.tags.split(',') : []), activeOnly: params.active === '1'};
  let alive = true;
  const search = h('input', {id: 'wf-search', type: 'search', value: state.search, placeholder: 'Name or description', autocomplete: 'off'});
  const active = h('input', {id: 'wf-active', type: 'checkbox', checked: state.activeOnly});
  const tagBar = h('div', {class: 'tag-filter', role: 'group', 'aria-label': 'Filter by tag'});
  const body = h('tbody');
  const more = h('button', {type: 'button', class: 'btn', hidden: true, onClick: () => load(true)}, 'Load more');
  const summary = h('span', {class: 'muted', 'aria-live': 'polite'});

  const toolbar = h('div', {class: 'toolbar'},
    h('label', {for: 'wf-search', class: 'visually-hidden'}, 'Search workflows'), search,
    h('label', {class: 'check', for: 'wf-active'}, active, 'Active only'),
    summary, h('span', {class: 'spacer'}),
    ctx.can('write') && h('button', {type: 'button', class: 'btn', onClick: onImport}, 'Import'),
    ctx.can('write') && h('button', {type: 'button', class: 'btn btn-primary', onClick: () => ctx.navigate('#/workflows/new')}, 'New workflow'));
  const table = h('table', {class: 'data', 'aria-label': 'Workflows'},
    h('thead', {}, h('tr', {},
      h('th', {scope: 'col'}, 'Name'), h('th', {scope: 'col'}, 'Tags'), h('th', {scope: 'col'}, 'State'),
      h('th', {scope: 'col'}, 'Last run'), h('th', {scope: 'col', class: 'num'}, 'Success'),
      h('th', {scope: 'col', class: 'num'}, 'p95'), h('th', {scope: 'col', class: 'num'}, 'Version'),
      h('th', {scope: 'col'}, h('span', {class: 'visually-hidden'}, 'Actions')))), body);
  root.append(toolbar, tagBar, h('div', {class: 'card table-card'}, table), h('div', {class: 'list-foot'}, more));

  function syncHash() {
    const q = new URLSearchParams();
    if (state.search) q.set('q', state.search);
    if (state.tags.size) q.set('tags', [...state.tags].join(','));
    if (state.activeOnly) q.set('active', '1');
    const hash = `#/workflows${q.toString() ? `?${q}` : ''}`;
    if (location.hash !== hash) history.replaceState(null, '', hash);
  }

  async function load(append = false) {
    const page = await ctx.api.get('/workflows', {limit: 50, active_only: state.activeOnly || undefined,
      tags: state.tags.size ? [...state.tags] : undefined, cursor: append ? state.cursor : undefined});
    if (!alive) return;
    state.items = append ? [...state.items, ...page.items] : page.items;
    state.cursor = page.nextCursor || null;
    more.hidden = !state.cursor;
    render();
    for (const w of page.items) lastRun(w);
  }

  async function lastRun(workflow) {
    if (!workflow.lastExecuted) return;
    try {
      const page = await ctx.api.get('/executions', {workflow_id: workflow.id, limit: 1});
      const cell = body.querySelector(`tr[data-workflow-id="${CSS.escape(workflow.id)}"] .last-run`);
      const run = page.items[0];
      if (!alive || !cell || !run) return;
      clear(cell).append(h('a', {href: `#/executions/${encodeURIComponent(run.id)}`, class: 'run-link'},
        statusBadge(run.status)), ' ', h('span', {class: 'muted', title: absoluteTime(run.startedAt || workflow.lastExecuted)},
        relativeTime(run.startedAt || workflow.lastExecuted)));
    } catch { /* the row keeps the time alone */ }
  }

  function renderTags() {
    const all = new Set(state.tags);
    for (const w of state.items) for (const t of w.tags || []) all.add(t);
    clear(tagBar);
    if (!all.size) return;
    tagBar.append(h('span', {class: 'muted'}, 'Tags:'));
    for (const tag of [...all].sort()) {
      tagBar.append(h('button', {type: 'button', class: 'tag', 'aria-pressed': String(state.tags.has(tag)),
        onClick: () => { state.tags.has(tag) ? state.tags.delete(tag) : state.tags.add(tag); syncHash(); load(); }}, tag));
    }
  }

  function row(w) {
    const stats = w.executionStats || {};
    const rate = successRate(stats);
    return h('tr', {'data-workflow-id': w.id},
      h('td', {class: 'name-cell'},
        h('a', {href: `#/workflows/${encodeURIComponent(w.id)}`, class: 'wf-name'}, w.name),
        w.description ? h('div', {class: 'desc'}, w.description) : null),
      h('td', {}, (w.tags || []).map((t) => h('span', {class: 'tag'}, t))),
      h('td', {}, statusBadge(w.isActive ? 'active' : 'inactive')),
      h('td', {class: 'last-run'}, w.lastExecuted
        ? h('span', {class: 'muted', title: absoluteTime(w.lastExecuted)}, relativeTime(w.lastExecuted))
        : h('span', {class: 'muted'}, 'never')),
      h('td', {class: 'num', title: stats.total ? `${stats.total} execution(s)` : ''}, percent(rate)),
      h('td', {class: 'num'}, duration(stats.durationP95Ms)),
      h('td', {class: 'num'}, `v${w.version}`),
      h('td', {}, h('div', {class: 'row-actions'},
        h('button', {type: 'button', class: 'btn btn-small', 'aria-label': `Export ${w.name}`, onClick: () => onExport(w)}, 'Export'),
        ctx.can('delete', w.id) && h('button', {type: 'button', class: 'btn btn-small btn-danger', 'aria-label': `Delete ${w.name}`, onClick: () => onDelete(w)}, 'Delete'))));
  }

  function render() {
    const q = state.search.trim().toLowerCase();
    const shown = state.items.filter((w) => !q || w.name.toLowerCase().includes(q) || (w.description || '').toLowerCase().includes(q));
    renderTags();
    clear(body);
    if (!shown.length) {
      body.append(h('tr', {}, h('td', {colspan: 8, class: 'empty'},
        state.items.length ? 'No workflow matches the filters.' : 'No workflows yet.')));
    }
    for (const w of shown) body.append(row(w));
    summary.textContent = `${shown.length} of ${state.items.length}${state.cursor ? '+' : ''}`;
  }

  async function onImport() {
    const created = await importDialog(ctx);
    if (!created) return;
    ctx.toast(`Imported ${created.length} workflow(s)`, 'success');
    await load();
  }

  async function onExport(workflow) {
    const format = await modal(`Export ${workflow.name}`, h('p', {}, 'Download the definition without server fields.'), [
      {label: 'Cancel', result: null}, {label: 'JSON', result: 'json'}, {label: 'YAML', kind: 'primary', result: 'yaml'}]);
    if (!format) return;
    try { await exportWorkflow(ctx, workflow, format); } catch (e) { ctx.toast(e.message, 'error'); }
  }

  async function onDelete(workflow) {
    const ok = await confirmDialog(`Delete ${workflow.name}?`,
      `"${workflow.name}" will be deleted. Its versions stay readable for executions pinned to them.`, 'Delete');
    if (!ok) return;
    try {
      await ctx.api.del(`/workflows/${encodeURIComponent(workflow.id)}`);
      state.items = state.items.filter((w) => w.id !== workflow.id);
      render();
      ctx.toast(`Deleted ${workflow.name}`, 'success');
    } catch (e) { ctx.toast(e.message, 'error'); }
  }

  search.addEventListener('input', () => { state.search = search.value; syncHash(); render(); });
  active.addEventListener('change', () => { state.activeOnly = active.checked; syncHash(); load(); });
  await load();
  return () => { alive = false; };
}
