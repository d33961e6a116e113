// The Connections view: open STOMP connections; an admin may close one.
import { api, path } from "./api.js";
import { $, h } from "./dom.js";
import { count, when } from "./format.js";
import { act, notify } from "./notice.js";
import { currentUser } from "./session.js";
import { fillTable } from "./table.js";

export async function loadConnections() {
  const list = await api("GET", "/connections");
  const admin = currentUser().role === "admin";
  $("connections-scope").textContent = admin
    ? "Every open STOMP connection."
    : "Your open STOMP connections.";
  const columns = [
    { title: "Id", cell: (c) => c.id },
    { title: "User", cell: (c) => c.user || "(logging in)" },
    { title: "From", cell: (c) => c.peer },
    { title: "Protocol", cell: (c) => c.protocol },
    { title: "Since", cell: (c) => when(c.connected_at) },
    { title: "Subscriptions", num: true, cell: (c) => count(c.subscriptions) },
    { title: "Published", num: true, cell: (c) => count(c.published) },
    { title: "Delivered", num: true, cell: (c) => count(c.delivered) },
  ];
  if (admin) {
    columns.push({
      title: "",
      cell: (c) => {
        const button = h("button", { type: "button", class: "danger close" }, "Close");
        button.addEventListener("click", () => act(button, () => closeConnection(c)));
        return button;
      },
    });
  }
  fillTable($("connection-table"), columns, list, {
    attrs: (c) => ({ "data-id": c.id }),
    empty: "No open connections.",
  });
}

async function closeConnection(c) {
  if (!confirm(`Close connection ${c.id} of ${c.user || "a client"} from ${c.peer}?`)) return;
  await api("DELETE", path("connections", c.id));
  notify(`Closed connection ${c.id}.`);
  await loadConnections();
}
