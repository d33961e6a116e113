// The detail panel of a queue or channel: facts, publish, peek, scheduled messages,
// redrive, purge and delete.
import { api, path } from "./api.js";
import { $, h } from "./dom.js";
import { count } from "./format.js";
import { KINDS, singular } from "./kinds.js";
import { parseHeaders, renderMessage } from "./message.js";
import { act, notify } from "./notice.js";
import { scheduledChanged, scheduledSection } from "./scheduled.js";
import { redriveSection } from "./redrive.js";
import { currentUser } from "./session.js";

function mayManage(d) {
  const me = currentUser();
  return me.role === "admin" || d.owner === me.username;
}

// Refreshes the facts of an open panel in place (the forms keep what was typed).
export function fillFacts(kind, destination) {
  const panel = $(singular(kind) + "-detail");
  const facts = panel.querySelector(".facts");
  if (!facts) return;
  facts.replaceChildren(...KINDS[kind].facts(destination).map(([label, value, key]) =>
    h("div", { "data-fact": key }, h("dt", null, label), h("dd", null, value))));
  if (kind === "queues") scheduledChanged(panel, destination.scheduled);
}

// reload(): loads the view's table again; close(): closes this panel; deadLetters: some
// queue's policy names this one as its dead-letter queue.
export function renderDetail(kind, d, { reload, close, deadLetters = false }) {
  const noun = singular(kind);
  const panel = $(noun + "-detail");
  const keyInput = d.protected && !mayManage(d)
    ? h("input", {
        type: "password",
        class: "access-key",
        placeholder: "access key",
        autocomplete: "off",
        maxlength: 1024,
      })
    : null;
  const key = () => (keyInput ? keyInput.value : "");

  const bodyInput = h("textarea", { rows: 3, class: "publish-body", "aria-label": "Message body" });
  const headersInput = h("textarea", {
    rows: 1, class: "publish-headers", "aria-label": "Headers",
    placeholder: "headers, one per line: name: value",
  });
  // queues may hold a message back: deliver it no earlier than this many seconds from now
  const delayInput = kind === "queues"
    ? h("input", {
        type: "number", min: 0, step: "any", class: "publish-delay", placeholder: "0",
      })
    : null;
  // direct and topic channels route by the message's key
  const routingInput = kind === "channels" && d.type !== "fanout"
    ? h("input", {
        type: "text", class: "publish-key", placeholder: "routing key", maxlength: 255,
        "aria-label": "Routing key",
      })
    : null;
  const publishForm = h("form", { class: "publish" },
    h("fieldset", null, h("legend", null, "Publish a test message"),
      bodyInput, headersInput,
      h("div", { class: "row" },
        h("button", { type: "submit", class: "primary" }, "Publish"),
        routingInput,
        delayInput && h("label", { class: "delay" }, "deliver in ", delayInput, " s"))));
  publishForm.addEventListener("submit", (event) => {
    event.preventDefault();
    act(publishForm.querySelector("button"), async () => {
      const headers = parseHeaders(headersInput.value);
      const message = { body: bodyInput.value, headers };
      const delay = delayInput && delayInput.value !== "" ? Number(delayInput.value) : 0;
      if (delay > 0) message.delay_ms = Math.ceil(delay * 1000);
      const routingKey = routingInput ? routingInput.value : "";
      const query = routingKey ? `?routing_key=${encodeURIComponent(routingKey)}` : "";
      const sent = await api("POST", path(kind, d.name, "messages") + query,
        { body: message, key: key() });
      const later = delay > 0 ? `, to be delivered in ${delay} s` : "";
      const keyed = routingKey ? ` with key "${routingKey}"` : "";
      notify(`Published ${sent.message_id} to ${d.name}${keyed}${later}.`);
      await reload();
    });
  });

  const parts = [
    h("div", { class: "detail-head" },
      h("h3", null, `${noun[0].toUpperCase()}${noun.slice(1)} `, h("span", { class: "detail-name" }, d.name)),
      h("button", { type: "button", class: "link", onclick: close }, "Close")),
    h("p", { class: "muted" }, d.address, d.protected ? " · protected by an access key" : ""),
    h("dl", { class: "facts" }),
    keyInput && h("label", null, "Access key for publishing and reading ", keyInput),
    publishForm,
  ];

  if (kind === "queues") {
    parts.push(peekForm(d.name, key));
    parts.push(scheduledSection(d.name, key, {
      manage: mayManage(d),
      auto: !keyInput,
      changed: reload,
    }));
  } else {
    if (d.durable_subscriptions.length) {
      parts.push(h("div", null, h("h4", null, "Durable subscriptions"),
        h("ul", null, d.durable_subscriptions.map((s) =>
          h("li", null, `${s.name} (${s.owner || "deleted user"}): ${count(s.backlog)} waiting`)))));
    }
    parts.push(bindingsSection(d.name, reload));
  }

  if (mayManage(d)) {
    if (deadLetters) parts.push(redriveSection(d.name, reload));
    const actions = h("div", { class: "row" });
    if (kind === "queues") {
      const purge = h("button", { type: "button", class: "purge" }, "Purge");
      purge.addEventListener("click", () => act(purge, async () => {
        if (!confirm(`Purge queue ${d.name}? Its waiting messages are dropped.`)) return;
        const result = await api("POST", path("queues", d.name, "purge"));
        notify(`Purged ${count(result.purged)} messages from ${d.name}.`);
        await reload();
      }));
      actions.append(purge);
    }
    const remove = h("button", { type: "button", class: "danger delete" }, `Delete ${noun}`);
    remove.addEventListener("click", () => act(remove, async () => {
      if (!confirm(`Delete ${noun} ${d.name}? Its messages are dropped and its consumers disconnected.`)) return;
      await api("DELETE", path(kind, d.name));
      close();
      notify(`Deleted ${noun} ${d.name}.`);
      await reload();
    }));
    actions.append(remove);
    parts.push(actions);
  }

  panel.replaceChildren(...parts.filter(Boolean));
  panel.hidden = false;
  panel.parentElement.classList.add("open");
  fillFacts(kind, d);
}

