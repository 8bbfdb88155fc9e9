// #/executions/:id: one execution, live. Loads the execution (with its step runs) and
// the definition version it is pinned to once, then follows the execution's event
// stream over the WebSocket (ctx.live.executionEvents; no polling). Events are queued
// and applied once per animation frame: only the graph nodes, timeline rows and log
// lines that changed are touched, so a 500-step execution and 100 events/s stay fluid.

import * as format from '../lib/format.js';
import {jsonView} from '../lib/json_view.js';
import {createTimeline} from '../lib/timeline.js';
import {
  el, empty, linkRunsCss, ms, shortDuration, errorText, badge, parseJson,
  ACTIVE_EXECUTION, TERMINAL_EVENTS, queueText,
} from '../lib/inbox_common.js';

const LOG_LIMIT = 1000;
const BIG = 200;
const RUN_LIST_LIMIT = 50;
const ACTIVE_RUN = new Set(['scheduled', 'running', 'waiting', 'retrying']);
const STATE_ORDER = ['running', 'retrying', 'waiting', 'pending'];
const EVENT_STATUS = {
  'step.started': 'running',
  'step.waiting': 'waiting',
  'step.succeeded': 'succeeded',
  'step.failed': 'failed',
  'step.skipped': 'skipped',
  'step.cancelled': 'cancelled',
  'step.retrying': 'retrying',
};

function runFromRest(view) {
  const scope = view.scope || '';
  const slash = scope.lastIndexOf('/');
  return {
    id: view.id,
    stepId: view.stepId,
    stepType: view.stepType,
    scope,
    itemIndex: slash >= 0 ? Number(scope.slice(slash + 1)) : null,
    iteration: view.iteration || 1,
    attempt: view.attempt || 1,
    generation: view.generation || 0,
    status: view.status === 'scheduled' && (view.attempt || 1) > 1 ? 'retrying' : view.status,
    input: view.input,
    output: view.output,
    outputTruncated: view.outputTruncated,
    error: view.error || null,
    dueAt: view.dueAt || null,
    createdAt: ms(view.createdAt),
    startedAt: ms(view.startedAt),
    waitingAt: view.status === 'waiting' ? ms(view.startedAt) : null,
    finishedAt: ms(view.finishedAt),
    full: true,
  };
}

/** Every step of a definition, nested bodies included (parallel branches, maps). */
function stepsOf(definition) {
  const out = new Map();
  const visit = (steps) => {
    for (const step of steps || []) {
      if (!step || !step.id) continue;
      out.set(step.id, step);
      const config = step.config || {};
      if (Array.isArray(config.steps)) visit(config.steps);
      if (Array.isArray(config.branches)) {
        for (const branch of config.branches) visit(Array.isArray(branch) ? branch : branch?.steps);
      }
    }
  };
  visit(definition?.steps);
  return out;
}

