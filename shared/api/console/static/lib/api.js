// The console's only way to the server: the public REST API under /api/v1 and GraphQL.
const BASE = '/api/v1';
const KEY = 'wfe.apiKey';

export class ApiError extends Error {
  constructor(status, body, fallback) {
    const error = (body && body.error) || {};
    super(error.message || fallback || `HTTP ${status}`);
    this.name = 'ApiError';
    this.status = status;
    this.code = error.code || (status === 0 ? 'NETWORK' : 'HTTP_ERROR');
    this.path = error.path;
    this.errors = error.errors || [];
    this.details = error.details;
  }
}

export const credentials = {
  get: () => sessionStorage.getItem(KEY),
  set: (key) => sessionStorage.setItem(KEY, key),
  clear: () => sessionStorage.removeItem(KEY),
};

function url(path, query) {
  const u = new URL(BASE + path, location.origin);
  for (const [k, v] of Object.entries(query || {})) {
    if (v === undefined || v === null || v === '') continue;
    u.searchParams.set(k, Array.isArray(v) ? v.join(',') : String(v));
  }
  return u.pathname + u.search;
}

async function request(method, path, {query, body, headers = {}, raw = false} = {}) {
  const init = {method, headers: {Accept: 'application/json', ...headers}};
  const key = credentials.get();
  if (key) init.headers['X-API-Key'] = key;
  if (body !== undefined) {
    if (typeof body === 'string') {
      init.body = body;
      init.headers['Content-Type'] ??= 'application/json';
    } else {
      init.body = JSON.stringify(body);
      init.headers['Content-Type'] = 'application/json';
    }
  }
  let response;
  try {
    response = await fetch(url(path, query), init);
  } catch (e) {
    throw new ApiError(0, null, `network error: ${e.message}`);
  }
  if (raw && response.ok) return response;
  const text = await response.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = text; }
  }
  if (!response.ok) throw new ApiError(response.status, data, response.statusText);
  return data;
}

/** The REST client every view gets as ctx.api. */
export const api = {
  get: (path, query) => request('GET', path, {query}),
  /** post(path, body, {headers, query}); a string body is sent as is (YAML needs a Content-Type). */
  post: (path, body, {headers, query} = {}) => request('POST', path, {body, headers, query}),
  put: (path, body, {headers, query} = {}) => request('PUT', path, {body, headers, query}),
  del: (path) => request('DELETE', path),
  /** The Response itself, for downloads. */
  raw: (path, query) => request('GET', path, {query, raw: true}),
  async graphql(query, variables = {}) {
    const key = credentials.get();
    const headers = {'Content-Type': 'application/json', Accept: 'application/json'};
    if (key) headers['X-API-Key'] = key;
    const response = await fetch('/graphql', {method: 'POST', headers, body: JSON.stringify({query, variables})});
    const data = await response.json().catch(() => null);
    if (!response.ok && !(data && data.data)) throw new ApiError(response.status, data);
    if (data && data.errors && data.errors.length && !data.data) {
      const first = data.errors[0];
      const err = new ApiError(response.status, {error: {code: first.extensions?.code || 'GRAPHQL_ERROR', message: first.message}});
      err.errors = data.errors;
      throw err;
    }
    return data.data;
  },
};
