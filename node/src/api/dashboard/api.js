// The JSON API of the node that served the page, and the latest status it reported.

/** The most jobs one request may ask for. */
export const MAX_LIMIT = 1000;

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

const TOKEN_KEY = 'eventide-token';

/** The API token the user gave this tab, if any (a cluster with a secret wants one). */
export function token() {
  try {
    return sessionStorage.getItem(TOKEN_KEY) || '';
  } catch (_) {
    return '';
  }
}

export function setToken(value) {
  try {
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch (_) {
    // Storage can be disabled; the token then lasts until the page is reloaded.
  }
  memoryToken = value;
}

let memoryToken = '';

/** The Authorization header for the API, when there is a token. */
export function authHeaders() {
  const value = token() || memoryToken;
  return value ? { Authorization: `Bearer ${value}` } : {};
}

let onTokenNeeded = () => {};

/** Called with the error whenever the API refuses a request for want of a token. */
export function whenTokenNeeded(listener) {
  onTokenNeeded = listener;
}

/** True for the answers a node gives when a request lacks the right token. */
export function needsToken(error) {
  return error instanceof ApiError && (error.status === 401 || error.status === 403);
}

export async function api(path, options) {
  const response = await fetch(path, {
    cache: 'no-store',
    ...options,
    headers: {
      Accept: 'application/json',
      ...authHeaders(),
      ...((options && options.headers) || {}),
    },
  });
  const text = await response.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch (_) {
    body = null;
  }
  if (!response.ok) {
    const message = body && typeof body.error === 'string' ? body.error : text;
    const error = new ApiError(response.status, message || `HTTP ${response.status}`);
    if (needsToken(error)) onTokenNeeded(error);
    throw error;
  }
  return body;
}

export function post(path, body) {
  return api(path, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body || {}),
  });
}

export function patch(path, body) {
  return api(path, {
    method: 'PATCH',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body || {}),
  });
}

export function remove(path) {
  return api(path, { method: 'DELETE' });
}

export const cluster = {
  status: null,
  names: new Map(),
  namesKey: '',
};

export function nodeName(id) {
  if (!id) return '—';
  return cluster.names.get(id) || `node ${String(id).slice(0, 6)}`;
}
