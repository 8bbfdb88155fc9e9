// A CodeMirror 6 editor for definitions: YAML or JSON, highlighting, folding, history,
// and lint diagnostics from an async source (the designer's validation).
import { EditorState, Compartment } from '@codemirror/state';
import {
  EditorView, keymap, lineNumbers, highlightActiveLine, highlightActiveLineGutter, drawSelection,
} from '@codemirror/view';
import { defaultKeymap, history, historyKeymap } from '@codemirror/commands';
import {
  syntaxHighlighting, defaultHighlightStyle, foldGutter, foldKeymap, bracketMatching, indentOnInput,
} from '@codemirror/language';
import { linter, lintGutter, lintKeymap, forceLinting } from '@codemirror/lint';
import { yaml } from '@codemirror/lang-yaml';
import { json } from '@codemirror/lang-json';

const languages = {yaml: () => yaml(), json: () => json()};
// CodeMirror writes its styles into <style> elements: they carry the page's CSP nonce.
const nonce = document.querySelector('meta[name="csp-nonce"]')?.content || '';

/** createEditor(parent, {text, language: 'yaml'|'json', readOnly, lint, label}). */
export function createEditor(parent, {text = '', language = 'yaml', readOnly = false, lint, label = 'Definition'} = {}) {
  const languageSlot = new Compartment();
  const readOnlySlot = new Compartment();
  const extensions = [
    lineNumbers(), highlightActiveLineGutter(), foldGutter(), drawSelection(), history(),
    indentOnInput(), bracketMatching(), highlightActiveLine(),
    syntaxHighlighting(defaultHighlightStyle, {fallback: true}),
    keymap.of([...defaultKeymap, ...historyKeymap, ...foldKeymap, ...lintKeymap]),
    languageSlot.of(languages[language]()),
    readOnlySlot.of([EditorState.readOnly.of(readOnly), EditorView.editable.of(!readOnly)]),
    EditorView.contentAttributes.of({'aria-label': label}),
    EditorState.tabSize.of(2),
    EditorView.cspNonce.of(nonce),
  ];
  if (lint) extensions.push(linter((view) => lint(view.state.doc.toString()), {delay: 400}), lintGutter());
  const view = new EditorView({state: EditorState.create({doc: text, extensions}), parent});
  return {
    view,
    getText: () => view.state.doc.toString(),
    setText(next) {
      view.dispatch({changes: {from: 0, to: view.state.doc.length, insert: next}});
    },
    setLanguage(name) {
      view.dispatch({effects: languageSlot.reconfigure(languages[name]())});
    },
    select(from, to) {
      const end = Math.min(to, view.state.doc.length);
      view.dispatch({selection: {anchor: Math.min(from, end), head: end}, scrollIntoView: true});
      view.focus();
    },
    relint() { forceLinting(view); },
    destroy() { view.destroy(); },
  };
}
