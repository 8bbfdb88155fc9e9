// Designer: the definition as YAML or JSON in CodeMirror beside its graph, validated as
// you type through POST /workflows/validate (errors in the editor AND on the nodes);
// palette, save (POST or a new version by PUT), run, and a version comparison from which
// an older version can be put back in the editor (and saved as the newest: a rollback).
import { parse as parseYaml, stringify as toYaml } from 'yaml';
import { h, clear, modal } from '../lib/dom.js';
import { createEditor } from '../lib/editor.js';
import { renderGraph } from '../lib/graph.js';
import { sourceMap } from '../lib/source_map.js';
import { stepTypes, insertStep } from './designer_palette.js';
import { comparePanel } from './designer_compare.js';
import { errorList } from './workflow_transfer.js';
import { concurrencyPanel } from './workflow_concurrency.js';

const TEMPLATE = `name: my-workflow
description: What this workflow does.
tags: []
steps:
  - id: start
    type: transform
    config:
      set:
        greeting: hello
`;

const MEDIA = {yaml: 'application/yaml', json: 'application/json'};

export async function mount(root, ctx, params) {
  const id = params.id || null;
  let workflow = null;
  let language = 'yaml';
  let text = TEMPLATE;
  if (id) {
    workflow = await ctx.api.get(`/workflows/${encodeURIComponent(id)}`);
    text = await (await ctx.api.raw(`/workflows/${encodeURIComponent(id)}/export`, {format: 'yaml'})).text();
    ctx.setTitle(workflow.name);
  }
  const canWrite = ctx.can('write', id || undefined);
  let graph = null;
  let graphKey = '';
  let map = null;
  let alive = true;
  let lastErrors = [];
  let selectedStep = null;

  const status = h('span', {class: 'validity', 'data-valid': 'unknown', role: 'status'}, 'Not validated yet');
  const problems = h('div', {class: 'problems', 'aria-live': 'polite'});
  const graphBox = h('div', {class: 'designer-graph', 'aria-label': 'Workflow graph'});
  const editorBox = h('div', {class: 'designer-editor'});
  const languagePick = h('select', {id: 'designer-format'},
    h('option', {value: 'yaml', selected: true}, 'YAML'), h('option', {value: 'json'}, 'JSON'));
  const versionInfo = h('span', {class: 'muted'}, workflow ? `v${workflow.version}` : 'not saved');

  async function validate(source) {
    map = sourceMap(source);
    if (!map.ok) {
      setStatus(false, 'The text does not parse');
      showProblems([]);
      return map.errors.map((e) => ({from: Math.min(e.pos[0], source.length), to: Math.min(e.pos[1], source.length),
        severity: 'error', message: e.message.split('\n')[0]}));
    }
    drawGraph(map.value);
    let issues = [];
    try {
      await ctx.api.post('/workflows/validate', source, {headers: {'Content-Type': MEDIA[language]}});
    } catch (e) {
      if (e.status !== 422 && e.status !== 400) { setStatus(false, e.message); return []; }
      issues = e.errors && e.errors.length ? e.errors : [{message: e.message, path: e.path}];
    }
    if (!alive || source !== editor.getText()) return [];
    setStatus(issues.length === 0, issues.length ? `${issues.length} problem(s)` : 'Valid');
    lastErrors = issues.map((issue) => ({...issue, stepId: map.stepIdOf(issue.path)}));
    graph.setErrors(lastErrors.filter((e) => e.stepId).map((e) => ({stepId: e.stepId, message: e.message})));
    showProblems(lastErrors);
    return lastErrors.map((issue) => {
      const range = map.range(issue.path);
      return {from: range.from, to: range.to, severity: 'error', source: issue.code || 'validation',
        message: issue.path ? `${issue.path}: ${issue.message}` : issue.message};
    });
  }

  function setStatus(valid, message) {
    status.dataset.valid = valid ? 'true' : 'false';
    status.textContent = message;
  }

  function showProblems(list) {
    clear(problems);
    if (!list.length) return;
    problems.append(h('ul', {class: 'error-list'}, list.slice(0, 30).map((issue) =>
      h('li', {}, h('button', {type: 'button', class: 'link-button', onClick: () => {
        const range = map.range(issue.path);
        editor.select(range.from, range.to);
      }}, issue.path || '/'), ' ', issue.message))));
  }

  function drawGraph(definition) {
    const key = JSON.stringify(definition && definition.steps);
    if (graph && key === graphKey) return;
    graphKey = key;
    if (graph) graph.destroy();
    graph = renderGraph(graphBox, definition || {}, {onSelect: (stepId) => {
      selectedStep = stepId;
      const range = map && map.stepRange(stepId);
      if (range) editor.select(range.from, range.to);
    }});
    if (lastErrors.length) graph.setErrors(lastErrors.filter((e) => e.stepId).map((e) => ({stepId: e.stepId, message: e.message})));
  }

  const editor = createEditor(editorBox, {text, language, readOnly: !canWrite, lint: validate,
    label: 'Workflow definition'});
  drawGraph((map = sourceMap(text)).value);

  languagePick.addEventListener('change', () => {
    const next = languagePick.value;
    try {
      const value = language === 'yaml' ? parseYaml(editor.getText()) : JSON.parse(editor.getText());
      language = next;
      editor.setLanguage(next);
      editor.setText(next === 'json' ? `${JSON.stringify(value, null, 2)}\n` : toYaml(value));
    } catch (e) {
      languagePick.value = language;
      ctx.toast(`Fix the text first: ${e.message}`, 'error');
    }
  });

  async function save() {
    const body = editor.getText();
    const headers = {'Content-Type': MEDIA[language]};
    try {
      if (!workflow) {
        const created = await ctx.api.post('/workflows', body, {headers});
        ctx.toast(`Created ${created.name}`, 'success');
        ctx.navigate(`#/workflows/${encodeURIComponent(created.id)}`);
        return;
      }
      const saved = await ctx.api.put(`/workflows/${encodeURIComponent(workflow.id)}`, body,
        {headers: {...headers, 'If-Match': `"${workflow.version}"`}});
      workflow = saved;
      versionInfo.textContent = `v${saved.version}`;
      clear(compareSlot);
      if (compareButton) compareButton.setAttribute('aria-expanded', 'false');
      ctx.setTitle(saved.name);
      ctx.toast(`Saved version ${saved.version}`, 'success');
    } catch (e) {
      const detail = h('div', {}, h('p', {}, e.message), errorList(e));
      await modal('Not saved', detail, [{label: 'Close', kind: 'primary', result: true}]);
    }
  }

  async function run() {
    const input = h('textarea', {id: 'run-input', rows: 8, spellcheck: 'false'}, '{}');
    const error = h('p', {class: 'form-error', role: 'alert'});
    const started = await modal(`Run ${workflow.name}`, h('div', {class: 'field'},
      h('label', {for: 'run-input'}, 'Input (JSON)'), input, error), [
      {label: 'Cancel', result: null},
      {label: 'Start', kind: 'primary', value: async () => {
        let value;
        try { value = JSON.parse(input.value || '{}'); } catch (e) { error.textContent = e.message; return undefined; }
        try {
          return await ctx.api.post(`/workflows/${encodeURIComponent(workflow.id)}/execute`, {input: value});
        } catch (e) { error.textContent = e.message; return undefined; }
      }}]);
    if (started) ctx.navigate(`#/executions/${encodeURIComponent(started.id)}`);
  }

  const palette = h('div', {class: 'palette', role: 'group', 'aria-label': 'Add a step'});
  if (canWrite) {
    palette.append(h('span', {class: 'palette-title'}, 'Add step'));
    for (const type of await stepTypes(ctx.api)) {
      palette.append(h('button', {type: 'button', class: 'btn btn-small palette-item', 'data-step-type': type,
        onClick: () => {
          const next = insertStep(editor.getText(), language, type, selectedStep);
          if (!next) { ctx.toast('Fix the text first: it does not parse', 'error'); return; }
          editor.setText(next.text);
          const range = sourceMap(next.text).stepRange(next.stepId);
          if (range) editor.select(range.from, range.to);
          selectedStep = next.stepId;
        }}, type));
    }
  }

  const compareSlot = h('div', {class: 'compare-slot'});
  const compareButton = workflow && h('button', {type: 'button', class: 'btn', 'aria-expanded': 'false', onClick: async () => {
    if (compareSlot.firstChild) { clear(compareSlot); compareButton.setAttribute('aria-expanded', 'false'); return; }
    const versions = (await ctx.api.get(`/workflows/${encodeURIComponent(workflow.id)}/versions`)).items;
    const openVersion = canWrite ? (n, yamlText) => {
      // The version's YAML replaces the editor's text; Save makes it the newest version.
      if (language !== 'yaml') { language = 'yaml'; languagePick.value = 'yaml'; editor.setLanguage('yaml'); }
      editor.setText(yamlText);
      versionInfo.textContent = `v${workflow.version} · editing a copy of v${n}`;
      ctx.toast(`Version ${n} is in the editor: Save makes it version ${workflow.version + 1}`, 'info');
      editorBox.scrollIntoView({block: 'nearest'});
    } : null;
    compareSlot.append(comparePanel(ctx, workflow.id, versions, openVersion));
    compareButton.setAttribute('aria-expanded', 'true');
  }}, 'Compare versions');

  root.append(
    h('div', {class: 'toolbar designer-toolbar'},
      h('a', {href: '#/workflows', class: 'btn btn-ghost'}, '← Workflows'), versionInfo, status,
      h('span', {class: 'spacer'}),
      h('label', {for: 'designer-format'}, 'Format'), languagePick,
      compareButton,
      canWrite && h('button', {type: 'button', class: 'btn btn-primary', onClick: save}, workflow ? 'Save' : 'Create'),
      workflow && ctx.can('execute', workflow.id) && h('button', {type: 'button', class: 'btn', onClick: run}, 'Run')),
    palette,
    h('div', {class: 'designer'},
      h('section', {class: 'card designer-pane', 'aria-label': 'Definition'}, editorBox, problems),
      h('section', {class: 'card designer-pane', 'aria-label': 'Graph'}, graphBox)),
    compareSlot,
    ...(workflow?.concurrency?.length ? [concurrencyPanel(ctx, workflow.id)] : []));
  return () => { alive = false; editor.destroy(); if (graph) graph.destroy(); };
}
