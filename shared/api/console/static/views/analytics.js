// Analytics: how the tenant's (or one workflow's) executions went over a window, from
// GET /api/v1/analytics (pre-aggregated rollups). Every chart has a caption and a data
// table under a toggle, so the figures read without the canvas.
import { Chart, registerables } from 'chart.js';
import { h, clear } from '../lib/dom.js';
import { duration, percent } from '../lib/format.js';

Chart.register(...registerables);

const WINDOWS = [
  {value: '24h', label: 'Last 24 hours', hours: 24},
  {value: '7d', label: 'Last 7 days', hours: 24 * 7},
  {value: '30d', label: 'Last 30 days', hours: 24 * 30},
  {value: 'custom', label: 'Custom…'},
];
const STATUS_COLORS = {
  succeeded: '#16794a', failed: '#b42318', cancelled: '#667085', timed_out: '#9a5b00', running: '#1d4ed8',
};
const PALETTE = ['#1d4ed8', '#16794a', '#b42318', '#9a5b00', '#7a5af8', '#0e9384', '#c11574', '#667085'];
const PERCENTILES = [['p50Ms', 'p50', '#93b4f5'], ['p95Ms', 'p95', '#1d4ed8'], ['p99Ms', 'p99', '#0b2a7a']];

function ensureStyles() {
  if (document.querySelector('link[data-view-css="analytics"]')) return;
  document.head.append(h('link', {rel: 'stylesheet', href: '/console/views/analytics.css', 'data-view-css': 'analytics'}));
}

