// Building DOM without innerHTML: every string child becomes a text node, so hostile
// names, step ids and error messages render as text.

const SVG_NS = 'http://www.w3.org/2000/svg';

function apply(el, attrs) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2).toLowerCase(), value);
    } else if (key === 'class') {
      el.setAttribute('class', Array.isArray(value) ? value.filter(Boolean).join(' ') : value);
    } else if (key === 'dataset') {
      Object.assign(el.dataset, value);
    } else if (key === 'value' && 'value' in el) {
      el.value = value;
    } else if (key === 'checked' || key === 'disabled' || key === 'selected') {
      el[key] = Boolean(value);
    } else {
      el.setAttribute(key, value === true ? '' : String(value));
    }
  }
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** h('button', {class: 'btn', onClick: fn}, 'Save') -> HTMLElement. */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  apply(el, attrs);
  append(el, children);
  return el;
}

/** An SVG element (graph nodes and edges). */
export function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  apply(el, attrs);
  append(el, children);
  return el;
}

/** Remove every child of el. */
export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

/** A modal dialog (native <dialog>); resolves with the value passed to close, or null. */
export function modal(title, body, actions) {
  return new Promise((resolve) => {
    const dialog = h('dialog', {class: 'modal', 'aria-label': title});
    const done = (value) => { dialog.close(); dialog.remove(); resolve(value); };
    const buttons = actions.map((a) => h('button', {
      type: 'button', class: ['btn', a.kind && `btn-${a.kind}`],
      onClick: async () => { const v = a.value ? await a.value() : a.result; if (v !== undefined) done(v); },
    }, a.label));
    dialog.append(h('h2', {}, title), h('div', {class: 'modal-body'}, body),
      h('div', {class: 'modal-actions'}, buttons));
    dialog.addEventListener('cancel', (e) => { e.preventDefault(); done(null); });
    document.body.append(dialog);
    dialog.showModal();
  });
}

/** Ask for confirmation; resolves true or false. */
export async function confirmDialog(title, message, confirmLabel = 'Confirm') {
  const answer = await modal(title, h('p', {}, message), [
    {label: 'Cancel', result: false},
    {label: confirmLabel, kind: 'danger', result: true},
  ]);
  return answer === true;
}
