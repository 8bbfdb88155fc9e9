// The designer's palette: the registered step types (read from the API's definition
// schema) and a valid skeleton of each, appended to the definition's steps.
import { parseDocument, stringify } from 'yaml';

const KNOWN = ['transform', 'http', 'branch', 'decision', 'llm', 'wait', 'wait_for_event',
  'parallel', 'map', 'subworkflow', 'publish'];

/** Step types named by the OpenAPI document's WorkflowStep.type description. */
export async function stepTypes(api) {
  try {
    const doc = await api.get('/openapi.json');
    const schemas = (doc.components && doc.components.schemas) || {};
    const step = schemas.WorkflowStep || schemas['WorkflowStep-Input'] || {};
    const text = (step.properties && step.properties.type && step.properties.type.description) || '';
    const listed = (/step type:([^.]*)/i.exec(text.replace(/\s+/g, ' ')) || [, ''])[1]
      .split(/,|\bor\b/).map((s) => s.trim()).filter((s) => /^[a-z_]+$/.test(s));
    const types = listed.filter((t) => SKELETONS[t]);
    return types.length ? types : KNOWN;
  } catch {
    return KNOWN;
  }
}

// Each skeleton: (id) -> steps to append (the first is the new step; helpers follow).
const leaf = (id, value) => ({id, type: 'transform', config: {set: {[value]: true}}});
export const SKELETONS = {
  transform: (id) => [{id, type: 'transform', config: {set: {result: '${input}'}}}],
  http: (id) => [{id, type: 'http', config: {method: 'GET', url: 'https://api.example.com/items'}}],
  branch: (id) => [
    {id, type: 'branch', config: {cases: [{when: 'input.amount > 100', next: `${id}_large`}], default: `${id}_small`},
      nextSteps: [`${id}_large`, `${id}_small`]},
    leaf(`${id}_large`, 'large'), leaf(`${id}_small`, 'small')],
  decision: (id) => [
    {id, type: 'decision', config: {nodes: [{id: 'check', type: 'condition', when: 'input.amount > 100',
      then: `${id}_review`, else: `${id}_approve`}]}, nextSteps: [`${id}_review`, `${id}_approve`]},
    leaf(`${id}_review`, 'review'), leaf(`${id}_approve`, 'approve')],
  llm: (id) => [{id, type: 'llm', config: {prompt: 'Summarise ${vars.text} in one sentence.'}}],
  wait: (id) => [{id, type: 'wait', config: {seconds: 60}}],
  wait_for_event: (id) => [{id, type: 'wait_for_event', config: {event: 'approval', timeoutSeconds: 3600}}],
  parallel: (id) => [
    {id, type: 'parallel', config: {branches: [{name: 'left', start: `${id}_left`}, {name: 'right', start: `${id}_right`}]}},
    leaf(`${id}_left`, 'left'), leaf(`${id}_right`, 'right')],
  map: (id) => [
    {id, type: 'map', config: {items: 'input.items', start: `${id}_each`, concurrency: 5}},
    {id: `${id}_each`, type: 'transform', config: {set: {value: '${item}'}}}],
  subworkflow: (id) => [{id, type: 'subworkflow', config: {workflowName: 'child-workflow', input: {}}}],
  publish: (id) => [{id, type: 'publish', config: {topic: 'events', data: {done: true}}}],
};

function freeId(taken, type) {
  const base = type.replace(/[^A-Za-z0-9_]/g, '_');
  for (let n = 1; ; n += 1) {
    const id = `${base}_${n}`;
    if (![id, `${id}_large`, `${id}_small`, `${id}_left`, `${id}_right`, `${id}_each`, `${id}_review`, `${id}_approve`].some((x) => taken.has(x))) return id;
  }
}

// Which step leads to the new one (so it is reachable): the selected step, else the
// last one that leads nowhere yet (branch and decision steps route by their config).
function linkFrom(steps, after) {
  const routed = (s) => s && (s.type === 'branch' || s.type === 'decision');
  const chosen = steps.findIndex((s) => s && s.id === after && !routed(s));
  if (chosen >= 0) return chosen;
  for (let i = steps.length - 1; i >= 0; i -= 1) {
    const s = steps[i];
    if (s && typeof s === 'object' && !routed(s) && !(s.nextSteps && s.nextSteps.length)) return i;
  }
  return -1;
}

/** text with a skeleton of `type` appended to its steps and linked from `after` (or the
 * last open end): {text, stepId}, or null when the text does not parse. */
export function insertStep(text, language, type, after = null) {
  const make = SKELETONS[type] || ((id) => [{id, type, config: {}}]);
  if (language === 'json') {
    let value;
    try { value = JSON.parse(text || '{}'); } catch { return null; }
    if (!value || typeof value !== 'object' || Array.isArray(value)) return null;
    value.steps = Array.isArray(value.steps) ? value.steps : [];
    const id = freeId(new Set(value.steps.map((s) => s && s.id)), type);
    const from = linkFrom(value.steps, after);
    if (from >= 0) value.steps[from].nextSteps = [...(value.steps[from].nextSteps || []), id];
    value.steps.push(...make(id));
    return {text: `${JSON.stringify(value, null, 2)}\n`, stepId: id};
  }
  const doc = parseDocument(text || '');
  if (doc.errors.length) return null;
  if (!doc.contents) doc.contents = doc.createNode({name: 'new-workflow', steps: []});
  let steps = doc.get('steps');
  if (!steps || !steps.items) { doc.set('steps', doc.createNode([])); steps = doc.get('steps'); }
  const taken = new Set(steps.items.map((s) => s && s.get && s.get('id')));
  const id = freeId(taken, type);
  const from = linkFrom(steps.toJSON(), after);
  if (from >= 0) {
    const next = steps.items[from].get('nextSteps');
    if (next && next.items) next.add(id);
    else steps.items[from].set('nextSteps', doc.createNode([id], {flow: true}));
  }
  for (const step of make(id)) steps.add(doc.createNode(step));
  return {text: doc.toString(), stepId: id};
}

export { stringify };
