// Live execution events over the streams' WebSocket (push, no polling).
// A browser cannot send headers on a WebSocket: each (re)connection first asks the REST
// API for a stream token (POST /stream-tokens) and offers it as the subprotocol
// wfe-stream-token.<token> beside wfe-events; a reconnection resumes after the last
// seq (execution streams) or cursor (workflow streams) it received.
import { api } from './api.js';

const FINAL_CODES = new Set([1000, 4400, 4401, 4403, 4404]);

function socketUrl(path) {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.host}${path}`;
}

// A workflow stream resumes from a cursor <executionId>:<seq>,...,@:<epoch ms>
// (docs/streams.md) kept for the 50 executions most recently heard from.
function workflowCursor() {
  const seqs = new Map();
  let lastAt = null;
  return {
    see(event) {
      seqs.delete(event.executionId);
      seqs.set(event.executionId, event.seq);
      while (seqs.size > 50) seqs.delete(seqs.keys().next().value);
      if (event.at) lastAt = Date.parse(event.at);
    },
    value() {
      const parts = [...seqs].map(([id, seq]) => `${encodeURIComponent(id)}:${seq}`);
      if (lastAt) parts.push(`@:${lastAt}`);
      return parts.length ? parts.join(',') : null;
    },
  };
}

function stream({target, path, resumeQuery, onEvent, onStatus}) {
  const cursor = target.workflowId ? workflowCursor() : null;
  let socket = null;
  let closed = false;
  let position = null;
  let attempt = 0;
  let timer = null;
  const status = (s, detail) => onStatus && onStatus(s, detail);

  async function connect() {
    if (closed) return;
    status(attempt ? 'reconnecting' : 'connecting');
    let token;
    try {
      token = (await api.post('/stream-tokens', target)).token;
    } catch (e) {
      if (e.status === 404 || e.status === 403) { status('error', e.message); return; }
      return retry();
    }
    if (closed) return;
    const query = position === null ? '' : `?${resumeQuery}=${encodeURIComponent(position)}`;
    socket = new WebSocket(socketUrl(path + query), ['wfe-events', `wfe-stream-token.${token}`]);
    socket.onopen = () => { attempt = 0; status('open'); };
    socket.onmessage = (message) => {
      let event;
      try { event = JSON.parse(message.data); } catch { return; }
      if (event.type === 'keepalive') return;
      if (event.type === 'error') { status('error', event.error && event.error.message); return; }
      if (event.seq !== undefined && target.executionId) position = event.seq;
      if (cursor && event.executionId && event.seq !== undefined) {
        cursor.see(event);
        position = cursor.value();
      }
      onEvent(event);
    };
    socket.onclose = (e) => {
      socket = null;
      if (closed) return;
      if (FINAL_CODES.has(e.code)) { status(e.code === 1000 ? 'ended' : 'error', e.reason); return; }
      retry();
    };
  }

  function retry() {
    if (closed) return;
    attempt += 1;
    status('reconnecting');
    timer = setTimeout(connect, Math.min(30000, 500 * 2 ** Math.min(attempt, 6)));
  }

  connect();
  return function close() {
    closed = true;
    clearTimeout(timer);
    if (socket) socket.close(1000);
    status('closed');
  };
}

/** Events of one execution: the stored ones, then live ones, each once; ends after the
 * terminal event. onStatus(status) gets connecting|open|reconnecting|ended|error|closed.
 * Returns close(). */
export function executionEvents(executionId, onEvent, {onStatus} = {}) {
  return stream({
    target: {executionId},
    path: `/ws/executions/${encodeURIComponent(executionId)}`,
    resumeQuery: 'after',
    onEvent, onStatus,
  });
}

/** Live events of every execution of one workflow (from now on); never ends. */
export function workflowEvents(workflowId, onEvent, {onStatus} = {}) {
  return stream({
    target: {workflowId},
    path: `/ws/workflows/${encodeURIComponent(workflowId)}`,
    resumeQuery: 'after',
    onEvent, onStatus,
  });
}

export const live = { executionEvents, workflowEvents };
