// The broker's JSON API (/api/v1): the bearer token, kept in this tab's sessionStorage.
//
// The token travels in the Authorization header, never in a cookie or a URL, so another
// site cannot make the browser send an authenticated request (CSRF).

const API = "/api/v1";
const TOKEN_KEY = "buzon.token";

let token = sessionStorage.getItem(TOKEN_KEY);
let unauthorized = () => {};

export const hasToken = () => Boolean(token);

export function keepToken(value) {
  token = value;
  sessionStorage.setItem(TOKEN_KEY, value);
}

export function forgetToken() {
  token = null;
  sessionStorage.removeItem(TOKEN_KEY);
}

// Called when the broker refuses the token (expired, revoked, user disabled).
export function onUnauthorized(handler) {
  unauthorized = handler;
}

export class ApiError extends Error {
  constructor(status, code, message, detail) {
    super(detail ? `${message}: ${detail}` : message);
    this.status = status;
    this.code = code;
  }
}

// HTTP header values are bytes; the broker reads them as UTF-8.
function headerValue(text) {
  return Array.from(new TextEncoder().encode(text), (b) => String.fromCharCode(b)).join("");
}

export async function api(method, path, { body, key } = {}) {
  const headers = { Accept: "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (key) headers["X-Access-Key"] = headerValue(key);
  const response = await fetch(API + path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "omit",
    cache: "no-store",
  });
  if (response.status === 204) return null;
  const data = await response.json().catch(() => null);
  if (response.ok) return data;
  const error = (data && data.error) || {};
  if (response.status === 401 && token) unauthorized();
  throw new ApiError(
    response.status,
    error.code || "HTTP_" + response.status,
    error.message || response.statusText || "request failed",
    error.detail || "",
  );
}

// path("queues", name, "messages") -> "/queues/<name, escaped>/messages"
export const path = (...parts) => "/" + parts.map(encodeURIComponent).join("/");
