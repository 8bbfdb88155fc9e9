// Two versions of a workflow side by side, with their line differences.
import { h, clear } from '../lib/dom.js';
import { lineDiff } from '../lib/diff.js';

function pairRows(rows) {
  // Runs of deletions and additions face each other on the same lines.
  const out = [];
  for (let i = 0; i < rows.length;) {
    if (rows[i].type === 'same') { out.push(rows[i]); i += 1; continue; }
    const dels = [];
    const adds = [];
    while (i < rows.length && rows[i].type !== 'same') (rows[i].type === 'del' ? dels : adds).push(rows[i++]);
    for (let k = 0; k < Math.max(dels.length, adds.length); k += 1) {
      out.push({type: 'change', leftRow: dels[k], rightRow: adds[k]});
    }
  }
  return out;
}

function cells(row, side) {
  const r = row.type === 'same' ? row : row[`${side}Row`];
  const text = r ? r[side] : '';
  const no = r ? r[`${side}No`] : '';
  const kind = row.type === 'same' ? 'same' : (r ? (side === 'left' ? 'del' : 'add') : 'blank');
  return [h('td', {class: 'diff-no'}, String(no)), h('td', {class: ['diff-line', `diff-${kind}`]}, text)];
}

/** A panel comparing two versions (exported as YAML) of workflowId. With onOpen(n, yaml),
 * a button puts the older side's version into the editor (saving it makes a new version). */
export function comparePanel(ctx, workflowId, versions, onOpen = null) {
  const numbers = versions.map((v) => v.version).sort((a, b) => a - b);
  const pick = (id, label, value) => h('div', {class: 'field'}, h('label', {for: id}, label),
    h('select', {id}, numbers.map((n) => h('option', {value: String(n), selected: n === value}, `v${n}`))));
  const left = pick('compare-left', 'Older', numbers[Math.max(0, numbers.length - 2)]);
  const right = pick('compare-right', 'Newer', numbers[numbers.length - 1]);
  const summary = h('span', {class: 'muted', 'aria-live': 'polite'});
  const table = h('table', {class: 'diff', 'aria-label': 'Differences between the versions'});
  const text = (n) => ctx.api.raw(`/workflows/${encodeURIComponent(workflowId)}/export`, {format: 'yaml', version: n}).then((r) => r.text());
  const older = () => Number(left.querySelector('select').value);
  const open = onOpen && h('button', {type: 'button', class: 'btn btn-small', id: 'compare-open', onClick: async () => {
    const n = older();
    try { onOpen(n, await text(n)); } catch (e) { ctx.toast(e.message, 'error'); }
  }}, 'Edit the older version');
  const panel = h('section', {class: 'card compare', 'aria-label': 'Compare versions'},
    h('div', {class: 'toolbar'}, h('h2', {}, 'Compare versions'), left, right, open, summary), h('div', {class: 'diff-scroll'}, table));

  async function refresh() {
    const a = older();
    const b = Number(right.querySelector('select').value);
    const [ta, tb] = await Promise.all([text(a), text(b)]);
    const rows = pairRows(lineDiff(ta, tb));
    const changed = rows.filter((r) => r.type !== 'same').length;
    summary.textContent = changed ? `${changed} changed line(s)` : 'identical';
    const cols = h('colgroup', {}, h('col', {class: 'diff-no-col'}), h('col', {}), h('col', {class: 'diff-no-col'}), h('col', {}));
    clear(table).append(cols, h('thead', {}, h('tr', {}, h('th', {colspan: 2}, `v${a}`), h('th', {colspan: 2}, `v${b}`))),
      h('tbody', {}, rows.map((row) => h('tr', {class: `diff-row-${row.type}`}, cells(row, 'left'), cells(row, 'right')))));
  }
  panel.addEventListener('change', () => refresh().catch((e) => ctx.toast(e.message, 'error')));
  refresh().catch((e) => ctx.toast(e.message, 'error'));
  return panel;
}
