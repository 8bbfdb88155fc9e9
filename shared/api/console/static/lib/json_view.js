// A collapsible JSON tree built from DOM nodes (every key and value is text).
import { h } from './dom.js';

function scalar(value) {
  const type = value === null ? 'null' : typeof value;
  const text = type === 'string' ? JSON.stringify(value) : String(value);
  return h('span', {class: `jv-${type}`}, text);
}

function node(value, depth, collapsedDepth) {
  if (value === null || typeof value !== 'object') return scalar(value);
  const isArray = Array.isArray(value);
  const entries = isArray ? value.map((v, i) => [i, v]) : Object.entries(value);
  const [open, close] = isArray ? ['[', ']'] : ['{', '}'];
  if (entries.length === 0) return h('span', {class: 'jv-punct'}, open + close);
  const details = h('details', {class: 'jv-node'});
  details.open = depth < collapsedDepth;
  details.append(h('summary', {},
    h('span', {class: 'jv-punct'}, open),
    h('span', {class: 'jv-count'}, ` ${entries.length} ${isArray ? 'items' : 'keys'} `),
    h('span', {class: 'jv-punct jv-close-inline'}, close)));
  const list = h('div', {class: 'jv-children'});
  for (const [key, child] of entries) {
    list.append(h('div', {class: 'jv-row'},
      isArray ? null : h('span', {class: 'jv-key'}, JSON.stringify(String(key))),
      isArray ? null : h('span', {class: 'jv-punct'}, ': '),
      node(child, depth + 1, collapsedDepth)));
  }
  details.append(list, h('span', {class: 'jv-punct'}, close));
  return details;
}

/** jsonView(value, {collapsedDepth: 2}) -> HTMLElement. */
export function jsonView(value, {collapsedDepth = 2} = {}) {
  return h('div', {class: 'json-view'}, node(value, 0, collapsedDepth));
}
