// A message as text: headers typed into the publish form, and a peeked message shown.
import { h } from "./dom.js";

// "name: value" per line -> {name: value}; blank lines are skipped.
export function parseHeaders(text) {
  const headers = {};
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    const colon = line.indexOf(":");
    if (colon < 1) throw new Error(`A header line needs "name: value": ${line.slice(0, 40)}`);
    headers[line.slice(0, colon).trim()] = line.slice(colon + 1).trim();
  }
  return headers;
}

export function renderMessage(m) {
  const headers = Object.entries(m.headers);
  return h("li", { class: "message", "data-id": m.message_id },
    h("div", { class: "message-meta" },
      h("span", null, m.message_id),
      m.redelivered && h("span", { class: "tag" }, "redelivered")),
    headers.length > 0 && h("dl", { class: "message-headers" },
      headers.map(([name, value]) => [h("dt", null, name), h("dd", null, value)])),
    m.body !== null
      ? h("pre", { class: "body" }, m.body)
      : h("pre", { class: "body binary", title: "binary body, shown as base64" }, m.body_base64));
}
