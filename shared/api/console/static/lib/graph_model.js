// A workflow definition as a graph: nodes (steps, plus a join node per parallel/map)
// and labelled edges (nextSteps, branch cases, parallel branches, map bodies, fallbacks).

const FAN_OUT = new Set(['parallel', 'map']);

function caseLabels(step) {
  const labels = new Map();
  const add = (target, label) => {
    if (typeof target !== 'string') return;
    labels.set(target, labels.has(target) ? `${labels.get(target)}, ${label}` : label);
  };
  const config = step.config || {};
  if (step.type === 'branch') {
    (config.cases || []).forEach((c, i) => add(c && c.next, c && c.when ? shorten(String(c.when)) : `case ${i}`));
    add(config.default, 'default');
  } else if (step.type === 'decision') {
    for (const node of config.nodes || []) {
      if (!node || typeof node !== 'object') continue;
      add(node.then, `${node.id}: yes`);
      add(node.else, `${node.id}: no`);
      add(node.next, String(node.id));
      for (const [label, option] of Object.entries(node.branches || {})) add(option && option.next, label);
    }
  }
  return labels;
}

function shorten(text, max = 28) {
  const t = text.replace(/^\$\{\s*|\s*\}$/g, '');
  return t.length > max ? `${t.slice(0, max - 1)}…` : t;
}

/** Steps reachable from start through nextSteps (a fan-out's body), and its ends. */
function bodyEnds(start, byId) {
  const seen = new Set();
  const ends = [];
  const stack = [start];
  while (stack.length) {
    const id = stack.pop();
    if (seen.has(id) || !byId.has(id)) continue;
    seen.add(id);
    const next = byId.get(id).nextSteps || [];
    if (next.length === 0) ends.push(id);
    stack.push(...next);
  }
  return ends;
}

/** definition -> {nodes: [{id, label, type, virtual}], edges: [{from, to, label, kind}]}. */
export function graphOf(definition) {
  const steps = Array.isArray(definition && definition.steps) ? definition.steps.filter((s) => s && typeof s === 'object' && s.id !== undefined) : [];
  const byId = new Map(steps.map((s) => [String(s.id), s]));
  const nodes = steps.map((s) => ({id: String(s.id), label: s.name || String(s.id), type: String(s.type || 'unknown'), virtual: false}));
  const edges = [];
  const bodyStarts = new Set();
  for (const step of steps) {
    const id = String(step.id);
    const config = step.config || {};
    const labels = caseLabels(step);
    const next = (Array.isArray(step.nextSteps) ? step.nextSteps : []).map(String);
    let from = id;
    if (FAN_OUT.has(step.type)) {
      const join = `${id}::join`;
      nodes.push({id: join, label: 'join', type: 'join', virtual: true, owner: id});
      const bodies = step.type === 'parallel'
        ? (config.branches || []).filter((b) => b && b.start).map((b) => [String(b.start), String(b.name || b.start)])
        : (config.start ? [[String(config.start), 'each item']] : []);
      for (const [start, label] of bodies) {
        bodyStarts.add(start);
        edges.push({from: id, to: start, label, kind: 'body'});
        for (const end of bodyEnds(start, byId)) edges.push({from: end, to: join, label: '', kind: 'join'});
      }
      if (bodies.length === 0) edges.push({from: id, to: join, label: '', kind: 'join'});
      from = join;
    }
    for (const target of next) edges.push({from, to: target, label: labels.get(target) || '', kind: 'next'});
    const fallback = step.onError && step.onError.fallbackStep;
    if (fallback) edges.push({from: id, to: String(fallback), label: 'on error', kind: 'fallback'});
  }
  const known = new Set(nodes.map((n) => n.id));
  for (const edge of edges) {
    if (!known.has(edge.to)) {  // a reference to a missing step: show it, marked
      nodes.push({id: edge.to, label: edge.to, type: 'missing', virtual: true});
      known.add(edge.to);
    }
  }
  return {nodes, edges, bodyStarts};
}
