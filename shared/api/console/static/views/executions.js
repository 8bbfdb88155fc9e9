// #/executions: the executions list with filters bound to the hash query, cursor
// paging, multi-select and bulk cancel / redrive (per-row results).
//
// The REST listing filters by workflow, status and start time (started_from,
// started_before); the trigger is applied here to the pages the API returns (newest
// first), reading further pages until a page is full or the cursor ends.

import * as format from '../lib/format.js';
import {
  el, empty, linkRunsCss, replaceHashQuery, ms, shortDuration, errorText, badge, mapLimit,
  ACTIVE_EXECUTION, collect, queueText,
} from '../lib/inbox_common.js';

const STATUSES = ['pending', 'queued', 'running', 'waiting', 'paused', 'succeeded', 'failed', 'cancelled', 'timed_out'];
const TRIGGERS = ['manual', 'schedule', 'event', 'webhook', 'subworkflow'];
const REDRIVABLE = new Set(['failed', 'timed_out']);
const MAX_SCAN_PAGES = 10;

function filtersFrom(params) {
  return {
    workflowId: params.workflowId || '',
    status: params.status || '',
    trigger: params.trigger || '',
    since: params.since || '',
    until: params.until || '',
    limit: String(Math.max(1, Math.min(200, Number(params.limit) || 25))),
  };
}

