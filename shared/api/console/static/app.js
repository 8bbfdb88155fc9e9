// The console shell: hash router, navigation, sign-in and the session every view gets.
import { api, credentials, ApiError } from './lib/api.js';
import { live } from './lib/live.js';
import { h, clear } from './lib/dom.js';

const NAV = [
  {hash: '#/workflows', label: 'Workflows', view: 'workflows'},
  {hash: '#/executions', label: 'Executions', view: 'executions'},
  {hash: '#/inbox', label: 'Inbox', view: 'inbox'},
  {hash: '#/analytics', label: 'Analytics', view: 'analytics'},
];

// [pattern, view module, title, names of the captured params]
const ROUTES = [
  [/^\/workflows$/, 'workflows', 'Workflows', []],
  [/^\/workflows\/new$/, 'designer', 'New workflow', []],
  [/^\/workflows\/([^/]+)$/, 'designer', 'Designer', ['id']],
  [/^\/executions$/, 'executions', 'Executions', []],
  [/^\/executions\/([^/]+)$/, 'execution', 'Execution', ['id']],
  [/^\/inbox$/, 'inbox', 'Inbox', []],
  [/^\/analytics$/, 'analytics', 'Analytics', []],
];

const RANK = {viewer: 0, editor: 1, admin: 2, owner: 3};
const NEEDS = {read: 'viewer', write: 'editor', execute: 'editor', operate: 'editor', delete: 'admin'};

const main = document.getElementById('main');
const title = document.getElementById('page-title');
let unmount = null;
let generation = 0;

/** '#/executions/abc?status=failed' -> {view, title, params}. */
export function resolve(hash) {
  const raw = (hash || '').replace(/^#/, '') || '/workflows';
  const [path, search = ''] = raw.split('?');
  const query = Object.fromEntries(new URLSearchParams(search));
  for (const [pattern, view, name, keys] of ROUTES) {
    const match = pattern.exec(path);
    if (!match) continue;
    const params = {...query};
    keys.forEach((key, i) => { params[key] = decodeURIComponent(match[i + 1]); });
    return {view, title: name, params, path};
  }
  return null;
}

export function toast(message, kind = 'info') {
  const box = document.getElementById('toasts');
  const item = h('div', {class: ['toast', `toast-${kind}`], role: kind === 'error' ? 'alert' : 'status'},
    h('span', {}, String(message)),
    h('button', {type: 'button', class: 'toast-close', 'aria-label': 'Dismiss', onClick: () => item.remove()}, '×'));
  box.append(item);
  setTimeout(() => item.remove(), kind === 'error' ? 10000 : 4000);
}

function makeContext(session) {
  return {
    api, live, session,
    /** can('write') on the tenant, or can('write', workflowId) with per-workflow roles. */
    can: (action, workflowId) => {
      const role = (workflowId && session.workflowRoles && session.workflowRoles[workflowId]) || session.role;
      return (RANK[role] ?? -1) >= RANK[NEEDS[action] || 'owner'];
    },
    navigate: (hash) => { if (location.hash === hash) route(); else location.hash = hash; },
    toast,
    setTitle: (text) => { title.textContent = text; document.title = `${text} · Workflow Engine`; },
  };
}

function renderNav(current) {
  const nav = clear(document.getElementById('nav'));
  for (const item of NAV) {
    const active = current && (current === item.view || (item.view === 'workflows' && current === 'designer')
      || (item.view === 'executions' && current === 'execution'));
    nav.append(h('li', {}, h('a', {href: item.hash, class: ['nav-link', active && 'active'],
      'aria-current': active ? 'page' : null, 'data-nav': item.view}, item.label)));
  }
}

function renderWho(session) {
  const who = clear(document.getElementById('who'));
  if (!session) return;
  who.append(
    h('span', {class: 'who-principal', title: 'Signed in as'}, session.principal),
    h('span', {class: 'who-tenant', title: 'Tenant'}, session.tenant),
    h('span', {class: ['role', `role-${session.role}`], 'data-role': session.role}, session.role));
  if (session.authRequired) {
    who.append(h('button', {type: 'button', class: 'btn btn-ghost', onClick: signOut}, 'Sign out'));
  }
}

function signOut() {
  credentials.clear();
  state.session = null;
  start();
}

function signInForm(message) {
  clear(document.getElementById('nav'));  // nothing to navigate to before signing in
  renderWho(null);
  title.textContent = 'Sign in';
  const input = h('input', {id: 'api-key', name: 'apiKey', type: 'password', autocomplete: 'off', required: true});
  const error = h('p', {class: 'form-error', role: 'alert'}, message || '');
  const form = h('form', {class: 'card signin', onSubmit: async (e) => {
    e.preventDefault();
    credentials.set(input.value.trim());
    await start();
  }},
  h('h2', {}, 'Sign in with an API key'),
  h('p', {class: 'muted'}, 'The API requires credentials. The key stays in this browser tab only (session storage).'),
  h('label', {for: 'api-key'}, 'API key'), input, error,
  h('div', {class: 'form-actions'}, h('button', {type: 'submit', class: 'btn btn-primary'}, 'Sign in')));
  clear(main).append(form);
  input.focus();
}

const state = {session: null};

async function route() {
  const mine = ++generation;
  if (unmount) { try { unmount(); } catch (e) { console.warn(e); } unmount = null; }
  const target = resolve(location.hash);
  if (!target) { location.replace('#/workflows'); return; }
  renderNav(target.view);
  const ctx = makeContext(state.session);
  ctx.setTitle(target.title);
  clear(main).append(h('div', {class: 'loading'}, 'Loading…'));
  let module;
  try {
    module = await import(`./views/${target.view}.js`);
  } catch (e) {
    if (mine !== generation) return;
    clear(main).append(h('div', {class: 'card empty'}, `The ${target.title} view is not available.`));
    console.warn(e);
    return;
  }
  if (mine !== generation) return;
  const root = clear(main);
  try {
    const done = await module.mount(root, ctx, target.params);
    if (mine !== generation) { if (typeof done === 'function') done(); return; }
    unmount = typeof done === 'function' ? done : null;
  } catch (e) {
    if (mine !== generation) return;
    if (e instanceof ApiError && e.status === 401) { signInForm(e.message); return; }
    clear(root).append(h('div', {class: 'card error-card', role: 'alert'},
      h('h2', {}, 'Something went wrong'), h('p', {}, e.message || String(e))));
  }
}

async function start() {
  try {
    state.session = await api.get('/session');
  } catch (e) {
    if (e instanceof ApiError && (e.status === 401 || e.status === 403)) {
      const hadKey = Boolean(credentials.get());
      credentials.clear();
      signInForm(hadKey ? e.message : '');
      return;
    }
    clear(main).append(h('div', {class: 'card error-card', role: 'alert'}, `Cannot reach the API: ${e.message}`));
    return;
  }
  renderWho(state.session);
  document.body.dataset.role = state.session.role;
  await route();
}

window.addEventListener('hashchange', () => { if (state.session) route(); });
start();
