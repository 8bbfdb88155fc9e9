// #/inbox: every execution waiting for a person, across workflows: a wait_for_event
// step, an agent step's tool call waiting for approval (output.status
// "awaitingApproval", output.approval) and an llm or agent step's guardrail escalation
// (output.status "awaitingDecision", output.escalation, output.evaluation). Built on the public API: the waiting executions
// (GET /executions?status=waiting), their waiting runs (GET /executions/{id}/steps:
// the resolved config gives the event name and timeout, dueAt the deadline), and one
// event stream per listed execution, so a card goes away as soon as its execution
// moves on. New waiting executions are heard on the workflows' live streams (for up to
// 30 workflows; a step.waiting on an event, or a stream that opens, reloads the list), with the Refresh button
// and a reload every 60 s while the page is visible as a backstop.

import * as format from '../lib/format.js';
import {
  el, empty, linkRunsCss, ms, shortDuration, badge, parseJson, mapLimit, collect,
  TERMINAL_EVENTS, errorText, jsonText, waitingKind,
} from '../lib/inbox_common.js';

const MAX_EXECUTIONS = 200;
const MAX_LIVE = 50;
const REFRESH_MS = 60_000;
const MAX_WORKFLOW_STREAMS = 30;
const MOVED_ON = new Set(['step.woken', 'step.succeeded', 'step.failed', 'step.cancelled', 'step.skipped']);

function answerers(config, session) {
  // wait_for_event's answeredBy: the principals the API accepts the event from.
  const named = config.answeredBy;
  if (Array.isArray(named) && named.length) return named.map(String).join(', ');
  const you = session?.principal ? ` (you: ${session.principal}, ${session.role || 'unknown role'})` : '';
  return `anyone with the editor or owner role${you}`;
}