function toLocalInput(iso) {
  const t = ms(iso);
  if (t === null) return '';
  const d = new Date(t);
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

function fromLocalInput(value) {
  if (!value) return '';
  const t = Date.parse(value);
  return Number.isNaN(t) ? '' : new Date(t).toISOString();
}

function triggerType(execution) {
  if (execution.parent) return 'subworkflow';
  return (execution.trigger && execution.trigger.type) || 'manual';
}

export async function mount(root, ctx, params = {}) {
  linkRunsCss();
  const api = ctx.api;
  const canOperate = typeof ctx.can === 'function' ? ctx.can('operate') : true;
  const filters = filtersFrom(params);
  const state = {
    cursor: params.cursor || null,
    prevCursors: [],
    nextCursor: null,
    rows: new Map(), // id -> {execution, tr, check, result}
    workflows: new Map(),
    loading: 0,
    destroyed: false,
  };

  empty(root);
  const heading = el('h2', {id: 'executions-title'}, 'Executions');
  const workflowSelect = el('select', {id: 'f-workflow', name: 'workflowId'}, el('option', {value: ''}, 'All workflows'));
  const statusSelect = el('select', {id: 'f-status', name: 'status'}, el('option', {value: ''}, 'Any status'),
    STATUSES.map((s) => el('option', {value: s}, s)));
  const triggerSelect = el('select', {id: 'f-trigger', name: 'trigger'}, el('option', {value: ''}, 'Any trigger'),
    TRIGGERS.map((s) => el('option', {value: s}, s)));
  const sinceInput = el('input', {id: 'f-since', name: 'since', type: 'datetime-local'});
  const untilInput = el('input', {id: 'f-until', name: 'until', type: 'datetime-local'});
  const limitSelect = el('select', {id: 'f-limit', name: 'limit'},
    ['2', '10', '25', '50', '100', '200'].map((n) => el('option', {value: n}, n)));
  const form = el('form', {class: 'runs-filters', role: 'search', 'aria-label': 'Filter executions'},
    field('Workflow', workflowSelect), field('Status', statusSelect), field('Trigger', triggerSelect),
    field('Started after', sinceInput), field('Started before', untilInput), field('Per page', limitSelect),
    el('button', {type: 'button', class: 'btn btn-ghost', onclick: () => resetFilters()}, 'Clear filters'));
  statusSelect.value = filters.status;
  triggerSelect.value = filters.trigger;
  sinceInput.value = toLocalInput(filters.since);
  untilInput.value = toLocalInput(filters.until);
  if (![...limitSelect.options].some((o) => o.value === filters.limit)) {
    limitSelect.appendChild(el('option', {value: filters.limit}, filters.limit));
  }
  limitSelect.value = filters.limit;
  form.addEventListener('change', () => {
    filters.workflowId = workflowSelect.value;
    filters.status = statusSelect.value;
    filters.trigger = triggerSelect.value;
    filters.since = fromLocalInput(sinceInput.value);
    filters.until = fromLocalInput(untilInput.value);
    filters.limit = limitSelect.value;
    state.cursor = null;
    state.prevCursors = [];
    load();
  });
  form.addEventListener('submit', (e) => e.preventDefault());

  const selectAll = el('input', {type: 'checkbox', id: 'select-all', 'aria-label': 'Select all executions on this page'});
  selectAll.addEventListener('change', () => {
    for (const row of state.rows.values()) row.check.checked = selectAll.checked;
    updateBulk();
  });
  const tbody = el('tbody');
  const table = el('table', {class: 'runs-table', 'aria-labelledby': 'executions-title'},
    el('thead', {}, el('tr', {},
      el('th', {scope: 'col'}, selectAll),
      el('th', {scope: 'col'}, 'Execution'),
      el('th', {scope: 'col'}, 'Workflow'),
      el('th', {scope: 'col'}, 'Status'),
      el('th', {scope: 'col'}, 'Trigger'),
      el('th', {scope: 'col'}, 'Started'),
      el('th', {scope: 'col'}, 'Duration'),
      el('th', {scope: 'col'}, 'Result'))),
    tbody);
  const selectedCount = el('span', {class: 'runs-muted', 'aria-live': 'polite'}, '');
  const cancelButton = el('button', {type: 'button', class: 'btn btn-danger', id: 'bulk-cancel', disabled: true, onclick: () => bulk('cancel')}, 'Cancel selected');
  const redriveButton = el('button', {type: 'button', class: 'btn', id: 'bulk-redrive', disabled: true, onclick: () => bulk('redrive')}, 'Redrive selected');
  const bulkBar = el('div', {class: 'runs-bulk', role: 'toolbar', 'aria-label': 'Bulk actions'},
    selectedCount, canOperate ? [cancelButton, redriveButton] : null);
  const status = el('p', {class: 'runs-status', role: 'status', 'aria-live': 'polite'});
  const prevButton = el('button', {type: 'button', class: 'btn', id: 'page-prev', disabled: true, onclick: () => prev()}, '← Newer');
  const nextButton = el('button', {type: 'button', class: 'btn', id: 'page-next', disabled: true, onclick: () => next()}, 'Older →');
  const pager = el('nav', {class: 'runs-pager', 'aria-label': 'Pages'}, prevButton, nextButton);
  root.appendChild(el('section', {class: 'runs-view'}, heading, form, bulkBar, status,
    el('div', {class: 'runs-table-wrap'}, table), pager));

  function field(label, control) {
    return el('label', {class: 'runs-field'}, el('span', {}, label), control);
  }

  function resetFilters() {
    workflowSelect.value = statusSelect.value = triggerSelect.value = '';
    sinceInput.value = untilInput.value = '';
    form.dispatchEvent(new Event('change'));
  }

  function syncHash() {
    replaceHashQuery('#/executions', {
      workflowId: filters.workflowId, status: filters.status, trigger: filters.trigger,
      since: filters.since, until: filters.until, limit: filters.limit === '25' ? '' : filters.limit,
      cursor: state.cursor || '',
    });
  }

  function matches(execution) {
    return !filters.trigger || triggerType(execution) === filters.trigger;
  }

  async function load() {
    const ticket = ++state.loading;
    syncHash();
    status.textContent = 'Loading…';
    const limit = Number(filters.limit);
    const query = {limit};
    if (filters.workflowId) query.workflow_id = filters.workflowId;
    if (filters.status) query.status = filters.status;
    if (filters.since) query.started_from = new Date(filters.since).toISOString();
    if (filters.until) query.started_before = new Date(filters.until).toISOString();
    const clientSide = Boolean(filters.trigger);
    const items = [];
    let cursor = state.cursor;
    let nextCursor = null;
    try {
      for (let pageNo = 0; pageNo < MAX_SCAN_PAGES; pageNo++) {
        const page = await api.get('/executions', {...query, ...(cursor ? {cursor} : {})});
        if (ticket !== state.loading || state.destroyed) return;
        for (const execution of page.items || []) {
          if (matches(execution)) items.push(execution);
        }
        nextCursor = page.nextCursor || null;
        if (!clientSide || items.length >= limit || !nextCursor) break;
        cursor = nextCursor;
      }
    } catch (error) {
      if (ticket !== state.loading) return;
      status.textContent = `Could not load executions: ${error.message}`;
      ctx.toast?.(`Could not load executions: ${error.message}`, 'error');
      return;
    }
    state.nextCursor = nextCursor;
    render(items);
    status.textContent = items.length
      ? `${items.length} execution${items.length === 1 ? '' : 's'}${clientSide ? ' (trigger filter applied to the pages read)' : ''}`
      : 'No executions match these filters.';
    prevButton.disabled = state.prevCursors.length === 0;
    nextButton.disabled = !state.nextCursor;
  }

  function next() {
    if (!state.nextCursor) return;
    state.prevCursors.push(state.cursor);
    state.cursor = state.nextCursor;
    load();
  }

  function prev() {
    if (!state.prevCursors.length) return;
    state.cursor = state.prevCursors.pop();
    load();
  }

  function render(items) {
    empty(tbody);
    state.rows.clear();
    selectAll.checked = false;
    for (const execution of items) {
      const check = el('input', {type: 'checkbox', class: 'row-select', 'aria-label': `Select execution ${execution.id}`});
      check.addEventListener('change', updateBulk);
      const result = el('td', {class: 'row-result', 'aria-live': 'polite'});
      const tr = el('tr', {dataset: {executionId: execution.id}});
      const row = {execution, tr, check, result};
      fillRow(row);
      state.rows.set(execution.id, row);
      tbody.appendChild(tr);
    }
    updateBulk();
  }

  function fillRow(row) {
    const {execution, tr, check, result} = row;
    empty(tr);
    empty(result);
    tr.dataset.status = execution.status;
    const name = state.workflows.get(execution.workflowId)?.name || execution.workflowId;
    const started = execution.startedAt;
    const duration = execution.duration ?? (ACTIVE_EXECUTION.has(execution.status) && ms(started) !== null
      ? Date.now() - ms(started) : null);
    const actions = [];
    if (canOperate && REDRIVABLE.has(execution.status)) {
      actions.push(el('button', {type: 'button', class: 'row-redrive btn btn-small',
        'aria-label': `Redrive execution ${execution.id}`, onclick: () => act([row], 'redrive')}, 'Redrive'));
    }
    tr.append(
      el('td', {}, check),
      el('td', {class: 'runs-mono'}, el('a', {href: `#/executions/${encodeURIComponent(execution.id)}`}, execution.id)),
      el('td', {}, el('a', {href: `#/executions?workflowId=${encodeURIComponent(execution.workflowId)}`}, name),
        execution.workflowVersion ? el('span', {class: 'runs-muted'}, ` v${execution.workflowVersion}`) : null),
      el('td', {class: 'row-status'}, badge(format, execution.status),
        queueText(execution) ? el('div', {class: 'row-queue'}, queueText(execution)) : null),
      el('td', {}, triggerType(execution)),
      el('td', {title: started || ''}, started ? relative(started) : '—'),
      el('td', {}, duration !== null ? durationText(duration) : '—'),
      result,
    );
    result.append(...actions);
  }

  function relative(iso) {
    try {
      if (typeof format.relativeTime === 'function') return format.relativeTime(iso);
    } catch { /* fall through */ }
    return new Date(iso).toLocaleString();
  }

  function durationText(value) {
    try {
      if (typeof format.duration === 'function') return format.duration(value);
    } catch { /* fall through */ }
    return shortDuration(value);
  }

  function selected() {
    return [...state.rows.values()].filter((row) => row.check.checked);
  }

  function updateBulk() {
    const rows = selected();
    selectedCount.textContent = rows.length ? `${rows.length} selected` : '';
    cancelButton.disabled = !rows.some((r) => ACTIVE_EXECUTION.has(r.execution.status));
    redriveButton.disabled = !rows.some((r) => REDRIVABLE.has(r.execution.status));
    selectAll.checked = rows.length > 0 && rows.length === state.rows.size;
    selectAll.indeterminate = rows.length > 0 && rows.length < state.rows.size;
  }

  async function bulk(action) {
    const rows = selected();
    if (!rows.length) return;
    await act(rows, action);
  }

  async function act(rows, action) {
    cancelButton.disabled = redriveButton.disabled = true;
    for (const row of rows) {
      empty(row.result);
      row.result.appendChild(el('span', {class: 'runs-muted'}, `${action}…`));
    }
    const outcomes = await mapLimit(rows, 4, (row) => action === 'cancel'
      ? api.post(`/executions/${encodeURIComponent(row.execution.id)}/cancel`, {reason: 'cancelled from the console'})
      : api.post(`/executions/${encodeURIComponent(row.execution.id)}/redrive`));
    let ok = 0;
    outcomes.forEach((outcome, i) => {
      const row = rows[i];
      if (outcome.ok) {
        ok += 1;
        if (outcome.value && outcome.value.id) row.execution = outcome.value;
        fillRow(row);
        row.check.checked = false;
        row.result.appendChild(el('span', {class: 'row-ok'}, action === 'cancel' ? 'cancelled' : 'redriven'));
      } else {
        const error = outcome.error || {};
        const message = `${action} failed: ${error.code ? `${error.code}: ` : ''}${error.message || String(error)}`;
        const show = () => {
          fillRow(row);
          row.result.appendChild(el('span', {class: 'row-error', role: 'alert'}, message));
        };
        show();
        // The row may be stale (changed behind the page): show what the execution is now.
        api.get(`/executions/${encodeURIComponent(row.execution.id)}`).then((fresh) => {
          if (state.destroyed || state.rows.get(row.execution.id) !== row) return;
          row.execution = {...fresh, steps: undefined};
          show();
          updateBulk();
        }).catch(() => {});
      }
    });
    updateBulk();
    const failed = outcomes.length - ok;
    ctx.toast?.(`${action}: ${ok} done${failed ? `, ${failed} refused` : ''}`, failed ? 'error' : 'success');
  }

  // Workflow names for the filter and the rows (one listing, at most 1,000).
  collect(api, '/workflows', {}, 1000).then((workflows) => {
    if (state.destroyed) return;
    for (const wf of workflows) state.workflows.set(wf.id, wf);
    const sorted = [...workflows].sort((a, b) => String(a.name).localeCompare(String(b.name)));
    for (const wf of sorted) workflowSelect.appendChild(el('option', {value: wf.id}, wf.name));
    if (filters.workflowId && !state.workflows.has(filters.workflowId)) {
      workflowSelect.appendChild(el('option', {value: filters.workflowId}, filters.workflowId));
    }
    workflowSelect.value = filters.workflowId;
    for (const row of state.rows.values()) fillRow(row);
  }).catch((error) => {
    workflowSelect.appendChild(el('option', {value: filters.workflowId || ''}, filters.workflowId || '(workflows unavailable)'));
    workflowSelect.value = filters.workflowId;
    console.warn('workflows', errorText(error));
  });

  await load();
  return () => { state.destroyed = true; };
}
