// A waterfall of step runs drawn with divs: one row per run (every attempt, branch,
// map item and loop iteration), segments for queued -> running -> waiting, a marker
// for a failed attempt with its error. Updates are incremental: `upsert` marks a row
// dirty, `flush` (called once per animation frame by the view) redraws only the dirty
// rows, or every row when the time scale moved.

import {el, empty, shortDuration, errorText} from './inbox_common.js';

const ACTIVE = new Set(['scheduled', 'running', 'waiting', 'retrying', 'pending']);

export function createTimeline(container, {onSelect} = {}) {
  const rows = new Map(); // runId -> {run, node, bars}
  const dirty = new Set();
  let t0 = Infinity;
  let t1 = -Infinity;
  let drawnT0 = null;
  let drawnT1 = null;
  let now = Date.now();

  const axis = el('div', {class: 'tl-axis', 'aria-hidden': 'true'});
  const list = el('ol', {class: 'tl-rows', 'aria-label': 'Step runs, oldest first'});
  empty(container);
  container.classList.add('tl');
  container.append(axis, list);

  function extent(run) {
    const start = run.createdAt ?? run.startedAt ?? run.finishedAt;
    const end = run.finishedAt ?? (ACTIVE.has(run.status) ? now : (run.startedAt ?? start));
    return [start, end];
  }

  function widen(run) {
    const [start, end] = extent(run);
    if (start !== null && start !== undefined && start < t0) t0 = start;
    if (end !== null && end !== undefined && end > t1) t1 = end;
  }

  function upsert(run) {
    let row = rows.get(run.id);
    if (!row) {
      const label = el('button', {type: 'button', class: 'tl-label', dataset: {stepId: run.stepId}});
      label.addEventListener('click', () => onSelect?.(run.stepId, run.id));
      const track = el('div', {class: 'tl-track'});
      const node = el('li', {class: 'tl-row', dataset: {runId: run.id, stepId: run.stepId}}, label, track);
      row = {run, node, label, track};
      rows.set(run.id, row);
      list.appendChild(node);
    } else {
      row.run = run;
    }
    widen(run);
    dirty.add(row);
  }

  // Segments are placed with CSS custom properties in milliseconds from t0 and the
  // container's --tl-span: a new time scale is one property on the container, not a
  // redraw of every row.
  // Changing it restyles every row, so while the run grows the scale gets 25 % headroom
  // and changes only when the runs outgrow it (a few times), not on every frame.
  let span = 0;
  function setSpan() {
    const needed = Math.max(1, t1 - t0);
    span = span === 0 ? needed : Math.max(needed, needed * 1.25);
    container.style.setProperty('--tl-span', String(span));
  }

  function drawRow(row) {
    const run = row.run;
    row.node.dataset.state = run.status;
    const parts = [run.stepId];
    if (run.iteration > 1) parts.push(`#${run.iteration}`);
    if (run.itemIndex !== undefined && run.itemIndex !== null) parts.push(`[${run.itemIndex}]`);
    if (run.attempt > 1) parts.push(`attempt ${run.attempt}`);
    const total = run.finishedAt && run.createdAt ? run.finishedAt - run.createdAt : null;
    row.label.textContent = parts.join(' ');
    row.label.setAttribute('aria-label',
      `${parts.join(' ')}: ${run.status}${total !== null ? `, ${shortDuration(total)}` : ''}${run.error ? `, ${errorText(run.error)}` : ''}`);
    empty(row.track);
    const created = run.createdAt ?? run.startedAt;
    const started = run.startedAt;
    const waiting = run.waitingAt;
    const end = run.finishedAt ?? (ACTIVE.has(run.status) ? now : null);
    const segment = (kind, from, to, title) => {
      if (from === null || from === undefined) return;
      const stop = to ?? from;
      const node = el('span', {class: `tl-seg tl-${kind}`, title: `${title}: ${shortDuration(stop - from)}`});
      node.style.setProperty('--a', String(from - t0));
      node.style.setProperty('--b', String(Math.max(0, stop - from)));
      row.track.appendChild(node);
    };
    if (created !== null && created !== undefined) segment('queued', created, started ?? end ?? created, 'queued');
    if (started !== null && started !== undefined) segment('running', started, waiting ?? end ?? started, 'running');
    if (waiting !== null && waiting !== undefined) segment('waiting', waiting, end ?? waiting, 'waiting');
    if (run.status === 'failed' || run.error) {
      const at = run.finishedAt ?? end ?? created;
      if (at !== null && at !== undefined) {
        const mark = el('span', {class: 'tl-error', title: errorText(run.error) || 'failed'}, '✕');
        mark.style.setProperty('--a', String(at - t0));
        row.track.appendChild(mark);
      }
      if (run.error) row.track.appendChild(el('span', {class: 'tl-error-text'}, errorText(run.error)));
    }
  }

  function drawAxis() {
    empty(axis);
    if (!Number.isFinite(t0) || !Number.isFinite(t1)) return;
    for (let i = 0; i <= 4; i++) {
      axis.appendChild(el('span', {class: 'tl-tick', style: {left: `${i * 25}%`}}, `+${shortDuration((span * i) / 4)}`));
    }
  }

  /** Redraw what changed; returns the number of rows drawn. */
  function flush(at = Date.now()) {
    if (at > now) {
      now = at;
      for (const row of rows.values()) {
        if (ACTIVE.has(row.run.status)) {
          widen(row.run);
          dirty.add(row);
        }
      }
    }
    let drawn = 0;
    if (drawnT0 !== t0) {
      // A run older than the first one: every offset moves.
      drawnT0 = t0;
      for (const row of rows.values()) drawRow(row);
      drawn = rows.size;
    } else {
      for (const row of dirty) drawRow(row);
      drawn = dirty.size;
    }
    if (drawnT1 === null || t1 - t0 > span) {
      drawnT1 = t1;
      setSpan();
      drawAxis();
    }
    dirty.clear();
    return drawn;
  }

  function highlight(stepId) {
    for (const row of rows.values()) row.node.classList.toggle('tl-selected', row.run.stepId === stepId);
  }

  return {upsert, flush, highlight, size: () => rows.size, destroy: () => { rows.clear(); empty(container); }};
}
