// The workflow graph: dagre's layered layout drawn as SVG. Nodes carry data-step-id,
// data-type and data-state; shapes and colours tell step types apart.
import dagre from '@dagrejs/dagre';
import { svg, clear, h } from './dom.js';
import { graphOf } from './graph_model.js';

const SIZE = {width: 156, height: 50};
const MIN_SCALE = 0.7;  // a wide graph shrinks to its pane down to this, then scrolls
const STATES = new Set(['pending', 'running', 'waiting', 'succeeded', 'failed', 'cancelled', 'retrying', 'skipped']);
const KIND_LABEL = {
  http: 'HTTP', transform: 'transform', branch: 'branch', decision: 'decision', llm: 'LLM',
  wait: 'wait', wait_for_event: 'wait for event', parallel: 'parallel', map: 'map',
  subworkflow: 'sub-workflow', publish: 'publish', join: '', missing: 'missing step',
};

function shape(type, w, h2) {
  const x = -w / 2;
  const y = -h2 / 2;
  if (type === 'branch' || type === 'decision') {
    return svg('polygon', {class: 'shape', points: `0,${y - 6} ${-x + 10},0 0,${-y + 6} ${x - 10},0`});
  }
  if (type === 'join') return svg('circle', {class: 'shape', r: 14});
  if (type === 'parallel' || type === 'map') {
    return svg('polygon', {class: 'shape', points: `${x + 12},${y} ${-x - 12},${y} ${-x},0 ${-x - 12},${-y} ${x + 12},${-y} ${x},0`});
  }
  const rx = type === 'wait' || type === 'wait_for_event' || type === 'llm' ? h2 / 2 : 6;
  return svg('rect', {class: 'shape', x, y, width: w, height: h2, rx});
}

