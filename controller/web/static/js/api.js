// api.js: every call the console makes goes through the public API under
// /api/v1, signed in by the session cookie; state-changing requests carry
// the session's CSRF token (docs/security.md).

let csrf = '';
let offsetMS = 0;

/** setCSRF keeps the token from POST or GET /auth/session. */
export function setCSRF(token) { csrf = token || ''; }

/**
 * APIError is an answer in the API's error shape; reason, when the API
 * gives one, tells refusals of one code apart (speech_unavailable).
 */
export class APIError extends Error {
  constructor(status, code, message, body) {
    super(message);
    this.status = status;
    this.code = code;
    this.body = body || {};
    this.reason = (this.body.error && this.body.error.reason) || '';
  }
}

async function decode(resp) {
  const text = await resp.text();
  let body = null;
  if (text) {
    try { body = JSON.parse(text); } catch { body = { raw: text }; }
  }
  if (!resp.ok) {
    const e = (body && body.error) || {};
    throw new APIError(resp.status, e.code || 'http_' + resp.status, e.message || resp.statusText, body);
  }
  return body;
}

/** api sends one JSON request; it resolves to the decoded answer. */
export async function api(method, path, body, query) {
  const url = new URL('/api/v1' + path, location.origin);
  for (const [k, v] of Object.entries(query || {})) {
    if (v !== undefined && v !== null && v !== '') url.searchParams.set(k, v);
  }
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (method !== 'GET' && method !== 'HEAD') headers['X-CSRF-Token'] = csrf;
  let resp;
  try {
    resp = await fetch(url, { method, headers, credentials: 'same-origin', body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (err) {
    throw new APIError(0, 'network', String(err.message || err));
  }
  if (resp.status === 401 && path !== '/auth/session') {
    window.dispatchEvent(new CustomEvent('loaxa:signed-out'));
  }
  return decode(resp);
}

/**
 * failingChecks resolves to the controller's failing health checks (GET
 * /health is public, and answers 503 with the same body when a part is
 * down), each name ("broker", "disk", "files", …) to what the check says
 * is wrong, in English.
 */
export async function failingChecks() {
  const health = await api('GET', '/health').catch((err) => err.body);
  return new Map(Object.entries((health && health.checks) || {}).filter(([, c]) => !c.ok).map(([name, c]) => [name, c.error || '']));
}

/**
 * keptEmergency is the emergency an error answer says was stored but not
 * sent (the broker away: 503 with it), or null. Its board says so;
 * sending it again would make a second alert.
 */
export function keptEmergency(err) {
  const kept = err && err.body && err.body.emergency;
  return kept && kept.id ? kept : null;
}

/** apiURL is the address of a GET route, for links and audio players. */
export function apiURL(path, query) {
  const url = new URL('/api/v1' + path, location.origin);
  for (const [k, v] of Object.entries(query || {})) {
    if (v !== undefined && v !== null && v !== '') url.searchParams.set(k, v);
  }
  return url.pathname + url.search;
}

/**
 * upload posts a multipart form and reports progress (0–1) while the
 * bytes leave the browser; fetch cannot report upload progress, XHR can.
 */
export function upload(path, form, onProgress, query) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open('POST', apiURL(path, query));
    xhr.setRequestHeader('X-CSRF-Token', csrf);
    xhr.setRequestHeader('Accept', 'application/json');
    xhr.upload.onprogress = (e) => { if (e.lengthComputable && onProgress) onProgress(e.loaded / e.total); };
    xhr.onerror = () => reject(new APIError(0, 'network', 'upload failed'));
    xhr.onload = () => {
      decode(new Response(xhr.responseText || null, { status: xhr.status, statusText: xhr.statusText }))
        .then(resolve, reject);
    };
    xhr.send(form);
  });
}

/**
 * syncTime measures the controller's clock: office PCs' clocks may be
 * wrong, and "today" in the programme is the controller's today.
 */
export async function syncTime() {
  const t0 = Date.now();
  const { time } = await api('GET', '/time');
  const t1 = Date.now();
  offsetMS = Date.parse(time) - (t0 + t1) / 2;
}

/** now is the controller's time as a Date. */
export function now() { return new Date(Date.now() + offsetMS); }
