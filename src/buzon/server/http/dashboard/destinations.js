// The Queues and Channels views: the table, the create form, and which row is selected.
import { api } from "./api.js";
import { fillFacts, renderDetail } from "./destination-detail.js";
import { $, h } from "./dom.js";
import { perSecond } from "./format.js";
import { KINDS, singular } from "./kinds.js";
import { act, notify } from "./notice.js";
import { fillTable } from "./table.js";

const selected = { queues: null, channels: null };
const lists = { queues: [], channels: [] };

export function setUpDestinations() {
  $("queue-create").addEventListener("submit", (e) => create("queues", e));
  $("channel-create").addEventListener("submit", (e) => create("channels", e));
}

export async function loadDestinations(kind) {
  const list = await api("GET", "/" + kind);
  lists[kind] = list;
  const chosen = selected[kind];
  const columns = [
    {
      title: "Name",
      cell: (d) =>
        h("button", { type: "button", class: "link", onclick: () => select(kind, d.name) }, d.name),
    },
    ...KINDS[kind].columns,
    { title: "In / s", num: true, key: "in", cell: (d) => perSecond(d.rates.published_per_s) },
    { title: "Out / s", num: true, key: "out", cell: (d) => perSecond(d.rates.delivered_per_s) },
    { title: "Owner", cell: (d) => d.owner || "—" },
    { title: "Key", cell: (d) => (d.protected ? h("span", { class: "tag" }, "key") : "") },
  ];
  fillTable($(singular(kind) + "-table"), columns, list, {
    attrs: (d) => ({ "data-name": d.name, class: d.name === chosen ? "selected" : null }),
    empty: `No ${kind} yet.`,
  });
  const current = list.find((d) => d.name === chosen);
  if (chosen !== null && !current) closeDetail(kind);
  else if (current) fillFacts(kind, current);
}

async function create(kind, event) {
  event.preventDefault();
  const noun = singular(kind);
  const form = event.currentTarget;
  const body = { name: $(noun + "-name").value.trim() };
  const key = $(noun + "-key").value;
  if (key) body.access_key = key;
  if (kind === "queues") body.policy = queuePolicy();
  else body.type = $("channel-type").value;
  await act(form.querySelector("button[type=submit]"), async () => {
    await api("POST", "/" + kind, { body });
    form.reset();
    notify(`Created ${noun} ${body.name}.`);
    await loadDestinations(kind);
    select(kind, body.name);
  });
}

function queuePolicy() {
  const policy = { durable: $("queue-durable").checked };
  const number = (id) => ($(id).value === "" ? null : Number($(id).value));
  const maxLength = number("queue-max-length");
  const ttl = number("queue-ttl");
  const maxDeliveries = number("queue-max-deliveries");
  const deadLetters = $("queue-dlq").value.trim();
  if (maxLength !== null) policy.max_length = maxLength;
  if (ttl !== null) policy.message_ttl_ms = ttl;
  if (maxDeliveries !== null) policy.max_deliveries = maxDeliveries;
  if (deadLetters) policy.dead_letter_queue = deadLetters;
  const retryDelay = number("queue-retry-delay");
  const multiplier = number("queue-retry-multiplier");
  const retryMax = number("queue-retry-max-delay");
  if (retryDelay !== null) policy.retry_delay_ms = retryDelay;
  if (multiplier !== null) policy.retry_multiplier = multiplier;
  if (retryMax !== null) policy.retry_max_delay_ms = retryMax;
  return policy;
}

function select(kind, name) {
  selected[kind] = name;
  const destination = lists[kind].find((d) => d.name === name);
  if (!destination) return closeDetail(kind);
  for (const row of $(singular(kind) + "-table").querySelectorAll("tbody tr")) {
    row.classList.toggle("selected", row.dataset.name === name);
  }
  renderDetail(kind, destination, {
    reload: () => loadDestinations(kind),
    close: () => closeDetail(kind),
    deadLetters: kind === "queues" && lists.queues.some((q) => q.policy.dead_letter_queue === name),
  });
}

function closeDetail(kind) {
  selected[kind] = null;
  const panel = $(singular(kind) + "-detail");
  panel.hidden = true;
  panel.replaceChildren();
  panel.parentElement.classList.remove("open");
  for (const row of $(singular(kind) + "-table").querySelectorAll("tr.selected")) {
    row.classList.remove("selected");
  }
}