export async function mount(root, ctx) {
  linkRunsCss();
  const api = ctx.api;
  const canOperate = typeof ctx.can === 'function' ? ctx.can('operate') : true;
  const state = {
    destroyed: false,
    cards: new Map(), // runId -> {item, node, waited, left}
    streams: new Map(), // executionId -> close()
    workflowStreams: new Map(), // workflowId -> close()
    reloadTimer: 0,
    workflows: new Map(),
    loading: null,
    again: false, // a reload was asked for while one was under way
    answered: new Set(), // "<runId> <event>" answered from this page (the run may still read waiting)
  };

  empty(root);
  const status = el('p', {class: 'runs-status', role: 'status', 'aria-live': 'polite'}, 'Loading…');
  const list = el('ul', {class: 'inbox-list', 'aria-labelledby': 'inbox-title'});
  const refresh = el('button', {type: 'button', class: 'btn btn-ghost', id: 'inbox-refresh', onclick: () => load()}, 'Refresh');
  root.appendChild(el('section', {class: 'runs-view inbox-view'},
    el('header', {class: 'run-header'}, el('h2', {id: 'inbox-title'}, 'Approvals inbox'), refresh),
    el('p', {class: 'runs-muted'}, 'Executions waiting for an event, an agent\'s tool call waiting for approval, or a guardrail escalation waiting for a decision. Each answer sends the step\'s event.'),
    status, list));

  // The run does not carry its config while it waits: the event name (and any declared
  // answerers) come from the definition version the execution is pinned to.
  const definitions = new Map(); // "<workflowId>@<version>" -> Promise<Map<stepId, step>>
  function stepsOf(execution) {
    const key = `${execution.workflowId}@${execution.workflowVersion}`;
    if (!definitions.has(key)) {
      definitions.set(key, api.get(`/workflows/${encodeURIComponent(execution.workflowId)}/versions/${execution.workflowVersion}`)
        .then((definition) => {
          const steps = new Map();
          const visit = (list) => {
            for (const step of list || []) {
              if (!step?.id) continue;
              steps.set(step.id, step);
              if (Array.isArray(step.config?.steps)) visit(step.config.steps);
            }
          };
          visit(definition.steps);
          return steps;
        })
        .catch(() => new Map()));
    }
    return definitions.get(key);
  }

  async function itemsOf(execution, runs) {
    const waiting = [];
    for (const run of runs) {
      const kind = waitingKind(run);
      if (!kind) continue;
      if (kind !== 'event' && state.answered.has(`${run.id} ${eventOf(kind, run)}`)) continue;
      waiting.push({run, kind});
    }
    if (!waiting.length) return [];
    const steps = await stepsOf(execution);
    return waiting.map(({run, kind}) => ({execution, run, kind, step: steps.get(run.stepId)}));
  }

  function eventOf(kind, run) {
    if (kind === 'approval') return run.output.approval.event;
    if (kind === 'escalation') return run.output.escalation.event;
    return null;
  }

  async function load() {
    if (state.loading) return state.loading;
    state.loading = (async () => {
      try {
        if (!state.workflows.size) {
          for (const wf of await collect(api, '/workflows', {}, 1000).catch(() => [])) state.workflows.set(wf.id, wf);
          watchWorkflows();
        }
        const executions = await collect(api, '/executions', {status: 'waiting'}, MAX_EXECUTIONS);
        const details = await mapLimit(executions, 6, async (ex) => itemsOf(ex, (await api.get(`/executions/${encodeURIComponent(ex.id)}/steps`)).items || []));
        if (state.destroyed) return;
        const items = [];
        details.forEach((d) => { if (d.ok) items.push(...d.value); });
        items.sort((a, b) => (ms(a.run.startedAt) ?? 0) - (ms(b.run.startedAt) ?? 0));
        render(items, executions.length >= MAX_EXECUTIONS);
      } catch (error) {
        status.textContent = `Could not load the inbox: ${error.message}`;
      } finally {
        state.loading = null;
        if (state.again) {
          state.again = false;
          reloadSoon();
        }
      }
    })();
    return state.loading;
  }

  function render(items, truncated) {
    const keep = new Set(items.map((i) => i.run.id));
    for (const [runId, card] of state.cards) if (!keep.has(runId)) removeCard(runId, card, false);
    for (const item of items) {
      const card = state.cards.get(item.run.id);
      if (card && card.event === eventOf(item.kind, item.run)) continue;
      if (card) removeCard(item.run.id, card, false); // the same run waits on another call now
      const node = item.kind === 'approval' ? approvalCard(item)
        : item.kind === 'escalation' ? escalationCard(item) : cardFor(item);
      list.appendChild(node.node);
      state.cards.set(item.run.id, node);
    }
    const live = new Set(items.map((i) => i.execution.id));
    for (const [executionId, close] of state.streams) {
      if (!live.has(executionId)) { close(); state.streams.delete(executionId); }
    }
    for (const executionId of live) follow(executionId);
    updateStatus(truncated);
    tick();
  }

  function updateStatus(truncated = false) {
    const n = state.cards.size;
    status.textContent = n
      ? `${n} step${n === 1 ? '' : 's'} waiting for an answer${truncated ? ` (the ${MAX_EXECUTIONS} newest waiting executions)` : ''}.`
      : 'Nothing is waiting for an event.';
  }

  function follow(executionId) {
    if (state.streams.has(executionId) || state.streams.size >= MAX_LIVE || !ctx.live?.executionEvents) return;
    try {
      const close = ctx.live.executionEvents(executionId, (event) => onEvent(executionId, event)) || (() => {});
      state.streams.set(executionId, close);
    } catch (error) {
      console.warn('inbox stream', executionId, error);
    }
  }

  function watchWorkflows() {
    if (!ctx.live?.workflowEvents) return;
    for (const workflowId of state.workflows.keys()) {
      if (state.workflowStreams.size >= MAX_WORKFLOW_STREAMS) break;
      if (state.workflowStreams.has(workflowId)) continue;
      try {
        // A stream hears events from the moment it is open: a step that started waiting
        // between the list's load and then is found by loading the list again.
        const close = ctx.live.workflowEvents(workflowId, (event) => {
          if (!state.streams.has(event?.executionId)) arrival(event);
        }, {onStatus: (status) => { if (status === 'open') reloadSoon(); }}) || (() => {});
        state.workflowStreams.set(workflowId, close);
      } catch (error) {
        console.warn('inbox workflow stream', workflowId, error);
      }
    }
  }

  /** A step that starts waiting for an event and has no card yet: reload the list. */
  function arrival(event) {
    if (event?.type !== 'step.waiting' || !event.data?.signal || state.cards.has(event.runId)) return;
    reloadSoon();
  }

  /** Load the list again in 250 ms; a load under way then may have read it before the
   *  news, so another one follows it. */
  function reloadSoon() {
    if (state.destroyed) return;
    clearTimeout(state.reloadTimer);
    state.reloadTimer = setTimeout(() => {
      if (state.loading) state.again = true;
      else load();
    }, 250);
  }

  function onEvent(executionId, event) {
    if (!event || !event.type) return;
    arrival(event); // the same execution may wait again, on another step
    const gone = [];
    for (const [runId, card] of state.cards) {
      if (card.item.execution.id !== executionId) continue;
      if (TERMINAL_EVENTS.has(event.type) || (event.runId === runId && MOVED_ON.has(event.type))) gone.push([runId, card]);
    }
    for (const [runId, card] of gone) removeCard(runId, card, true);
    if (TERMINAL_EVENTS.has(event.type)) {
      state.streams.get(executionId)?.();
      state.streams.delete(executionId);
    }
  }

  function removeCard(runId, card, announce) {
    card.node.remove();
    state.cards.delete(runId);
    if (announce) updateStatus();
  }

  function cardFor(item) {
    const {execution, run} = item;
    const config = item.step?.config || run.input || {};
    const eventName = config.event || run.stepId;
    const workflow = state.workflows.get(execution.workflowId);
    const title = `${workflow?.name || execution.workflowId} · ${run.stepId}`;
    const headingId = `inbox-${run.id}`;
    const waited = el('span', {class: 'inbox-waited'});
    const left = el('span', {class: 'inbox-left'});
    const payloadId = `payload-${run.id}`;
    const payload = el('textarea', {id: payloadId, class: 'inbox-payload', rows: 3, spellcheck: 'false'},
      JSON.stringify(ctx.session?.principal ? {by: ctx.session.principal} : {}, null, 2));
    const error = el('p', {class: 'row-error', role: 'alert'});
    const sent = el('p', {class: 'row-ok', 'aria-live': 'polite'});
    const send = async (approved, button) => {
      error.textContent = '';
      let body;
      try {
        body = parseJson(payload.value, 'The payload') ?? {};
      } catch (exc) {
        error.textContent = exc.message;
        payload.focus();
        return;
      }
      if (typeof body !== 'object' || Array.isArray(body)) {
        error.textContent = 'The payload must be a JSON object (approved is added to it).';
        payload.focus();
        return;
      }
      for (const b of buttons) b.disabled = true;
      try {
        await api.post(`/executions/${encodeURIComponent(execution.id)}/events`, {name: eventName, payload: {...body, approved}});
        sent.textContent = approved ? 'Approved: waiting for the execution to move on…' : 'Rejected: waiting for the execution to move on…';
        ctx.toast?.(`${approved ? 'Approved' : 'Rejected'} ${run.stepId}`, 'success');
        if (!state.streams.has(execution.id)) setTimeout(() => load(), 500);
      } catch (exc) {
        error.textContent = `Refused: ${exc.message}`;
        for (const b of buttons) b.disabled = false;
      }
      void button;
    };
    const approve = el('button', {type: 'button', class: 'btn inbox-approve', 'aria-describedby': headingId}, 'Approve');
    const reject = el('button', {type: 'button', class: 'btn inbox-reject', 'aria-describedby': headingId}, 'Reject');
    const buttons = [approve, reject];
    approve.addEventListener('click', () => send(true, approve));
    reject.addEventListener('click', () => send(false, reject));
    const fact = (name, value) => [el('dt', {}, name), el('dd', {}, value)];
    const node = el('li', {class: 'inbox-card', dataset: {executionId: execution.id, runId: run.id, stepId: run.stepId, event: eventName}},
      el('article', {'aria-labelledby': headingId},
        el('h3', {id: headingId, class: 'inbox-title'}, title),
        el('dl', {class: 'inbox-facts'},
          ...fact('Workflow', el('a', {href: `#/executions?workflowId=${encodeURIComponent(execution.workflowId)}`}, workflow?.name || execution.workflowId)),
          ...fact('Execution', el('a', {href: `#/executions/${encodeURIComponent(execution.id)}`, class: 'runs-mono'}, execution.id)),
          ...fact('Step', el('span', {class: 'runs-mono'}, run.stepId)),
          ...fact('Event', el('code', {}, eventName)),
          ...fact('Who may answer', answerers(config, ctx.session)),
          ...fact('Waiting for', waited),
          ...fact('Times out', left),
          ...fact('Status', badge(format, execution.status))),
        canOperate ? el('div', {class: 'inbox-answer'},
          el('label', {for: payloadId}, `Payload for ${eventName} (JSON object)`), payload, error, sent,
          el('div', {class: 'run-actions'}, approve, reject)) : el('p', {class: 'runs-muted'}, 'Your role cannot answer.')));
    return {item, node, waited, left, since: ms(run.startedAt) ?? ms(run.createdAt), due: ms(run.dueAt), event: null};
  }

  /** The facts every card shows, around the kind's own. */
  function shell(item, {kind, label, event, who, facts, body, answer, due}) {
    const {execution, run} = item;
    const workflow = state.workflows.get(execution.workflowId);
    const headingId = `inbox-${run.id}`;
    const waited = el('span', {class: 'inbox-waited'});
    const left = el('span', {class: 'inbox-left'});
    const fact = (name, value) => [el('dt', {}, name), el('dd', {}, value)];
    const node = el('li', {class: `inbox-card inbox-${kind}`, dataset: {executionId: execution.id, runId: run.id, stepId: run.stepId, event, kind}},
      el('article', {'aria-labelledby': headingId},
        el('h3', {id: headingId, class: 'inbox-title'},
          el('span', {class: 'inbox-kind'}, label), ' ', `${workflow?.name || execution.workflowId} · ${run.stepId}`),
        el('dl', {class: 'inbox-facts'},
          ...fact('Workflow', el('a', {href: `#/executions?workflowId=${encodeURIComponent(execution.workflowId)}`}, workflow?.name || execution.workflowId)),
          ...fact('Execution', el('a', {href: `#/executions/${encodeURIComponent(execution.id)}`, class: 'runs-mono'}, execution.id)),
          ...fact('Step', el('span', {class: 'runs-mono'}, `${run.stepId} (${run.stepType})`)),
          ...facts.flatMap(([name, value]) => fact(name, value)),
          ...fact('Event', el('code', {}, event)),
          ...fact('Who may answer', who),
          ...fact('Waiting for', waited),
          ...fact('Times out', left),
          ...fact('Status', badge(format, execution.status))),
        ...body,
        canOperate ? answer(headingId) : el('p', {class: 'runs-muted'}, 'Your role cannot answer.')));
    return {item, node, waited, left, since: ms(run.startedAt) ?? ms(run.createdAt), due: ms(run.dueAt) ?? ms(due), event};
  }

  /** POST the event; errors (403 EVENT_SENDER_NOT_ALLOWED, 409, ...) stay on the card. */
  function sender(item, event, {buttons, error, sent}) {
    const {execution, run} = item;
    return async (payload, done) => {
      error.textContent = '';
      sent.textContent = '';
      for (const b of buttons) b.disabled = true;
      try {
        await api.post(`/executions/${encodeURIComponent(execution.id)}/events`, {name: event, payload});
        state.answered.add(`${run.id} ${event}`);
        sent.textContent = `${done}: waiting for the execution to move on…`;
        ctx.toast?.(`${done} ${run.stepId}`, 'success');
        if (!state.streams.has(execution.id)) setTimeout(() => load(), 500);
      } catch (exc) {
        error.textContent = `Refused: ${errorText(exc)}`;
        for (const b of buttons) b.disabled = false;
      }
    };
  }

  function approvalCard(item) {
    const {run} = item;
    const config = item.step?.config || {};
    const approval = run.output.approval;
    const event = String(approval.event);
    const args = approval.args ?? {};
    const argsId = `args-${run.id}`;
    const reasonId = `reason-${run.id}`;
    const error = el('p', {class: 'row-error', role: 'alert'});
    const sent = el('p', {class: 'row-ok', 'aria-live': 'polite'});
    const edited = el('textarea', {id: argsId, class: 'inbox-payload inbox-args-edit', rows: 5, spellcheck: 'false'}, jsonText(args));
    const reason = el('input', {id: reasonId, type: 'text', class: 'inbox-reason', maxlength: 1000, autocomplete: 'off'});
    const approve = el('button', {type: 'button', class: 'btn inbox-approve'}, 'Approve');
    const edit = el('button', {type: 'button', class: 'btn inbox-edit-toggle', 'aria-expanded': 'false', 'aria-controls': `edit-${run.id}`}, 'Approve with edited args…');
    const approveEdited = el('button', {type: 'button', class: 'btn inbox-approve'}, 'Approve with these args');
    const reject = el('button', {type: 'button', class: 'btn inbox-reject'}, 'Reject');
    const editor = el('div', {id: `edit-${run.id}`, class: 'inbox-edit', hidden: true},
      el('label', {for: argsId}, `Arguments for ${approval.tool} (JSON object)`), edited,
      el('div', {class: 'run-actions'}, approveEdited));
    const send = sender(item, event, {buttons: [approve, edit, approveEdited, reject], error, sent});
    edited.addEventListener('input', () => { error.textContent = ''; }); // what it said is stale
    edit.addEventListener('click', () => {
      const open = editor.hidden;
      editor.hidden = !open;
      edit.setAttribute('aria-expanded', String(open));
      if (open) edited.focus();
    });
    approve.addEventListener('click', () => send({decision: 'approve'}, 'Approved'));
    approveEdited.addEventListener('click', () => {
      error.textContent = '';
      let value;
      try {
        value = parseJson(edited.value, 'The arguments');
      } catch (exc) {
        error.textContent = exc.message;
        edited.focus();
        return;
      }
      if (value === null || typeof value !== 'object' || Array.isArray(value)) {
        error.textContent = 'The arguments must be a JSON object.';
        edited.focus();
        return;
      }
      send({decision: 'approve', args: value}, 'Approved with edited args');
    });
    reject.addEventListener('click', () => {
      const why = reason.value.trim();
      send(why ? {decision: 'reject', reason: why} : {decision: 'reject'}, 'Rejected');
    });
    const onReject = config.onReject === 'fail' ? 'the step fails (TOOL_CALL_REJECTED)' : 'the model is told and goes on';
    return shell(item, {
      kind: 'approval',
      label: 'Tool call',
      event,
      who: answerers(config, ctx.session),
      due: approval.deadline,
      facts: [['Tool', el('code', {class: 'inbox-tool'}, String(approval.tool ?? '?'))], ['On reject', onReject]],
      body: [el('p', {class: 'inbox-caption'}, 'Proposed arguments'), el('pre', {class: 'inbox-json inbox-args'}, jsonText(args))],
      answer: () => el('div', {class: 'inbox-answer'},
        el('div', {class: 'run-actions'}, approve, edit),
        editor,
        el('label', {for: reasonId}, 'Reason (sent with a rejection)'), reason,
        el('div', {class: 'run-actions'}, reject),
        error, sent),
    });
  }

  function escalationCard(item) {
    const {run} = item;
    const output = run.output;
    const config = item.step?.config?.guardrails || {};
    const event = String(output.escalation.event);
    const evaluation = output.evaluation || {};
    const verdicts = Array.isArray(evaluation.verdicts) ? evaluation.verdicts : [];
    const failed = verdicts.filter((v) => v && !v.passed);
    const noteId = `note-${run.id}`;
    const error = el('p', {class: 'row-error', role: 'alert'});
    const sent = el('p', {class: 'row-ok', 'aria-live': 'polite'});
    const note = el('input', {id: noteId, type: 'text', class: 'inbox-reason', maxlength: 1000, autocomplete: 'off'});
    const accept = el('button', {type: 'button', class: 'btn inbox-approve'}, 'Accept');
    const reject = el('button', {type: 'button', class: 'btn inbox-reject'}, 'Reject');
    const send = sender(item, event, {buttons: [accept, reject], error, sent});
    const decide = (decision, done) => {
      const text = note.value.trim();
      send(text ? {decision, note: text} : {decision}, done);
    };
    accept.addEventListener('click', () => decide('accept', 'Accepted'));
    reject.addEventListener('click', () => decide('reject', 'Rejected'));
    const answer = output.data !== undefined && output.data !== null ? output.data : output.text;
    const score = typeof evaluation.score === 'number' ? evaluation.score.toFixed(2) : '—';
    const verdictList = el('ul', {class: 'inbox-verdicts'}, failed.map((v) => el('li', {class: 'inbox-verdict'},
      el('code', {}, String(v.validator ?? v.kind ?? '?')),
      typeof v.score === 'number' ? ` score ${v.score.toFixed(2)}` : '',
      v.feedback ? [': ', el('span', {class: 'inbox-feedback'}, String(v.feedback))] : '')));
    return shell(item, {
      kind: 'escalation',
      label: 'Guardrails',
      event,
      who: answerers(config, ctx.session),
      due: output.escalation.deadline,
      facts: [
        ['Score', `${score} (${verdicts.length - failed.length} of ${verdicts.length} checks passed${evaluation.retries ? `, ${evaluation.retries} retr${evaluation.retries === 1 ? 'y' : 'ies'}` : ''})`],
      ],
      body: [
        el('p', {class: 'inbox-caption'}, 'Answer'),
        el('pre', {class: 'inbox-json inbox-answer-text'}, typeof answer === 'string' ? answer : jsonText(answer)),
        el('p', {class: 'inbox-caption'}, failed.length ? 'Failed checks' : 'No failed check recorded'),
        verdictList,
      ],
      answer: () => el('div', {class: 'inbox-answer'},
        el('label', {for: noteId}, 'Note (sent with the decision)'), note,
        el('div', {class: 'run-actions'}, accept, reject),
        error, sent),
    });
  }

  function tick() {
    const now = Date.now();
    for (const card of state.cards.values()) {
      card.waited.textContent = card.since !== null ? shortDuration(now - card.since) : '—';
      if (card.due === null) {
        card.left.textContent = 'never';
      } else {
        const rest = card.due - now;
        card.left.textContent = rest > 0 ? `in ${shortDuration(rest)}` : 'now (timing out)';
        card.node.classList.toggle('inbox-urgent', rest > 0 && rest < 5 * 60_000);
      }
    }
  }

  const clock = setInterval(tick, 1000);
  const refresher = setInterval(() => { if (document.visibilityState === 'visible') load(); }, REFRESH_MS);
  await load();
  return () => {
    state.destroyed = true;
    clearInterval(clock);
    clearInterval(refresher);
    clearTimeout(state.reloadTimer);
    for (const close of [...state.streams.values(), ...state.workflowStreams.values()]) {
      try { close(); } catch { /* closed */ }
    }
    state.streams.clear();
    state.workflowStreams.clear();
  };
}
