// Import (file or paste, JSON or YAML) and export (download) of workflows.
import { h, modal } from '../lib/dom.js';
import { download, fileName } from '../lib/download.js';

/** JSON when it looks like JSON, else YAML (the API takes both). */
export function mediaTypeOf(text) {
  return /^\s*[[{]/.test(text) ? 'application/json' : 'application/yaml';
}

function errorList(error) {
  const items = (error.errors && error.errors.length ? error.errors : [error]).slice(0, 20);
  return h('ul', {class: 'error-list'}, items.map((e) =>
    h('li', {}, e.path ? h('code', {}, e.path) : null, e.path ? ' ' : null, e.message || String(e))));
}

/** The import dialog; resolves with the created workflows, or null when cancelled. */
export async function importDialog(ctx) {
  const text = h('textarea', {id: 'import-text', rows: 14, spellcheck: 'false',
    placeholder: 'name: my-workflow\nsteps:\n  - id: first\n    type: transform\n    config: {set: {x: 1}}'});
  const file = h('input', {id: 'import-file', type: 'file', accept: '.json,.yaml,.yml,application/json,application/yaml'});
  file.addEventListener('change', async () => {
    if (file.files && file.files[0]) text.value = await file.files[0].text();
  });
  const newVersion = h('input', {id: 'import-new-version', type: 'checkbox'});
  const problems = h('div', {class: 'form-error', role: 'alert'});
  const body = h('div', {class: 'modal-body'},
    h('p', {class: 'muted'}, 'One definition, a JSON list, or several YAML documents separated by ---. Everything is validated first: if one is invalid, nothing is created.'),
    h('div', {class: 'field'}, h('label', {for: 'import-file'}, 'File'), file),
    h('div', {class: 'field'}, h('label', {for: 'import-text'}, 'Or paste JSON or YAML'), text),
    h('label', {class: 'check', for: 'import-new-version'}, newVersion,
      'When a name is taken, save it as a new version of that workflow'),
    problems);
  return modal('Import workflows', body, [
    {label: 'Cancel', result: null},
    {label: 'Import', kind: 'primary', value: async () => {
      problems.replaceChildren();
      if (!text.value.trim()) { problems.append('Choose a file or paste a definition.'); return undefined; }
      try {
        const answer = await ctx.api.post('/workflows/import', text.value, {
          headers: {'Content-Type': mediaTypeOf(text.value)},
          query: {onConflict: newVersion.checked ? 'newVersion' : 'fail'},
        });
        return answer.items || [];
      } catch (e) {
        problems.append(h('p', {}, e.message), errorList(e));
        return undefined;
      }
    }},
  ]);
}

/** Download a workflow's definition (without server fields) as YAML or JSON. */
export async function exportWorkflow(ctx, workflow, format) {
  const response = await ctx.api.raw(`/workflows/${encodeURIComponent(workflow.id)}/export`, {format});
  const text = await response.text();
  download(fileName(workflow.name, format === 'yaml' ? 'yaml' : 'json'), text,
    format === 'yaml' ? 'application/yaml' : 'application/json');
}

export { errorList };