/** A datetime-local value (local time) from a Date. */
function localInput(date) {
  const pad = (n) => String(n).padStart(2, '0');
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

function bucketLabel(iso, bucket) {
  const date = new Date(iso);
  return bucket === 'hour'
    ? date.toLocaleString([], {month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit'})
    : date.toLocaleDateString([], {month: 'short', day: 'numeric'});
}

function num(value) {
  return value === null || value === undefined ? '—' : Number(value).toLocaleString();
}

/** A data table: columns [{key, label, num?, format?}], rows of objects. */
function dataTable(name, columns, rows) {
  return h('table', {class: 'data', 'data-table': name},
    h('thead', {}, h('tr', {}, columns.map((c) => h('th', {scope: 'col', class: c.num ? 'num' : null}, c.label)))),
    h('tbody', {}, rows.length
      ? rows.map((row) => h('tr', {}, columns.map((c) => h('td', {class: c.num ? 'num' : null, 'data-col': c.key},
        c.format ? c.format(row[c.key], row) : String(row[c.key] ?? '—')))))
      : h('tr', {}, h('td', {colspan: columns.length, class: 'muted'}, 'No data in this window.'))));
}

export async function mount(root, ctx, params) {
  ensureStyles();
  const charts = [];
  let alive = true;
  let workflowNames = new Map();
  const state = {
    window: WINDOWS.some((w) => w.value === params.window) ? params.window : '7d',
    workflowId: params.workflowId || '',
    from: params.from || '',
    to: params.to || '',
  };

  const windowSelect = h('select', {id: 'an-window', name: 'window'},
    WINDOWS.map((w) => h('option', {value: w.value, selected: w.value === state.window}, w.label)));
  const workflowSelect = h('select', {id: 'an-workflow', name: 'workflow'},
    h('option', {value: ''}, 'All workflows (tenant)'));
  const fromInput = h('input', {id: 'an-from', type: 'datetime-local', name: 'from'});
  const toInput = h('input', {id: 'an-to', type: 'datetime-local', name: 'to'});
  const custom = h('div', {class: 'an-custom', hidden: state.window !== 'custom'},
    h('label', {for: 'an-from'}, 'From'), fromInput,
    h('label', {for: 'an-to'}, 'To'), toInput,
    h('button', {type: 'button', class: 'btn btn-small', onClick: () => load()}, 'Apply'));
  const status = h('p', {class: 'muted an-status', role: 'status', 'aria-live': 'polite'});
  const body = h('div', {class: 'an-body'});
  const toolbar = h('div', {class: 'toolbar an-toolbar', role: 'group', 'aria-label': 'Analytics window'},
    h('div', {class: 'field'}, h('label', {for: 'an-window'}, 'Window'), windowSelect),
    h('div', {class: 'field'}, h('label', {for: 'an-workflow'}, 'Workflow'), workflowSelect),
    custom,
    h('button', {type: 'button', class: 'btn', 'data-action': 'refresh', onClick: () => load()}, 'Refresh'));
  root.append(h('section', {class: 'analytics', 'aria-label': 'Analytics'}, toolbar, status, body));

  const now = new Date();
  fromInput.value = state.from ? localInput(new Date(state.from)) : localInput(new Date(now - 7 * 86400e3));
  toInput.value = state.to ? localInput(new Date(state.to)) : localInput(now);

  windowSelect.addEventListener('change', () => {
    state.window = windowSelect.value;
    custom.hidden = state.window !== 'custom';
    if (state.window !== 'custom') load();
  });
  workflowSelect.addEventListener('change', () => { state.workflowId = workflowSelect.value; load(); });

  try {
    const page = await ctx.api.get('/workflows', {limit: 200});
    workflowNames = new Map(page.items.map((w) => [w.id, w.name || w.id]));
    for (const w of page.items) {
      workflowSelect.append(h('option', {value: w.id, selected: w.id === state.workflowId}, w.name || w.id));
    }
    if (state.workflowId && !workflowNames.has(state.workflowId)) {
      workflowSelect.append(h('option', {value: state.workflowId, selected: true}, state.workflowId));
    }
  } catch (e) {
    ctx.toast(`Workflows: ${e.message}`, 'error');
  }

  function query() {
    const q = {};
    if (state.workflowId) q.workflowId = state.workflowId;
    if (state.window === 'custom') {
      if (fromInput.value) q.from = new Date(fromInput.value).toISOString();
      if (toInput.value) q.to = new Date(toInput.value).toISOString();
    } else {
      const hours = WINDOWS.find((w) => w.value === state.window).hours;
      const end = new Date();
      q.from = new Date(end - hours * 3600e3).toISOString();
      q.to = end.toISOString();
    }
    return q;
  }

  let loading = 0;
  async function load() {
    const mine = ++loading;
    status.textContent = 'Loading…';
    body.setAttribute('aria-busy', 'true');
    let data;
    try {
      data = await ctx.api.get('/analytics', query());
    } catch (e) {
      if (!alive || mine !== loading) return;
      status.textContent = '';
      clear(body).append(h('div', {class: 'card error-card', role: 'alert'},
        `Analytics could not be loaded: ${e.message}${e.code ? ` (${e.code})` : ''}`));
      body.removeAttribute('aria-busy');
      return;
    }
    if (!alive || mine !== loading) return;
    render(data);
    body.removeAttribute('aria-busy');
    body.dataset.loaded = 'true';
  }

  function name(workflowId) {
    return workflowNames.get(workflowId) || workflowId;
  }

  function stepLabel(step, data) {
    return data.workflowId ? step.stepId : `${name(step.workflowId)} · ${step.stepId}`;
  }

  /** A figure: caption, chart canvas, and the same data as a table under a toggle. */
  function figure(id, title, description, config, table) {
    const canvas = h('canvas', {role: 'img', 'aria-label': `${title}: ${description}`});
    const fig = h('figure', {class: 'card an-figure', id: `an-${id}`, 'data-figure': id},
      h('figcaption', {}, h('h2', {}, title), h('p', {class: 'muted'}, description)),
      config ? h('div', {class: 'an-chart'}, canvas) : null,
      h('details', {class: 'an-table', open: !config},
        h('summary', {}, 'Data table'), h('div', {class: 'an-scroll'}, table)));
    if (config) {
      charts.push(new Chart(canvas, {
        ...config,
        options: {animation: false, responsive: true, maintainAspectRatio: false, ...(config.options || {})},
      }));
    }
    return fig;
  }

  function kpis(data) {
    const t = data.totals;
    const items = [
      ['started', 'Started', num(t.started)],
      ['succeeded', 'Succeeded', num(t.succeeded)],
      ['failed', 'Failed', num(t.failed)],
      ['cancelled', 'Cancelled', num(t.cancelled)],
      ['timed_out', 'Timed out', num(t.timedOut)],
      ['running', 'Running', num(t.running)],
      ['success-rate', 'Success rate', percent(t.successRate)],
      ['p95', 'p95 duration', duration(data.duration.p95Ms)],
      ['tokens', 'LLM tokens', num(data.llm.totalTokens)],
      ['cost', 'LLM cost', `$${Number(data.llm.costUsd || 0).toFixed(4)}`],
    ];
    return h('dl', {class: 'an-kpis', 'aria-label': 'Totals'},
      items.map(([key, label, value]) => h('div', {class: 'card an-kpi', 'data-kpi': key},
        h('dt', {}, label), h('dd', {}, value))));
  }

  function render(data) {
    charts.splice(0).forEach((c) => c.destroy());
    const w = data.window;
    const scope = data.workflowId ? `workflow ${name(data.workflowId)}` : 'all workflows of the tenant';
    status.textContent = `${scope}, ${new Date(w.from).toLocaleString()} – ${new Date(w.to).toLocaleString()}, by ${w.bucket}`;
    const root = clear(body);
    root.append(kpis(data));
    const grid = h('div', {class: 'an-grid'});
    root.append(grid);

    // Executions over time, by how they ended (stacked).
    const series = data.series.map((p) => ({...p, label: bucketLabel(p.bucket, w.bucket),
      running: Math.max(0, p.started - p.succeeded - p.failed - p.cancelled - p.timedOut)}));
    const statusKeys = [['succeeded', 'succeeded'], ['failed', 'failed'], ['cancelled', 'cancelled'],
      ['timedOut', 'timed_out'], ['running', 'running']];
    grid.append(figure('executions', 'Executions over time',
      `executions started per ${w.bucket}, stacked by how they ended`, {
        type: 'bar',
        data: {labels: series.map((p) => p.label), datasets: statusKeys.map(([key, s]) => ({
          label: s.replace('_', ' '), data: series.map((p) => p[key]), backgroundColor: STATUS_COLORS[s], stack: 'runs'}))},
        options: {scales: {x: {stacked: true}, y: {stacked: true, beginAtZero: true, ticks: {precision: 0}}}},
      },
      dataTable('executions', [{key: 'label', label: w.bucket}, {key: 'started', label: 'Started', num: true},
        {key: 'succeeded', label: 'Succeeded', num: true}, {key: 'failed', label: 'Failed', num: true},
        {key: 'cancelled', label: 'Cancelled', num: true}, {key: 'timedOut', label: 'Timed out', num: true}],
      series.filter((p) => p.started > 0))));

    // Duration percentiles per workflow.
    const workflows = data.workflows.map((f) => ({...f, name: name(f.workflowId), ...f.duration}));
    grid.append(figure('workflow-durations', 'Duration per workflow',
      'p50, p95 and p99 execution duration (ms) of each workflow', workflows.length ? {
        type: 'bar',
        data: {labels: workflows.map((f) => f.name), datasets: PERCENTILES.map(([key, label, color]) => ({
          label, data: workflows.map((f) => f[key]), backgroundColor: color}))},
        options: {scales: {y: {beginAtZero: true, title: {display: true, text: 'ms'}}}},
      } : null,
      dataTable('workflows', [{key: 'name', label: 'Workflow'}, {key: 'started', label: 'Started', num: true},
        {key: 'succeeded', label: 'Succeeded', num: true}, {key: 'failed', label: 'Failed', num: true},
        {key: 'p50Ms', label: 'p50', num: true, format: duration}, {key: 'p95Ms', label: 'p95', num: true, format: duration},
        {key: 'p99Ms', label: 'p99', num: true, format: duration}], workflows)));

    // Duration percentiles per step (the 15 slowest by p95 in the chart, all in the table).
    const steps = data.steps.map((s) => ({...s, label: stepLabel(s, data), ...s.duration}));
    const charted = [...steps].sort((a, b) => (b.p95Ms || 0) - (a.p95Ms || 0)).slice(0, 15);
    grid.append(figure('step-durations', 'Duration per step',
      'p50, p95 and p99 duration (ms) of each step\'s finished attempts', charted.length ? {
        type: 'bar',
        data: {labels: charted.map((s) => s.label), datasets: PERCENTILES.map(([key, label, color]) => ({
          label, data: charted.map((s) => s[key]), backgroundColor: color}))},
        options: {indexAxis: 'y', scales: {x: {beginAtZero: true, title: {display: true, text: 'ms'}}}},
      } : null,
      dataTable('steps', [{key: 'label', label: 'Step'}, {key: 'runs', label: 'Attempts', num: true},
        {key: 'failed', label: 'Failed', num: true}, {key: 'retries', label: 'Retries', num: true},
        {key: 'p50Ms', label: 'p50', num: true, format: duration}, {key: 'p95Ms', label: 'p95', num: true, format: duration},
        {key: 'p99Ms', label: 'p99', num: true, format: duration}], steps)));

    // Failures and retries by error code.
    const errors = data.errors;
    grid.append(figure('errors', 'Failures and retries by error code',
      'failed step attempts: ended the step (failures) or retried', errors.length ? {
        type: 'bar',
        data: {labels: errors.map((e) => e.code), datasets: [
          {label: 'failures', data: errors.map((e) => e.failures), backgroundColor: STATUS_COLORS.failed, stack: 'e'},
          {label: 'retries', data: errors.map((e) => e.retries), backgroundColor: STATUS_COLORS.timed_out, stack: 'e'}]},
        options: {scales: {x: {stacked: true}, y: {stacked: true, beginAtZero: true, ticks: {precision: 0}}}},
      } : null,
      h('div', {},
        dataTable('errors', [{key: 'code', label: 'Error code'}, {key: 'failures', label: 'Failures', num: true},
          {key: 'retries', label: 'Retries', num: true}], errors),
        dataTable('execution-errors', [{key: 'code', label: 'Ended executions by code'},
          {key: 'count', label: 'Executions', num: true}], data.executionErrors))));

    // Slowest steps (a table is the chart here).
    root.append(figure('slowest', 'Slowest steps', 'the steps with the highest p95 duration', null,
      dataTable('slowest', [{key: 'label', label: 'Step'}, {key: 'p95Ms', label: 'p95', num: true, format: duration},
        {key: 'p99Ms', label: 'p99', num: true, format: duration}, {key: 'meanMs', label: 'Mean', num: true, format: duration},
        {key: 'runs', label: 'Attempts', num: true}, {key: 'retries', label: 'Retries', num: true}],
      data.slowestSteps.map((s) => ({...s, label: stepLabel(s, data), ...s.duration})))));

    const lower = h('div', {class: 'an-grid'});
    root.append(lower);
    // Trigger mix.
    const triggers = data.triggers;
    lower.append(figure('triggers', 'Trigger mix', 'how the executions were started', triggers.length ? {
      type: 'doughnut',
      data: {labels: triggers.map((t) => t.type), datasets: [{data: triggers.map((t) => t.count),
        backgroundColor: triggers.map((_, i) => PALETTE[i % PALETTE.length])}]},
    } : null, dataTable('triggers', [{key: 'type', label: 'Trigger'}, {key: 'count', label: 'Executions', num: true}], triggers)));

    // AI decision routes and their success rates (the history router's figures).
    const routes = data.routes.map((r) => ({...r, label: `${data.workflowId ? '' : `${name(r.workflowId)} · `}${r.stepId} → ${r.route}`}));
    lower.append(figure('routes', 'Decision routes', 'share of executions that succeeded after each route', routes.length ? {
      type: 'bar',
      data: {labels: routes.map((r) => r.label), datasets: [{label: 'success rate',
        data: routes.map((r) => Math.round(r.successRate * 1000) / 10), backgroundColor: STATUS_COLORS.succeeded}]},
      options: {indexAxis: 'y', scales: {x: {min: 0, max: 100, title: {display: true, text: '%'}}}},
    } : null, dataTable('routes', [{key: 'label', label: 'Route'}, {key: 'kind', label: 'Kind'},
      {key: 'count', label: 'Taken', num: true}, {key: 'succeeded', label: 'Succeeded', num: true},
      {key: 'successRate', label: 'Success rate', num: true, format: percent}], routes)));

    // LLM tokens and cost.
    const llm = data.llm.steps.map((s) => ({...s, label: stepLabel(s, data)}));
    lower.append(figure('llm', 'LLM tokens and cost',
      `${num(data.llm.calls)} model calls, ${num(data.llm.inputTokens)} input and ${num(data.llm.outputTokens)} output tokens`,
      llm.length ? {
        type: 'bar',
        data: {labels: llm.map((s) => s.label), datasets: [
          {label: 'tokens', data: llm.map((s) => s.tokens), backgroundColor: PALETTE[4], yAxisID: 'y'},
          {label: 'cost (USD)', data: llm.map((s) => s.costUsd), backgroundColor: PALETTE[3], yAxisID: 'cost'}]},
        options: {scales: {y: {beginAtZero: true}, cost: {beginAtZero: true, position: 'right', grid: {drawOnChartArea: false}}}},
      } : null,
      dataTable('llm', [{key: 'label', label: 'Step'}, {key: 'tokens', label: 'Tokens', num: true, format: num},
        {key: 'costUsd', label: 'Cost (USD)', num: true, format: (v) => Number(v).toFixed(6)}], llm)));
  }

  await load();
  return () => {
    alive = false;
    charts.splice(0).forEach((c) => c.destroy());
  };
}