export async function mount(root, ctx, params = {}) {
  linkRunsCss();
  const api = ctx.api;
  const id = params.id;
  const canOperate = typeof ctx.can === 'function' ? ctx.can('operate') : true;
  const path = `/executions/${encodeURIComponent(id)}`;

  empty(root);
  const status = el('p', {class: 'runs-status', role: 'status', 'aria-live': 'polite'}, 'Loading…');
  root.appendChild(el('section', {class: 'runs-view run-detail'}, el('h2', {}, 'Execution'), status));

  let execution;
  let definition = null;
  try {
    execution = await api.get(path);
  } catch (error) {
    status.textContent = error.status === 404 ? `No execution ${id}.` : `Could not load execution: ${error.message}`;
    return () => {};
  }
  try {
    definition = await api.get(`/workflows/${encodeURIComponent(execution.workflowId)}/versions/${execution.workflowVersion}`);
  } catch (error) {
    definition = null;
    ctx.toast?.(`The workflow definition is not readable: ${error.message}`, 'error');
  }

  const state = {
    destroyed: false,
    execution,
    runs: new Map(),
    stepRuns: new Map(),
    loadedSeq: execution.eventSeq || 0,
    lastSeq: 0,
    generation: Math.max(0, ...(execution.steps || []).map((s) => s.generation || 0)),
    queue: [],
    frame: 0,
    dirtySteps: new Set(),
    logQueue: [],
    selected: null,
    panelDirty: false,
    headerDirty: true,
    lastPanel: -Infinity,
    panelTimer: 0,
    refreshTimer: 0,
    stats: {frames: 0, events: 0, maxFlushMs: 0, flushMs: [], firstRenderMs: null},
    steps: stepsOf(definition),
    live: 'connecting',
  };
  const t0 = performance.now();

  // ---- layout --------------------------------------------------------------
  empty(root);
  const title = el('h2', {class: 'run-title'}, 'Execution ', el('span', {class: 'runs-mono'}, id));
  const statusBox = el('span', {class: 'run-status', 'aria-live': 'polite'});
  const liveBox = el('span', {class: 'run-live', role: 'status'});
  const facts = el('dl', {class: 'run-facts'});
  const queueBox = el('p', {class: 'run-queue', role: 'status', hidden: true});
  const buttons = el('div', {class: 'run-actions', role: 'toolbar', 'aria-label': 'Execution actions'});
  const sendBox = el('section', {class: 'run-send', 'aria-labelledby': 'send-title', hidden: true});
  const graphBox = el('div', {class: 'run-graph', 'aria-label': 'Workflow graph'});
  const panel = el('section', {class: 'run-panel', 'aria-labelledby': 'panel-title'});
  const timelineBox = el('div', {class: 'run-timeline'});
  const logList = el('ol', {class: 'run-log', 'aria-label': 'Events'});
  const resultBox = el('div', {class: 'run-result'});
  root.appendChild(el('section', {class: 'runs-view run-detail', dataset: {executionId: id}},
    el('header', {class: 'run-header'}, title, statusBox, liveBox, buttons),
    facts, queueBox, resultBox, sendBox,
    el('div', {class: 'run-main'},
      el('section', {class: 'run-graph-wrap', 'aria-labelledby': 'graph-title'}, el('h3', {id: 'graph-title'}, 'Graph'), graphBox),
      panel),
    el('section', {'aria-labelledby': 'timeline-title'}, el('h3', {id: 'timeline-title'}, 'Timeline'), timelineBox),
    el('section', {'aria-labelledby': 'log-title'}, el('h3', {id: 'log-title'}, 'Event log'), logList)));

  // ---- graph -----------------------------------------------------------------
  let graph = null;
  const fallbackNodes = new Map();
  if (definition) {
    try {
      const {renderGraph} = await import('../lib/graph.js');
      graph = renderGraph(graphBox, definition, {onSelect: (stepId) => select(stepId)});
    } catch (error) {
      console.warn('graph', error);
      graph = null;
    }
  }
  if (!graph) {
    // A plain list of steps with the same data attributes as the graph's nodes.
    const list = el('ul', {class: 'run-steplist'});
    for (const stepId of state.steps.keys()) {
      const node = el('li', {}, el('button', {type: 'button', dataset: {stepId, state: 'pending'}, onclick: () => select(stepId)}, stepId));
      fallbackNodes.set(stepId, node.firstChild);
      list.appendChild(node);
    }
    graphBox.appendChild(list);
  }

  const timeline = createTimeline(timelineBox, {onSelect: (stepId) => select(stepId)});

  // ---- model -----------------------------------------------------------------
  function addRun(run) {
    state.runs.set(run.id, run);
    let set = state.stepRuns.get(run.stepId);
    if (!set) state.stepRuns.set(run.stepId, (set = new Set()));
    set.add(run.id);
    state.dirtySteps.add(run.stepId);
    timeline.upsert(run);
  }

  for (const view of execution.steps || []) addRun(runFromRest(view));

  function stepState(stepId) {
    const ids = state.stepRuns.get(stepId);
    if (!ids || !ids.size) return {state: 'pending', visits: 0};
    const runs = [...ids].map((r) => state.runs.get(r));
    const top = Math.max(...runs.map((r) => r.generation || 0));
    const current = runs.filter((r) => (r.generation || 0) === top);
    const visits = runs.filter((r) => (r.attempt || 1) === 1).length;
    const shown = new Set(current.map((r) => (r.status === 'scheduled' ? ((r.attempt || 1) > 1 ? 'retrying' : 'pending') : r.status)));
    for (const name of STATE_ORDER) if (shown.has(name)) return {state: name, visits};
    const failed = current.filter((r) => r.status === 'failed').length;
    const retried = current.filter((r) => (r.attempt || 1) > 1).length;
    if (failed > retried) return {state: 'failed', visits};
    if (shown.has('succeeded')) return {state: 'succeeded', visits};
    if (shown.has('cancelled')) return {state: 'cancelled', visits};
    if (shown.has('skipped')) return {state: 'skipped', visits};
    if (shown.has('failed')) return {state: 'failed', visits};
    return {state: 'pending', visits};
  }

  function paintStep(stepId) {
    const {state: s, visits} = stepState(stepId);
    if (graph) {
      try {
        graph.setStepState(stepId, s, {visits});
      } catch (error) {
        console.warn('setStepState', stepId, error);
      }
    } else {
      const node = fallbackNodes.get(stepId);
      if (node) {
        node.dataset.state = s;
        node.textContent = visits > 1 ? `${stepId} ×${visits}` : stepId;
      }
    }
  }

  function apply(event) {
    if (!event || typeof event !== 'object' || event.type === 'keepalive') return;
    if (event.type === 'error') {
      state.live = `stream error: ${event.error?.code || ''}`;
      state.headerDirty = true;
      return;
    }
    state.stats.events += 1;
    if (typeof event.seq === 'number') {
      if (event.seq <= state.lastSeq) return; // a replay after a reconnect
      state.lastSeq = event.seq;
    }
    state.logQueue.push(event);
    if (typeof event.seq === 'number' && event.seq <= state.loadedSeq) return; // already in the loaded state
    const at = ms(event.at) ?? Date.now();
    const type = event.type || '';
    if (type.startsWith('execution.')) {
      if (type === 'execution.redriven') state.generation = Number(event.data?.generation ?? state.generation + 1);
      if (event.status) state.execution.status = event.status;
      if (type === 'execution.queued') {
        // The place is computed on read: the next refresh of the execution brings it.
        state.execution.queue = {...(state.execution.queue || {}), reason: event.data?.reason,
          key: event.data?.key, priority: event.data?.priority};
      }
      if (TERMINAL_EVENTS.has(type)) {
        state.execution.completedAt = event.at;
        if (event.data?.error) state.execution.errorInfo = event.data.error;
        // The engine closes the runs still open without a step event of their own.
        for (const run of state.runs.values()) {
          if (ACTIVE_RUN.has(run.status)) addRun({...run, status: 'cancelled', finishedAt: at});
        }
      }
      state.execution.updatedAt = event.at;
      state.headerDirty = true;
      return;
    }
    if (!event.runId || !event.stepId) return;
    let run = state.runs.get(event.runId);
    if (!run) {
      run = {
        id: event.runId, stepId: event.stepId, stepType: state.steps.get(event.stepId)?.type || '',
        scope: '', itemIndex: null, iteration: 1, attempt: Number(event.data?.attempt || 1),
        generation: state.generation, status: 'scheduled', input: undefined, output: undefined,
        error: null, createdAt: at, startedAt: null, waitingAt: null, finishedAt: null, full: false,
      };
    } else {
      run = {...run};
    }
    const next = EVENT_STATUS[type];
    if (type === 'step.started') {
      run.startedAt = run.startedAt ?? at;
      run.attempt = Number(event.data?.attempt || run.attempt);
    } else if (type === 'step.waiting') {
      run.waitingAt = run.waitingAt ?? at;
      if (event.data?.until) run.dueAt = event.data.until;
      if (event.data?.signal) run.signal = event.data.signal;
    } else if (type === 'step.retrying') {
      run.attempt = Number(event.data?.attempt || run.attempt);
    } else if (next && ['succeeded', 'failed', 'skipped', 'cancelled'].includes(next)) {
      run.finishedAt = at;
      run.full = false; // its output is read on demand
      if (event.data?.error) run.error = event.data.error;
    }
    if (next) run.status = next;
    else if (event.status) run.status = event.status;
    addRun(run);
    if (state.selected === run.stepId) {
      state.panelDirty = true;
      if (run.finishedAt) refreshSoon(); // its output, once the burst settles
    }
    state.headerDirty = true; // the send form follows the waiting runs
  }

  // ---- frame loop ----------------------------------------------------------------
  function schedule() {
    if (!state.frame && !state.destroyed) state.frame = requestAnimationFrame(flush);
  }

  function ingest(events) {
    for (const event of events) state.queue.push(event);
    schedule();
  }

  function flush() {
    state.frame = 0;
    if (state.destroyed) return;
    const began = performance.now();
    const batch = state.queue;
    state.queue = [];
    for (const event of batch) apply(event);
    for (const stepId of state.dirtySteps) paintStep(stepId);
    state.dirtySteps.clear();
    timeline.flush(Date.now());
    flushLog();
    if (state.headerDirty) {
      state.headerDirty = false;
      renderHeader();
    }
    if (state.panelDirty) {
      // At most four panel renders a second: a selected map step can get 100 runs/s.
      const wait = state.lastPanel + 250 - performance.now();
      if (wait <= 0) {
        state.panelDirty = false;
        state.lastPanel = performance.now();
        renderPanel();
      } else if (!state.panelTimer) {
        state.panelTimer = setTimeout(() => { state.panelTimer = 0; schedule(); }, wait);
      }
    }
    const spent = performance.now() - began;
    state.stats.frames += 1;
    state.stats.maxFlushMs = Math.max(state.stats.maxFlushMs, spent);
    state.stats.flushMs.push(spent);
    if (state.stats.flushMs.length > 5000) state.stats.flushMs.shift();
  }

  function flushLog() {
    if (!state.logQueue.length) return;
    const fragment = document.createDocumentFragment();
    for (const event of state.logQueue) fragment.appendChild(logLine(event));
    state.logQueue = [];
    logList.appendChild(fragment);
    let extra = logList.childElementCount - LOG_LIMIT;
    while (extra-- > 0) logList.removeChild(logList.firstChild);
    logList.classList.toggle('runs-big', logList.childElementCount > BIG);
    timelineBox.classList.toggle('runs-big', timeline.size() > BIG);
  }

  function logLine(event) {
    const data = event.data && Object.keys(event.data).length ? JSON.stringify(event.data) : '';
    return el('li', {class: `run-log-line run-log-${String(event.type).replace(/[^a-z]/gi, '-')}`, dataset: {seq: event.seq ?? ''}},
      el('span', {class: 'runs-mono run-log-seq'}, `#${event.seq ?? '?'}`),
      el('time', {datetime: event.at || '', class: 'runs-muted'}, event.at ? new Date(event.at).toLocaleTimeString() : ''),
      el('span', {class: 'run-log-type'}, event.type),
      event.stepId ? el('button', {type: 'button', class: 'run-log-step runs-link', onclick: () => select(event.stepId)}, event.stepId) : null,
      event.status ? el('span', {class: 'runs-muted'}, event.status) : null,
      data ? el('code', {class: 'run-log-data'}, data.length > 300 ? `${data.slice(0, 300)}…` : data) : null);
  }

  // ---- header, actions and the send-event form ----------------------------------------
  function waitingRuns() {
    return [...state.runs.values()].filter((r) => r.status === 'waiting' && (r.stepType === 'wait_for_event' || r.signal));
  }

  let shownStatus = null;
  const durationNode = el('span', {class: 'run-duration'});
  const runsNode = el('span', {});

  function renderDuration() {
    const ex = state.execution;
    const started = ms(ex.startedAt);
    const done = ms(ex.completedAt);
    durationNode.textContent = started !== null ? shortDuration((done ?? Date.now()) - started) + (done ? '' : ' so far') : '—';
  }

  function renderHeader() {
    const ex = state.execution;
    liveBox.textContent = state.live === 'open' ? '● live' : state.live;
    liveBox.dataset.live = state.live;
    runsNode.textContent = `${state.runs.size} runs`;
    renderDuration();
    renderSend();
    renderQueue();
    if (shownStatus === ex.status) return;
    shownStatus = ex.status;
    empty(statusBox).appendChild(badge(format, ex.status));
    statusBox.dataset.status = ex.status;
    empty(facts);
    const fact = (name, value) => [el('dt', {}, name), el('dd', {}, value)];
    facts.append(
      ...fact('Workflow', el('a', {href: `#/workflows/${encodeURIComponent(ex.workflowId)}`}, definition?.name || ex.workflowId)),
      ...fact('Version', String(ex.workflowVersion)),
      ...fact('Trigger', ex.trigger?.type || 'manual'),
      ...fact('Started', ex.startedAt ? new Date(ex.startedAt).toLocaleString() : '—'),
      ...fact('Duration', durationNode),
      ...fact('Steps', runsNode),
      ...(ex.redriveCount ? fact('Redrives', String(ex.redriveCount)) : []));
    empty(resultBox);
    if (ex.errorInfo || ex.error) {
      resultBox.appendChild(el('p', {class: 'row-error', role: 'alert'}, `Error: ${errorText(ex.errorInfo) || ex.error}`));
    }
    if (ex.status === 'succeeded' && ex.result !== undefined && ex.result !== null) {
      resultBox.append(el('h3', {}, 'Result'), jsonView(ex.result, {collapsedDepth: 2}));
    }
    renderButtons();
  }

  function renderQueue() {
    const text = queueText(state.execution);
    queueBox.hidden = !text;
    if (queueBox.textContent !== text) queueBox.textContent = text;
  }

  function refreshQueue() {
    // While queued, the place moves as other executions start: read it every 5 s.
    api.get(path).then((fresh) => {
      if (state.destroyed || state.execution.status !== 'queued') return;
      if (fresh.status === 'queued') state.execution.queue = fresh.queue;
      state.headerDirty = true;
      schedule();
    }).catch(() => {});
  }

  function renderButtons() {
    empty(buttons);
    if (!canOperate) return;
    const s = state.execution.status;
    const action = (name, label, body) => el('button', {
      type: 'button', class: `btn ${name === 'cancel' ? 'btn-danger' : ''} run-${name}`, 'data-action': name,
      onclick: async (e) => {
        e.currentTarget.disabled = true;
        try {
          const updated = await api.post(`${path}/${name}`, body);
          if (updated && updated.status) {
            state.execution = {...state.execution, ...updated, steps: undefined};
          }
          ctx.toast?.(`${label}: done`, 'success');
        } catch (error) {
          ctx.toast?.(`${label} refused: ${error.message}`, 'error');
        }
        state.headerDirty = true;
        schedule();
      },
    }, label);
    if (ACTIVE_EXECUTION.has(s)) buttons.appendChild(action('cancel', 'Cancel', {reason: 'cancelled from the console'}));
    if (s === 'running' || s === 'waiting' || s === 'pending') buttons.appendChild(action('pause', 'Pause'));
    if (s === 'paused') buttons.appendChild(action('resume', 'Resume'));
    if (s === 'failed' || s === 'timed_out') buttons.appendChild(action('redrive', 'Redrive'));
  }

  let sendName = null;
  let sendPayload = null;
  function renderSend() {
    const waiting = waitingRuns();
    // A queued execution's runs are parked, not waiting: nothing to answer yet.
    const status = state.execution.status;
    const show = canOperate && waiting.length > 0 && ACTIVE_EXECUTION.has(status) && status !== 'queued';
    sendBox.hidden = !show;
    if (!show) return;
    const names = [...new Set(waiting.map((r) => r.input?.event || r.signal || state.steps.get(r.stepId)?.config?.event).filter(Boolean))];
    const key = names.join('\n');
    if (sendBox.dataset.names === key && sendBox.firstChild) return; // keep what the user typed
    sendBox.dataset.names = key;
    empty(sendBox);
    sendName = el('input', {id: 'send-name', name: 'name', required: true, list: 'send-names', value: names[0] || '', autocomplete: 'off', pattern: '[A-Za-z0-9_.:\\-]+'});
    sendPayload = el('textarea', {id: 'send-payload', name: 'payload', rows: 4, spellcheck: 'false'}, '{\n  "approved": true\n}');
    const error = el('p', {class: 'row-error', role: 'alert'});
    const form = el('form', {class: 'run-send-form'},
      el('label', {for: 'send-name'}, 'Event name'), sendName,
      el('datalist', {id: 'send-names'}, names.map((n) => el('option', {value: n}))),
      el('label', {for: 'send-payload'}, 'Payload (JSON)'), sendPayload,
      error,
      el('button', {type: 'submit', class: 'btn btn-primary', id: 'send-event'}, 'Send event'));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      error.textContent = '';
      let payload;
      try {
        payload = parseJson(sendPayload.value, 'The payload');
      } catch (exc) {
        error.textContent = exc.message;
        sendPayload.focus();
        return;
      }
      try {
        const result = await api.post(`${path}/events`, {name: sendName.value.trim(), payload});
        ctx.toast?.(result?.delivered ? 'Event delivered' : 'Event kept until a step waits for it', 'success');
      } catch (exc) {
        error.textContent = `Refused: ${exc.message}`;
      }
    });
    const waits = waiting.map((r) => `${r.stepId}${r.dueAt ? ` (times out ${new Date(r.dueAt).toLocaleString()})` : ''}`).join(', ');
    sendBox.append(el('h3', {id: 'send-title'}, 'Send an event'), el('p', {class: 'runs-muted'}, `Waiting: ${waits}`), form);
  }

  // ---- the selected step's panel -------------------------------------------------------
  function select(stepId) {
    state.selected = stepId;
    state.panelDirty = true;
    try { graph?.select(stepId); } catch { /* the graph may not know nested steps */ }
    timeline.highlight(stepId);
    const runs = [...(state.stepRuns.get(stepId) || [])].map((r) => state.runs.get(r));
    if (runs.some((r) => !r.full)) refreshRuns(); // on demand, for outputs the events do not carry
    schedule();
  }

  function refreshSoon() {
    if (state.refreshTimer || state.destroyed) return;
    state.refreshTimer = setTimeout(() => { state.refreshTimer = 0; if (!state.destroyed) refreshRuns(); }, 2000);
  }

  let refreshing = null;
  function refreshRuns() {
    if (refreshing) return refreshing;
    refreshing = api.get(`${path}/steps`).then((page) => {
      for (const view of page.items || []) {
        const known = state.runs.get(view.id);
        const fresh = runFromRest(view);
        if (known && !known.full && ACTIVE_RUN.has(fresh.status) && !ACTIVE_RUN.has(known.status)) continue;
        addRun({...known, ...fresh, waitingAt: known?.waitingAt ?? fresh.waitingAt});
      }
      state.panelDirty = true;
      schedule();
    }).catch((error) => ctx.toast?.(`Could not read the step runs: ${error.message}`, 'error'))
      .finally(() => { refreshing = null; });
    return refreshing;
  }

  function renderPanel() {
    empty(panel);
    const stepId = state.selected;
    if (!stepId) {
      panel.append(el('h3', {id: 'panel-title'}, 'Step'), el('p', {class: 'runs-muted'}, 'Select a step in the graph, the timeline or the log.'));
      return;
    }
    const step = state.steps.get(stepId);
    const {state: s, visits} = stepState(stepId);
    const runs = [...(state.stepRuns.get(stepId) || [])].map((r) => state.runs.get(r));
    panel.append(
      el('h3', {id: 'panel-title'}, 'Step ', el('span', {class: 'runs-mono'}, stepId)),
      el('p', {}, badge(format, s), ` ${step?.type || runs[0]?.stepType || ''} · ${runs.length} run${runs.length === 1 ? '' : 's'}${visits > 1 ? ` · ${visits} visits` : ''}`));
    if (!runs.length) {
      panel.appendChild(el('p', {class: 'runs-muted'}, 'Not run (yet).'));
      return;
    }
    const shown = runs.slice(-RUN_LIST_LIMIT).reverse();
    if (runs.length > shown.length) panel.appendChild(el('p', {class: 'runs-muted'}, `The latest ${shown.length} runs of ${runs.length}.`));
    for (const run of shown) panel.appendChild(runCard(run));
  }

  function runCard(run) {
    const bits = [];
    if (run.itemIndex !== null && run.itemIndex !== undefined) bits.push(`item ${run.itemIndex}`);
    if (run.iteration > 1) bits.push(`iteration ${run.iteration}`);
    bits.push(`attempt ${run.attempt}`);
    if (run.generation) bits.push(`generation ${run.generation}`);
    const took = run.finishedAt && (run.startedAt ?? run.createdAt) ? shortDuration(run.finishedAt - (run.startedAt ?? run.createdAt)) : null;
    const card = el('details', {class: 'run-card', open: true, dataset: {runId: run.id, state: run.status}},
      el('summary', {}, badge(format, run.status), ` ${bits.join(' · ')}${took ? ` · ${took}` : ''}`));
    if (run.dueAt && run.status === 'waiting') card.appendChild(el('p', {class: 'runs-muted'}, `Until ${new Date(run.dueAt).toLocaleString()}`));
    if (run.error) card.append(el('h4', {}, 'Error'), el('p', {class: 'row-error'}, errorText(run.error)), jsonView(run.error, {collapsedDepth: 1}));
    if (run.stepType === 'decision' && run.output && typeof run.output === 'object') card.appendChild(decisionPath(run.output));
    if (run.input !== undefined) card.append(el('h4', {}, 'Input'), jsonView(run.input, {collapsedDepth: 1}));
    if (run.output !== undefined && run.output !== null) {
      card.append(el('h4', {}, `Output${run.outputTruncated ? ' (truncated)' : ''}`), jsonView(run.output, {collapsedDepth: 1}));
    }
    if (!run.full) card.appendChild(el('p', {class: 'runs-muted'}, 'Its input and output are read when it settles.'));
    return card;
  }

  function decisionPath(output) {
    const list = el('ol', {class: 'run-decision'});
    for (const entry of output.path || []) {
      const words = [];
      if (entry.type === 'condition') words.push(`condition → ${entry.result ? 'true' : 'false'}`);
      else if (entry.type === 'lookup') words.push(`lookup ${JSON.stringify(entry.key)} → ${entry.hit ? JSON.stringify(entry.value) : 'miss'}`);
      else if (entry.type === 'ai' || entry.type === 'history') {
        words.push(`${entry.type} route → ${entry.label ?? '?'}`);
        if (entry.decidedBy) words.push(`decided by ${entry.decidedBy}`);
        if (entry.model) words.push(`model ${entry.model}`);
      } else if (entry.type === 'leaf') words.push(`leaf → ${entry.next ?? ''}`);
      else words.push(entry.type || '');
      const item = el('li', {dataset: {node: entry.node ?? ''}}, el('strong', {}, entry.node ?? '?'), ` ${words.join(' · ')}`);
      if (entry.reason) item.appendChild(el('p', {class: 'run-reason'}, `Reason: ${entry.reason}`));
      if (entry.fallbackReason) item.appendChild(el('p', {class: 'row-error'}, `Fallback: ${errorText(entry.fallbackReason)}`));
      list.appendChild(item);
    }
    return el('div', {class: 'run-decision-box'},
      el('h4', {}, `Decision: ${output.outcome ?? '?'}`), list);
  }

  // ---- first render, then live --------------------------------------------------------
  for (const stepId of state.steps.keys()) state.dirtySteps.add(stepId);
  flush();
  renderPanel();
  state.stats.firstRenderMs = performance.now() - t0;
  root.querySelector('.run-detail')?.setAttribute('data-rendered', 'true');

  let close = () => {};
  let ticks = 0;
  const tick = setInterval(() => {
    // The clock, not the network: running bars grow and the duration counts.
    if (ACTIVE_EXECUTION.has(state.execution.status)) { renderDuration(); schedule(); }
    if (state.execution.status === 'queued' && ++ticks % 5 === 0) refreshQueue();
  }, 1000);
  try {
    close = ctx.live.executionEvents(id, (event) => ingest([event]), {
      onStatus: (value) => {
        state.live = typeof value === 'string' ? value : (value?.state || value?.status || String(value));
        state.headerDirty = true;
        schedule();
      },
      after: 0,
    }) || (() => {});
  } catch (error) {
    state.live = `not live: ${error.message}`;
    state.headerDirty = true;
    schedule();
  }

  // A hook for the browser suite's benchmark (feeds events as the socket would).
  window.__wfeExecutionView = {
    ingest,
    stats: () => {
      const sorted = [...state.stats.flushMs].sort((a, b) => a - b);
      const pick = (q) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] : 0);
      return {
        frames: state.stats.frames, events: state.stats.events, runs: state.runs.size,
        firstRenderMs: state.stats.firstRenderMs, maxFlushMs: state.stats.maxFlushMs,
        p50FlushMs: pick(0.5), p95FlushMs: pick(0.95),
      };
    },
  };

  return () => {
    state.destroyed = true;
    clearInterval(tick);
    clearTimeout(state.panelTimer);
    clearTimeout(state.refreshTimer);
    if (state.frame) cancelAnimationFrame(state.frame);
    try { close(); } catch { /* already closed */ }
    try { graph?.destroy(); } catch { /* gone */ }
    timeline.destroy();
    if (window.__wfeExecutionView?.ingest === ingest) delete window.__wfeExecutionView;
  };
}
