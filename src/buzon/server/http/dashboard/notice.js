// The notice bar, and running a button's action with its failure shown there.
import { ApiError } from "./api.js";
import { $ } from "./dom.js";

let noticeTimer = null;

export function notify(text, isError = false) {
  const box = $("notice");
  box.textContent = text;
  box.classList.toggle("error", isError);
  box.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => (box.hidden = true), isError ? 8000 : 4000);
}

export function failed(error) {
  if (error instanceof ApiError && error.status === 401) return; // back at the login form
  notify(error.message || String(error), true);
}

// Runs an action of a button or form, with the button disabled meanwhile.
export async function act(button, action) {
  if (button) button.disabled = true;
  try {
    await action();
  } catch (error) {
    failed(error);
  } finally {
    if (button) button.disabled = false;
  }
}
