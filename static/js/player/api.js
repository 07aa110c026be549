// HTTP helpers: JSON GET and CSRF-protected POST against our own server.

export class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function parse(resp) {
  const type = resp.headers.get('content-type') || '';
  const body = type.includes('json') ? await resp.json() : await resp.text();
  if (!resp.ok) {
    const msg = (body && (body.error || body.detail || body.message)) ||
      (typeof body === 'string' && body.length < 300 ? body : '') ||
      `${resp.status} ${resp.statusText}`;
    throw new HttpError(resp.status, msg);
  }
  return body;
}

export async function getJSON(url) {
  return parse(await fetch(url, { credentials: 'same-origin', headers: { Accept: 'application/json' } }));
}

export async function getText(url) {
  const resp = await fetch(url, { credentials: 'same-origin' });
  if (!resp.ok) throw new HttpError(resp.status, `${url}: ${resp.status} ${resp.statusText}`);
  return resp.text();
}

export async function postJSON(url, data, csrf) {
  return parse(await fetch(url, {
    method: 'POST',
    credentials: 'same-origin',
    headers: { 'Content-Type': 'application/json', Accept: 'application/json', 'X-CSRFToken': csrf || '' },
    body: JSON.stringify(data || {}),
  }));
}

/** Absolute ws(s):// URL for a path such as "/ws/jobs/<id>/". */
export function wsURL(path, params) {
  const url = new URL(path, window.location.href);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  for (const [k, v] of Object.entries(params || {})) url.searchParams.set(k, String(v));
  return url.toString();
}
