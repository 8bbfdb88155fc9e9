// From a JSON pointer into a definition to a range of its text, for YAML and JSON alike
// (JSON is YAML's flow style: the yaml library's parse tree gives source ranges of both).
import { parseDocument, isMap, isSeq, isScalar } from 'yaml';

function unescape(token) {
  return decodeURIComponent(token).replace(/~1/g, '/').replace(/~0/g, '~');
}

function child(node, token) {
  if (isSeq(node)) return {value: node.items[Number(token)], key: null};
  if (isMap(node)) {
    const pair = node.items.find((p) => String(isScalar(p.key) ? p.key.value : p.key) === token);
    return pair ? {value: pair.value, key: pair.key} : null;
  }
  return null;
}

/** Parse once; ask for ranges of many pointers. */
export function sourceMap(text) {
  const doc = parseDocument(text, {keepSourceTokens: false, uniqueKeys: false});
  const ok = doc.errors.length === 0;

  /** {from, to, exact} of the node at pointer, or of its deepest existing ancestor. */
  function range(pointer) {
    const tokens = String(pointer || '').split('/').slice(1).map(unescape);
    let node = doc.contents;
    let best = {from: 0, to: 0, exact: tokens.length === 0};
    if (node && node.range) best = {from: node.range[0], to: node.range[1], exact: tokens.length === 0};
    for (let i = 0; i < tokens.length; i += 1) {
      const next = child(node, tokens[i]);
      if (!next) break;
      const last = i === tokens.length - 1;
      if (next.value && next.value.range) {
        // A whole map or list: point at its key (one line), not at its many lines.
        const target = (isMap(next.value) || isSeq(next.value)) && next.key && next.key.range ? next.key : next.value;
        best = {from: target.range[0], to: target.range[1], exact: last};
      } else if (next.key && next.key.range) {
        best = {from: next.key.range[0], to: next.key.range[1], exact: last};
      }
      node = next.value;
    }
    if (best.to <= best.from) best.to = Math.min(text.length, best.from + 1);
    return best;
  }

  /** The step id a pointer under /steps/<n> is about. */
  function stepIdOf(pointer) {
    const match = /^\/steps\/(\d+)(\/|$)/.exec(String(pointer || ''));
    if (!match) return null;
    const steps = doc.contents && child(doc.contents, 'steps');
    const step = steps && steps.value && child(steps.value, match[1]);
    const id = step && step.value && child(step.value, 'id');
    return id && id.value && isScalar(id.value) ? String(id.value.value) : null;
  }

  /** The text range of the whole step with this id (for selecting it). */
  function stepRange(stepId) {
    const steps = doc.contents && child(doc.contents, 'steps');
    if (!steps || !isSeq(steps.value)) return null;
    for (const item of steps.value.items) {
      const id = isMap(item) && child(item, 'id');
      if (id && id.value && isScalar(id.value) && String(id.value.value) === String(stepId)) {
        return {from: item.range[0], to: item.range[1]};
      }
    }
    return null;
  }

  return {ok, errors: doc.errors, value: ok ? doc.toJS() : null, range, stepIdOf, stepRange};
}
