// The Overview view: the broker's numbers as cards, the rate chart, and for an admin the
// cluster's nodes (a broker on SQLite is a cluster of one).
import { api } from "./api.js";
import { drawChart } from "./chart.js";
import { $, h } from "./dom.js";
import { bytes, count, duration, perSecond } from "./format.js";
import { isAdmin } from "./session.js";
import { fillTable } from "./table.js";

let history = [];

export async function loadOverview() {
  const [overview, recent, cluster] = await Promise.all([
    api("GET", "/overview"),
    api("GET", "/overview/history"),
    isAdmin() ? api("GET", "/cluster") : null,
  ]);
  if (cluster) showNodes(cluster.nodes);
  const stats = [
    ["connections", "Connections", count(overview.connections)],
    ["queues", "Queues", count(overview.queues)],
    ["channels", "Channels", count(overview.channels)],
    ["users", "Users", count(overview.users)],
    ["in", "Published / s", perSecond(overview.rates.published_per_s)],
    ["out", "Delivered / s", perSecond(overview.rates.delivered_per_s)],
    ["queued", "Queued", bytes(overview.messages.queued_bytes)],
    ["memory", "Memory", bytes(overview.memory_bytes)],
    ["store", "Store on disk", overview.store_bytes === null ? "in memory" : bytes(overview.store_bytes)],
    ["uptime", "Up for", duration(overview.uptime_s)],
    ["version", "Version", overview.version],
  ];
  $("overview-cards").replaceChildren(...stats.map(([key, label, value]) =>
    h("dl", { class: "card stat", "data-stat": key }, h("dt", null, label), h("dd", null, value))));
  history = recent.points;
  redrawChart();
}

function showNodes(nodes) {
  const columns = [
    { title: "Node", cell: (n) => n.name },
    {
      title: "Status",
      key: "status",
      cell: (n) => h("span", { class: n.alive ? "tag" : "tag bad" }, n.alive ? "alive" : "down"),
    },
    { title: "Listeners", cell: (n) => n.listeners.join(" ") },
    {
      title: "Last heartbeat",
      cell: (n) => `${duration((Date.now() - Date.parse(n.heartbeat_at)) / 1000)} ago`,
    },
    { title: "Connections", num: true, key: "connections", cell: (n) => count(n.connections) },
  ];
  fillTable($("node-table"), columns, nodes, { attrs: (n) => ({ "data-name": n.name }) });
}

// Draws the last history loaded again, at the canvas's current size.
export function redrawChart() {
  drawChart($("rate-chart"), history);
}