function fit(text, max) {
  const s = String(text);
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

function pathOf(points) {
  const [first, ...rest] = points;
  if (!rest.length) return '';
  let d = `M${first.x},${first.y}`;
  for (let i = 0; i < rest.length - 1; i += 1) {
    const mid = {x: (rest[i].x + rest[i + 1].x) / 2, y: (rest[i].y + rest[i + 1].y) / 2};
    d += ` Q${rest[i].x},${rest[i].y} ${mid.x},${mid.y}`;
  }
  const last = rest[rest.length - 1];
  return `${d} L${last.x},${last.y}`;
}

/** Lay out and draw `definition` in `container`; see the returned handle's methods. */
export function renderGraph(container, definition, {onSelect} = {}) {
  clear(container);
  container.classList.add('graph');
  const model = graphOf(definition);
  if (!model.nodes.length) {
    container.append(h('div', {class: 'graph-empty'}, 'No steps to draw yet.'));
    return {setStepState() {}, setErrors() {}, select() {}, destroy() { clear(container); }};
  }
  const g = new dagre.graphlib.Graph({multigraph: true});
  g.setGraph({rankdir: 'TB', nodesep: 28, ranksep: 48, marginx: 16, marginy: 16});
  g.setDefaultEdgeLabel(() => ({}));
  for (const node of model.nodes) {
    const size = node.type === 'join' ? {width: 30, height: 30} : SIZE;
    g.setNode(node.id, {...size, node});
  }
  model.edges.forEach((edge, i) => {
    const label = edge.label ? {width: Math.min(edge.label.length, 28) * 6.4 + 8, height: 16, labelpos: 'c'} : {};
    g.setEdge(edge.from, edge.to, {...label, edge}, `e${i}`);
  });
  dagre.layout(g);
  const {width, height} = g.graph();
  const root = svg('svg', {width: Math.max(width, 200), height: Math.max(height, 120),
    viewBox: `0 0 ${Math.max(width, 200)} ${Math.max(height, 120)}`, role: 'group', 'aria-label': 'Workflow graph'});
  const defs = svg('defs', {}, svg('marker', {id: 'arrow', viewBox: '0 0 10 10', refX: 9, refY: 5,
    markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse'}, svg('path', {class: 'arrow', d: 'M0,0 L10,5 L0,10 z'})));
  root.append(defs);
  const edgeLayer = svg('g', {class: 'edges'});
  const nodeLayer = svg('g', {class: 'nodes'});
  root.append(edgeLayer, nodeLayer);
  for (const e of g.edges()) {
    const data = g.edge(e);
    const group = svg('g', {class: ['edge', data.edge.kind], 'data-from': e.v, 'data-to': e.w},
      svg('path', {d: pathOf(data.points), 'marker-end': 'url(#arrow)'}));
    if (data.edge.label && data.x !== undefined) {
      const text = fit(data.edge.label, 28);
      group.append(svg('rect', {class: 'edge-label-bg', x: data.x - data.width / 2, y: data.y - 8, width: data.width, height: 16, rx: 3}),
        svg('text', {class: 'edge-label', x: data.x, y: data.y + 4, 'text-anchor': 'middle'}, text));
    }
    edgeLayer.append(group);
  }
  const elements = new Map();
  let selected = null;
  for (const id of g.nodes()) {
    const {x, y, width: w, height: hh, node} = g.node(id);
    const kind = KIND_LABEL[node.type] ?? node.type;
    const group = svg('g', {class: ['node', node.virtual && 'virtual'], transform: `translate(${x},${y})`,
      'data-step-id': node.id, 'data-type': node.type, 'data-state': 'pending',
      tabindex: node.virtual && node.type === 'join' ? null : 0, role: 'button',
      'aria-label': `${kind ? `${kind} ` : ''}step ${node.id}`},
    svg('title', {}, `${node.id} (${node.type})`), shape(node.type, w, hh));
    if (node.type !== 'join') {
      group.append(svg('text', {x: 0, y: -3, 'text-anchor': 'middle', class: 'label'}, fit(node.label, 21)),
        svg('text', {x: 0, y: 13, 'text-anchor': 'middle', class: 'kind'}, kind));
    } else {
      group.append(svg('text', {x: 0, y: 4, 'text-anchor': 'middle', class: 'kind'}, '⋈'));
    }
    const choose = () => { if (node.type !== 'join') { api.select(node.id); if (onSelect) onSelect(node.id); } };
    group.addEventListener('click', choose);
    group.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' || ev.key === ' ') { ev.preventDefault(); choose(); }
    });
    nodeLayer.append(group);
    elements.set(node.id, group);
  }
  root.style.minWidth = `${Math.round(Math.max(width, 200) * MIN_SCALE)}px`;  // CSSOM: allowed by the CSP
  container.append(root);

  const api = {
    /** state: pending|running|waiting|succeeded|failed|cancelled|retrying|skipped. */
    setStepState(stepId, state, {visits} = {}) {
      const el = elements.get(String(stepId));
      if (!el) return;
      el.setAttribute('data-state', STATES.has(state) ? state : 'pending');
      el.querySelector('.visits-group')?.remove();
      if (visits && visits > 1) {
        el.append(svg('g', {class: 'visits-group', transform: `translate(${SIZE.width / 2 - 4},${-SIZE.height / 2 + 2})`},
          svg('circle', {class: 'visits-bg', r: 9}), svg('text', {class: 'visits', 'text-anchor': 'middle', y: 3.5}, `×${visits}`)));
      }
    },
    /** errors: [{stepId, message}]; marks those nodes (red outline, message under them). */
    setErrors(errors) {
      for (const el of elements.values()) {
        el.classList.remove('has-error');
        el.removeAttribute('data-error');
        el.querySelector('.error-text')?.remove();
      }
      for (const {stepId, message} of errors || []) {
        const el = elements.get(String(stepId));
        if (!el) continue;
        const first = !el.classList.contains('has-error');
        el.classList.add('has-error');
        el.setAttribute('data-error', message);
        if (first) {
          el.append(svg('text', {class: 'error-text', x: 0, y: SIZE.height / 2 + 13, 'text-anchor': 'middle'}, fit(message, 34)));
          el.querySelector('title').textContent = `${stepId}: ${message}`;
        }
      }
    },
    select(stepId) {
      if (selected) selected.classList.remove('selected');
      selected = elements.get(String(stepId)) || null;
      if (selected) {
        selected.classList.add('selected');
        selected.scrollIntoView?.({block: 'nearest', inline: 'nearest'});
      }
    },
    destroy() { clear(container); elements.clear(); },
  };
  return api;
}
