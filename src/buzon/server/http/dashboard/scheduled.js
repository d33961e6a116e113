// A queue's scheduled messages (delayed publishes, NACKed ones waiting for their retry):
// a list with a live countdown, and, for the owner or an admin, "Deliver now" and "Cancel".
import { api, path } from "./api.js";
import { h } from "./dom.js";
import { duration } from "./format.js";
import { renderMessage } from "./message.js";
import { act, notify } from "./notice.js";

const LIMIT = 20;
const TICK_MS = 1000;

// name: the queue; key(): the access key typed in the panel; manage: may deliver/cancel;
// auto: list them at once (else on "Show", once a key is typed); changed(): reloads the
// queue's table after an action. The section reloads itself on a "reload" event (the
// panel's facts saw the scheduled count change) once it has been shown.
export function scheduledSection(name, key, { manage, auto, changed }) {
  const list = h("ul", { class: "messages scheduled-list", "aria-live": "polite" });
  const show = h("button", { type: "button", class: "link show-scheduled" }, auto ? "Refresh" : "Show");
  show.addEventListener("click", () => act(show, load));
  const heading = h("div", { class: "detail-head" }, h("h4", null, "Scheduled messages"), show);
  const section = h("section", { class: "scheduled" }, heading, list);
  let loaded = false;
  // each countdown counts to a deadline on this page's monotonic clock, from the seconds
  // the broker said were left: the two machines' clocks need not agree
  let deadlines = [];

  async function load() {
    const answer = await api("GET", `${path("queues", name, "scheduled")}?limit=${LIMIT}`, {
      key: key(),
    });
    const loadedAt = performance.now();
    loaded = true;
    show.textContent = "Refresh";
    deadlines = [];
    list.replaceChildren(...(answer.messages.length
      ? answer.messages.map((m) => item(m, loadedAt))
      : [h("li", { class: "muted" }, "No message is scheduled.")]));
    tick();
  }

  function item(m, loadedAt) {
    const left = h("span", { class: "countdown" });
    deadlines.push({ node: left, at: loadedAt + m.seconds_left * 1000 });
    const li = renderMessage({ ...m, redelivered: false });
    li.classList.add("scheduled-message");
    const meta = li.querySelector(".message-meta");
    meta.append(h("span", { class: "tag", title: m.deliver_at }, "due in ", left));
    if (manage) {
      const now = h("button", { type: "button", class: "deliver-now" }, "Deliver now");
      now.addEventListener("click", () => act(now, async () => {
        await api("POST", path("queues", name, "scheduled", m.message_id, "deliver"));
        notify(`Delivered ${m.message_id} now.`);
        await Promise.all([load(), changed()]);
      }));
      const cancel = h("button", { type: "button", class: "danger cancel-scheduled" }, "Cancel");
      cancel.addEventListener("click", () => act(cancel, async () => {
        if (!confirm(`Cancel ${m.message_id}? It is dropped and never delivered.`)) return;
        await api("DELETE", path("queues", name, "scheduled", m.message_id));
        notify(`Cancelled ${m.message_id}.`);
        await Promise.all([load(), changed()]);
      }));
      meta.append(now, cancel);
    }
    return li;
  }

  function tick() {
    const now = performance.now();
    for (const { node, at } of deadlines) {
      const seconds = (at - now) / 1000;
      node.textContent = seconds > 0 ? duration(Math.ceil(seconds)) : "now";
    }
  }

  const timer = setInterval(() => {
    if (!section.isConnected) clearInterval(timer);  // the panel was closed or redrawn
    else tick();
  }, TICK_MS);
  section.addEventListener("reload", () => loaded && load().catch(() => {}));
  section.dataset.count = "";
  if (auto) act(null, load);
  return section;
}

// Called with each refresh of the panel's facts: a change of the count reloads the list.
export function scheduledChanged(panel, scheduled) {
  const section = panel.querySelector(".scheduled");
  if (!section || section.dataset.count === String(scheduled)) return;
  const first = section.dataset.count === "";
  section.dataset.count = String(scheduled);
  if (!first) section.dispatchEvent(new Event("reload"));
}
