// The JSON API of the node that served the page, and the latest status it reported.

/** The most jobs one request may ask for. */
export const MAX_LIMIT = 1000;

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export async function api(path, options) {
  const response = await fetch(path, {
    cache: 'no-store',
    ...options,
    headers: { Accept: 'application/json', ...((options && options.headers) || {}) },
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
    throw new ApiError(response.status, message || `HTTP ${response.status}`);
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

export const cluster = {
  status: null,
  names: new Map(),
  namesKey: '',
};

export function nodeName(id) {
  if (!id) return '—';
  return cluster.names.get(id) || `node ${String(id).slice(0, 6)}`;
}
