// buzon dashboard entry: wires the menu, the views and the 2-second refresh. No build step.
//
// Rules every module keeps:
// - Data reaches the page only as text (Text nodes, textContent, setAttribute), never
//   through innerHTML: a queue name, header or body containing markup shows as the
//   characters it is made of.
// - The bearer token lives in sessionStorage (this tab only) and travels in the
//   Authorization header (api.js): no cookie, nothing secret in a URL.
// - No inline script or style, nothing from another origin: the Content-Security-Policy
//   forbids them.
import { loadConnections } from "./connections.js";
import { loadDestinations, setUpDestinations } from "./destinations.js";
import { $ } from "./dom.js";
import { failed } from "./notice.js";
import { loadOverview, redrawChart } from "./overview.js";
import { currentUser, startSession } from "./session.js";
import { loadUsers } from "./users.js";

const REFRESH_MS = 2000;
const LOADERS = {
  overview: loadOverview,
  queues: () => loadDestinations("queues"),
  channels: () => loadDestinations("channels"),
  connections: loadConnections,
  users: loadUsers,
};
const VIEWS = Object.keys(LOADERS);

let view = null;
let timer = null;
let busy = false;

function toggleMenu() {
  const nav = $("nav");
  const open = !nav.classList.contains("open");
  nav.classList.toggle("open", open);
  $("menu-toggle").setAttribute("aria-expanded", String(open));
}

// Shows the view the URL's #hash names (the overview if none, or one this user may not see).
function route() {
  const me = currentUser();
  if (!me) return;
  let wanted = location.hash.slice(1);
  if (!VIEWS.includes(wanted) || (wanted === "users" && me.role !== "admin")) wanted = "overview";
  view = wanted;
  for (const name of VIEWS) $("view-" + name).hidden = name !== view;
  for (const link of document.querySelectorAll("#nav a[data-view]")) {
    if (link.dataset.view === view) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  $("nav").classList.remove("open");
  $("menu-toggle").setAttribute("aria-expanded", "false");
  refresh(true);
}

// The timer skips a turn while a load is running or the tab is hidden; a change of view
// (now) loads at once.
async function refresh(now = false) {
  if (!currentUser() || (!now && (busy || document.hidden))) return;
  busy = true;
  try {
    await LOADERS[view]();
  } catch (error) {
    failed(error);
  } finally {
    busy = false;
  }
}

function start() {
  $("menu-toggle").addEventListener("click", toggleMenu);
  setUpDestinations();
  window.addEventListener("hashchange", route);
  window.addEventListener("resize", () => view === "overview" && redrawChart());
  document.addEventListener("visibilitychange", () => !document.hidden && refresh());
  startSession({
    entered() {
      clearInterval(timer);
      timer = setInterval(refresh, REFRESH_MS);
      route();
    },
    left() {
      clearInterval(timer);
      timer = null;
    },
  });
}

document.addEventListener("DOMContentLoaded", start);