// Shows the head of a queue without consuming it.
function peekForm(name, key) {
  const limit = h("input", {
    type: "number", min: 1, max: 100, value: 10, class: "peek-limit", "aria-label": "How many",
  });
  const results = h("ul", { class: "messages", "aria-live": "polite" });
  const button = h("button", { type: "submit" }, "Peek");
  const form = h("form", { class: "peek" },
    h("fieldset", null, h("legend", null, "Peek at the head (nothing is consumed)"),
      h("div", { class: "row" }, limit, button), results));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    act(button, async () => {
      const query = `?limit=${Number(limit.value) || 10}`;
      const shown = await api("GET", path("queues", name, "messages") + query, { key: key() });
      results.replaceChildren(...(shown.messages.length
        ? shown.messages.map(renderMessage)
        : [h("li", { class: "muted" }, "No message is waiting.")]));
    });
  });
  return form;
}

// A channel's queue bindings, loaded when the panel opens, with binding and unbinding
// (the API decides who may: see docs/routing.md).
function bindingsSection(channel, reload) {
  const list = h("ul", { class: "bindings" });
  const load = () => api("GET", path("channels", channel, "bindings")).then((bindings) => {
    list.replaceChildren(...(bindings.length
      ? bindings.map((b) => bindingItem(channel, b, load, reload))
      : [h("li", { class: "muted" }, "No queue is bound.")]));
  }, (error) => list.replaceChildren(h("li", { class: "muted" }, error.message)));
  const queueInput = h("input", {
    class: "bind-queue", placeholder: "queue", maxlength: 200, required: true,
    "aria-label": "Queue to bind",
  });
  const keyInput = h("input", {
    class: "bind-key", placeholder: "binding key (optional)", maxlength: 255,
    "aria-label": "Binding key",
  });
  const button = h("button", { type: "submit" }, "Bind");
  const form = h("form", { class: "bind" },
    h("fieldset", null, h("legend", null, "Bind a queue"),
      h("div", { class: "row" }, queueInput, keyInput, button)));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    act(button, async () => {
      const body = { queue: queueInput.value.trim(), routing_key: keyInput.value };
      await api("POST", path("channels", channel, "bindings"), { body });
      notify(`Bound queue ${body.queue} to ${channel}.`);
      form.reset();
      await load();
      await reload();
    });
  });
  load();
  return h("div", null, h("h4", null, "Bound queues"), list, form);
}

function bindingItem(channel, b, load, reload) {
  const unbind = h("button", { type: "button", class: "link unbind" }, "Unbind");
  unbind.addEventListener("click", () => act(unbind, async () => {
    const query = "?" + new URLSearchParams({ queue: b.queue, routing_key: b.routing_key });
    await api("DELETE", path("channels", channel, "bindings") + query);
    notify(`Unbound queue ${b.queue} from ${channel}.`);
    await load();
    await reload();
  }));
  return h("li", null,
    `${b.queue}, key ${JSON.stringify(b.routing_key)} (by ${b.owner || "deleted user"})`,
    b.active ? "" : " · suspended: an access key changed since it was made", " ", unbind);
}
