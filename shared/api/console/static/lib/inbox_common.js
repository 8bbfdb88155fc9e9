// Small helpers shared by the executions, execution and inbox views (helper 2's views).
// Everything builds DOM nodes; text goes in as text nodes, never as HTML.

/** el('div', {class: 'x', onclick: fn, dataset: {a: 1}}, 'text', child) */
export function el(tag, attrs, ...children) {
  const node = tag === 'svg' || attrs?.svg
    ? document.createElementNS('http://www.w3.org/2000/svg', tag)
    : document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false || key === 'svg') continue;
    if (key.startsWith('on') && typeof value === 'function') {
      node.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key === 'dataset') {
      for (const [name, v] of Object.entries(value)) node.dataset[name] = String(v);
    } else if (key === 'style' && typeof value === 'object') {
      Object.assign(node.style, value);
    } else if (key === 'value' && 'value' in node) {
      node.value = value;
    } else if (key === 'checked' || key === 'disabled' || key === 'selected' || key === 'hidden') {
      node[key] = Boolean(value);
    } else {
      node.setAttribute(key, value === true ? '' : String(value));
    }
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(node, child);
    else if (child instanceof Node) node.appendChild(child);
    else node.appendChild(document.createTextNode(String(child)));
  }
}

export function empty(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
  return node;
}

let cssLinked = false;
/** Link views/runs.css once (index.html belongs to the shell; CSP allows 'self' styles). */
export function linkRunsCss() {
  if (cssLinked || document.querySelector('link[data-runs-css]')) return;
  cssLinked = true;
  const href = new URL('../views/runs.css', import.meta.url).href;
  document.head.appendChild(el('link', {rel: 'stylesheet', href, 'data-runs-css': '1'}));
}

/** The query part of the current hash as an object. */
export function hashQuery() {
  const hash = location.hash || '';
  const at = hash.indexOf('?');
  const out = {};
  if (at < 0) return out;
  for (const [k, v] of new URLSearchParams(hash.slice(at + 1))) out[k] = v;
  return out;
}

/** Replace the hash query without a hashchange (no remount of the view). */
export function replaceHashQuery(route, query) {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null && v !== '') params.set(k, v);
  const text = params.toString();
  history.replaceState(history.state, '', `${route}${text ? `?${text}` : ''}`);
}

export function ms(iso) {
  if (!iso) return null;
  const t = Date.parse(iso);
  return Number.isNaN(t) ? null : t;
}

/** "3 h 4 min", "12 s", "450 ms" */
export function shortDuration(millis) {
  if (millis === null || millis === undefined || Number.isNaN(millis)) return '—';
  const neg = millis < 0;
  let v = Math.abs(millis);
  let text;
  if (v < 1000) text = `${Math.round(v)} ms`;
  else if (v < 60_000) text = `${(v / 1000).toFixed(v < 10_000 ? 1 : 0)} s`;
  else if (v < 3_600_000) text = `${Math.floor(v / 60_000)} min ${Math.floor((v % 60_000) / 1000)} s`;
  else if (v < 86_400_000) text = `${Math.floor(v / 3_600_000)} h ${Math.floor((v % 3_600_000) / 60_000)} min`;
  else text = `${Math.floor(v / 86_400_000)} d ${Math.floor((v % 86_400_000) / 3_600_000)} h`;
  return neg ? `-${text}` : text;
}

export function errorText(error) {
  if (!error) return '';
  const code = error.code ? `${error.code}: ` : '';
  return `${code}${error.message || String(error)}`;
}

/** Parse a JSON textarea; throws an Error naming the field. */
export function parseJson(text, label) {
  const trimmed = (text || '').trim();
  if (!trimmed) return null;
  try {
    return JSON.parse(trimmed);
  } catch (exc) {
    throw new Error(`${label} is not valid JSON: ${exc.message}`);
  }
}

export const ACTIVE_EXECUTION = new Set(['pending', 'queued', 'running', 'waiting', 'paused']);

/** 'waiting for concurrency slot key=acme · #2 in queue' for a queued execution, else ''. */
export function queueText(execution) {
  const queue = execution && execution.status === 'queued' ? execution.queue : null;
  if (!queue) return '';
  const place = typeof queue.position === 'number' ? ` · #${queue.position} in queue` : '';
  return `${queue.reason || 'waiting for a concurrency slot'}${place}`;
}
export const TERMINAL_EXECUTION = new Set(['succeeded', 'failed', 'cancelled', 'timed_out']);
export const TERMINAL_EVENTS = new Set([
  'execution.succeeded', 'execution.failed', 'execution.cancelled', 'execution.timed_out',
]);

/** Run map(item) over items, at most `limit` at a time. */
export async function mapLimit(items, limit, map) {
  const out = new Array(items.length);
  let next = 0;
  async function worker() {
    while (next < items.length) {
      const i = next++;
      try {
        out[i] = {ok: true, value: await map(items[i], i)};
      } catch (error) {
        out[i] = {ok: false, error};
      }
    }
  }
  await Promise.all(Array.from({length: Math.min(limit, items.length)}, worker));
  return out;
}

/** Collect list items of a paged endpoint, at most `max`. */
export async function collect(api, path, query, max) {
  const items = [];
  let cursor;
  do {
    const page = await api.get(path, {...query, limit: Math.min(200, max - items.length), ...(cursor ? {cursor} : {})});
    items.push(...(page.items || []));
    cursor = page.nextCursor;
  } while (cursor && items.length < max);
  return items;
}

/** A status badge: helper 1's format.statusBadge when present, else a span. */
export function badge(format, status) {
  if (format && typeof format.statusBadge === 'function') {
    const node = format.statusBadge(status);
    if (node instanceof Node) return node;
  }
  return el('span', {class: `runs-badge runs-badge-${status}`}, status);
}

/** Pretty JSON for a <pre> or a textarea (as text: the caller puts it in a text node). */
export function jsonText(value) {
  if (value === undefined) return '';
  try {
    return JSON.stringify(value, null, 2) ?? String(value);
  } catch {
    return String(value);
  }
}

/** What a waiting step run waits for a person to do, or null: 'event' (a wait_for_event
 *  step), 'approval' (an agent's tool call, output.status "awaitingApproval") or
 *  'escalation' (an llm or agent step's guardrails, output.status "awaitingDecision"). */
export function waitingKind(run) {
  if (!run || run.status !== 'waiting') return null;
  if (run.stepType === 'wait_for_event') return 'event';
  const output = run.output && typeof run.output === 'object' ? run.output : null;
  if (output?.status === 'awaitingApproval' && output.approval && typeof output.approval.event === 'string') return 'approval';
  if (output?.status === 'awaitingDecision' && output.escalation && typeof output.escalation.event === 'string') return 'escalation';
  return null;
}
