// Logging in and out: the login form, who is logged in, and ending the session.
import { ApiError, api, forgetToken, hasToken, keepToken, onUnauthorized } from "./api.js";
import { $ } from "./dom.js";

let me = null;
let hooks = { entered() {}, left() {} };

// The logged-in user ({username, role, ...}), or null.
export const currentUser = () => me;
export const isAdmin = () => me !== null && me.role === "admin";

// entered(): the app view shows; left(): back at the login form.
export async function startSession({ entered, left }) {
  hooks = { entered, left };
  $("login-form").addEventListener("submit", logIn);
  $("logout").addEventListener("click", logOut);
  onUnauthorized(() => endSession("Your session has ended; log in again."));
  if (!hasToken()) return showLogin();
  try {
    await enter();
  } catch (error) {
    endSession(error instanceof ApiError && error.status === 401 ? "" : error.message);
  }
}

async function logIn(event) {
  event.preventDefault();
  const form = event.currentTarget;
  const button = form.querySelector("button");
  $("login-error").textContent = "";
  button.disabled = true;
  try {
    const session = await api("POST", "/sessions", {
      body: { username: $("login-user").value, password: $("login-password").value },
    });
    keepToken(session.token);
    $("login-password").value = "";
    await enter();
  } catch (error) {
    forgetToken();
    $("login-error").textContent = error.message || String(error);
  } finally {
    button.disabled = false;
  }
}

async function enter() {
  me = await api("GET", "/users/me");
  $("who").textContent = me.username;
  for (const link of document.querySelectorAll("[data-admin-only]")) {
    link.hidden = me.role !== "admin";
  }
  $("login-view").hidden = true;
  $("app-view").hidden = false;
  hooks.entered();
}

async function logOut() {
  try {
    await api("DELETE", "/sessions/current"); // revokes the token on the broker
  } catch (error) {
    // the token is forgotten here either way
  }
  endSession("");
}

function endSession(message) {
  forgetToken();
  me = null;
  hooks.left();
  showLogin();
  $("login-error").textContent = message || "";
}

function showLogin() {
  $("app-view").hidden = true;
  $("login-view").hidden = false;
  $("login-user").focus();
}
